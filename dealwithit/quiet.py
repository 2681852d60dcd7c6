"""Quiet output: TensorFlow's start-up lines hidden, progress bars that suit a log file.

TensorFlow 2.21 writes its oneDNN notice, absl's "All log messages before
absl::InitializeLog()" line and the CPU-instructions notice to file descriptor 2
while it is imported, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect; turning
oneDNN off would hide one line at the cost of speed. So the import runs with
descriptor 2 captured, and only those known lines are dropped: anything else
(a real import error) is written back. The CLI and ``notebooks.open_workspace``
call ``import_tensorflow``; ``--verbose`` (or ``DEALWITHIT_VERBOSE=1``) keeps
everything.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

# What TensorFlow prints at import on a CPU machine, and nothing else.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|cpu_feature_guard\.cc"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
)


def verbose() -> bool:
    """Whether the user asked for TensorFlow's own output (``DEALWITHIT_VERBOSE=1``)."""
    return os.environ.get("DEALWITHIT_VERBOSE", "") not in ("", "0")


def import_tensorflow(show_startup: bool | None = None):
    """Imports TensorFlow (once), hiding its start-up lines unless ``show_startup``.

    Args:
        show_startup: Keep TensorFlow's start-up output; default ``verbose()``.

    Returns:
        The ``tensorflow`` module.
    """
    show_startup = verbose() if show_startup is None else show_startup
    if not show_startup:
        # After start-up, only TensorFlow's errors reach the console.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if show_startup or "tensorflow" in sys.modules:
        import tensorflow

        return tensorflow
    # Descriptor 2 goes into a pipe that a thread drains (no temporary file, and
    # a long message cannot fill the pipe and block the import).
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_end, chunks), daemon=True)
    reader.start()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)  # the pipe's last write end closes: the reader sees the end
        os.close(saved)
        reader.join(timeout=10)
    text = b"".join(chunks).decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line.strip() and not STARTUP_NOISE.search(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tensorflow


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for chunk in iter(lambda: pipe.read(4096), b""):
            chunks.append(chunk)


def log_file_progress() -> None:
    """Progress bars for a log file: a line every 30 s or at a bar's end, not every refresh.

    tqdm reads ``TQDM_*`` variables when it is first imported, so this must run
    before anything imports tqdm; a terminal keeps live bars. Keras' training
    bar (``tqdm.keras.TqdmCallback``) then writes about one line per epoch.
    """
    if not (sys.stderr.isatty() or sys.stdout.isatty()):
        os.environ.setdefault("TQDM_MININTERVAL", "30")


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (pytest and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def show_notes() -> None:
    """Shows the package's progress notes ("Reusing the VAE in ...") as plain lines on stdout."""
    logger = logging.getLogger("dealwithit")
    if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)

"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

Every file the package writes (configs, weights, vectors, metrics, photos, GIFs)
goes to a temporary name in the same folder first and is renamed over the
target in one step, so an interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it over ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffix, so writers that choose a format
    from it (``keras.Model.save``, Pillow) behave as for ``path``. Parent folders
    are created. If the block raises, the temporary file is removed and
    ``path`` is left as it was.

    Args:
        path: The file to write.

    Yields:
        The temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        # mkstemp creates owner-only files; a written file should be readable like any other.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically and returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically and returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, values: Any) -> Path:
    """Writes ``values`` as indented JSON (with a final newline) atomically."""
    return write_text(path, json.dumps(values, indent=2) + "\n")

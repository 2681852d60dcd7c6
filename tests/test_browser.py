"""Notebook 04 where users use it: JupyterLab in headless Chromium, a latent slider moved by mouse.

papermill (test_notebooks.py) proves that the cells run, not that the live
sliders work: that needs the widget front end, a browser and the kernel's comm
round trip. This test trains on the tiny ``SMALL_PARAMETERS`` run by papermill
(notebooks 01-03, as test_notebooks.py does), writes notebook 04 with the same
parameters injected into that temporary workspace, starts JupyterLab there on
127.0.0.1, runs every cell from the Run menu, drags a latent slider and checks
that the edited face changes while the input face does not. The screenshot
lands in ``outputs/browser/``.

Chromium is Debian's ``chromium`` package, driven by Playwright through
``executable_path`` (Playwright's own browser download is not used).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dealwithit import notebooks

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Headless and quiet: without the background-networking switches Chromium keeps
# calling home, which on a closed network only floods it with failed requests.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOK = notebooks.NOTEBOOKS[3]
SCREENSHOT = REPO_ROOT / "outputs" / "browser" / "notebook04_slider.png"
FAILURE_SCREENSHOT = SCREENSHOT.with_name("notebook04_failure.png")

# Generous: a busy 2-core machine needs tens of seconds to start a kernel and
# import TensorFlow, and notebook 04 runs for about a minute on the tiny run.
SERVER_TIMEOUT = 120  # seconds
KERNEL_TIMEOUT_MS = 180_000
RUN_ALL_TIMEOUT_MS = 420_000
WIDGET_TIMEOUT_MS = 60_000

# True once a code cell is queued or has run, i.e. "[*]:" or "[n]:", not "[ ]:".
_STARTED_JS = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
  .some((element) => /^\\[(\\*|\\d+)\\]:$/.test(element.textContent.trim()))"""
# True when every code cell shows "[n]:", or when execution stopped on an error
# (no "[*]:" queued any more, and a traceback is shown): then the test reports it.
_FINISHED_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map((element) => element.textContent.trim());
  if (prompts.length === 0) return false;
  if (prompts.every((text) => /^\\[\\d+\\]:$/.test(text))) return true;
  const errors = [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .filter((element) => element.textContent.includes('Traceback'));
  return errors.length > 0 && !prompts.includes('[*]:');
}"""

# The bytes behind an <img>'s src (ipywidgets.Image shows a blob: URL), as base64.
_PNG_JS = """async (img) => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}"""
# True once the <img> has kept one src for 3 s while the kernel is idle.
_SETTLED_JS = """(img) => {
  const src = img.getAttribute('src');
  const now = performance.now();
  if (window.__settledSrc !== src) {
    window.__settledSrc = src;
    window.__settledSince = now;
    return false;
  }
  const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
  return idle !== null && now - window.__settledSince > 3000;
}"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=(
        f"the browser test needs Debian's Chromium at {CHROMIUM}; "
        "install it with `apt-get update && apt-get install -y chromium`"
    ),
)


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """JupyterLab user settings for a quiet, offline run: no news, no update check."""
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@contextlib.contextmanager
def _jupyterlab(root: Path, state: Path):
    """Runs JupyterLab from this venv on 127.0.0.1 and yields ``(url, token)``.

    Config, data (the notebook-signing key), runtime files, settings and
    workspaces live in ``state``, so the user's own Jupyter set-up neither
    leaks in nor changes; kernels and the widget extension still come from
    this venv. The server is stopped through
    its API (which also shuts its kernels down), and killed if it lingers.
    """
    port, token = _free_port(), secrets.token_hex(16)
    settings = state / "settings"
    _write_settings(settings)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",  # CI runs as root
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ]
    log_path = state / "jupyterlab.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {server.returncode} before answering. "
                    f"Its log:\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Expected JupyterLab to answer on {url} within {SERVER_TIMEOUT} s. "
                        f"Its log:\n{log_path.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield url, token
    finally:
        with contextlib.suppress(OSError):
            request = urllib.request.Request(
                f"{url}/api/shutdown",
                method="POST",
                headers={"Authorization": f"token {token}"},
            )
            urllib.request.urlopen(request, timeout=10).close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _prepare_workspace(work: Path, executed: Path) -> Path:
    """Notebooks 01-03 run in ``work`` (tiny run); 04 is written there, parameters injected.

    JupyterLab starts a kernel in the notebook's own folder, so 04 sits at the
    top of ``work``: its kernel then reads ``data/`` and ``weights/`` from the
    same place as the papermill kernels that wrote them.
    """
    import papermill

    notebooks.run_all(
        executed, small=True, cwd=work, notebooks=notebooks.NOTEBOOKS[:3], progress=False
    )
    source = notebooks.NOTEBOOK_DIR / NOTEBOOK
    declared = notebooks.declared_parameters(source)
    own = {name: value for name, value in notebooks.SMALL_PARAMETERS.items() if name in declared}
    target = work / NOTEBOOK
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters=own,
        prepare_only=True,
        kernel_name=notebooks.KERNEL_NAME,
        progress_bar=False,
    )
    return target


def _png_pixels(page, picture) -> np.ndarray:
    """The pixels of the PNG an ``<img>`` shows, from its blob URL, unscaled by the page."""
    encoded = page.evaluate(_PNG_JS, picture.element_handle())
    png = Image.open(io.BytesIO(base64.b64decode(encoded)))
    return np.asarray(png.convert("RGB"), dtype=np.float64)


@pytest.mark.slow
def test_notebook_04_slider_changes_the_face_in_jupyterlab(tmp_path):
    """Run All in JupyterLab, drag a latent slider: the edited face changes, the input does not."""
    from playwright.sync_api import expect, sync_playwright

    work = tmp_path / "work"
    work.mkdir()
    prepared = _prepare_workspace(work, tmp_path / "executed")
    injected = json.loads(prepared.read_text())["cells"]
    assert any("injected-parameters" in cell["metadata"].get("tags", []) for cell in injected)
    state = tmp_path / "jupyter"
    state.mkdir()

    with _jupyterlab(work, state) as (url, token), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?reset&token={token}")
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=KERNEL_TIMEOUT_MS
            )
            # Run > Run All Cells acts on the current notebook: click into it first
            # (on a prompt; the first cell's text holds a link), and click the item
            # only once JupyterLab has enabled it.
            page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            run_all = page.get_by_role("menuitem", name="Run All Cells", exact=True)
            expect(run_all).to_be_enabled()
            run_all.click()
            page.wait_for_function(_STARTED_JS, timeout=WIDGET_TIMEOUT_MS)
            page.wait_for_function(_FINISHED_JS, timeout=RUN_ALL_TIMEOUT_MS, polling=1000)
            errors = [
                text
                for text in page.locator(
                    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                ).all_inner_texts()
                if "Traceback" in text
            ]
            assert errors == [], f"notebook 04 failed in JupyterLab:\n{errors[0][-3000:]}"

            # The latent sliders are the FloatSliders whose label carries "α";
            # the face picker is the IntSlider labelled "face".
            output = page.locator(".jp-OutputArea-output").filter(
                has=page.locator(".widget-hslider")
            )
            slider = output.locator(".widget-hslider").filter(has_text="α").first
            picture = output.locator("img").first
            slider.scroll_into_view_if_needed()
            picture.wait_for(state="visible", timeout=WIDGET_TIMEOUT_MS)
            readout = slider.locator(".widget-readout")
            expect(readout).to_have_text(re.compile(r"\d"), timeout=WIDGET_TIMEOUT_MS)
            readout_before = readout.text_content().strip()
            page.wait_for_function(
                _SETTLED_JS, arg=picture.element_handle(), timeout=WIDGET_TIMEOUT_MS, polling=250
            )
            src_before = picture.get_attribute("src")
            before = _png_pixels(page, picture)

            # Drag the handle with the mouse, as a user would. The notebook left it
            # at the auto alpha, within the right half of the track: back to zero
            # (the plain reconstruction) when that is far enough, else further left.
            handle_box = slider.locator(".noUi-handle").first.bounding_box()
            track_box = slider.locator(".noUi-target").first.bounding_box()
            handle_x = handle_box["x"] + handle_box["width"] / 2
            y = handle_box["y"] + handle_box["height"] / 2
            at = (handle_x - track_box["x"]) / track_box["width"]
            target = 0.5 if at > 0.65 else 0.25
            page.mouse.move(handle_x, y)
            page.mouse.down()
            page.mouse.move(track_box["x"] + target * track_box["width"], y, steps=10)
            page.mouse.up()

            readout_after = readout.text_content().strip()
            assert readout_after != readout_before, "the drag did not move the slider"
            # The kernel answers each value with a new PNG, i.e. a new blob URL.
            # Wait for the first answer, then until the answers have stopped.
            page.wait_for_function(
                "([img, before]) => img.getAttribute('src') !== before",
                arg=[picture.element_handle(), src_before],
                timeout=WIDGET_TIMEOUT_MS,
            )
            page.wait_for_function(
                _SETTLED_JS, arg=picture.element_handle(), timeout=WIDGET_TIMEOUT_MS, polling=250
            )
            after = _png_pixels(page, picture)
            output.evaluate("(element) => element.scrollIntoView({block: 'center'})")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        except Exception:
            # What the browser showed when it went wrong, for CI logs and people.
            FAILURE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(FAILURE_SCREENSHOT))
            raise
        finally:
            browser.close()

    # LatentSliders shows input | edit side by side, each face 192 pixels square.
    assert before.shape == after.shape == (192, 384, 3)
    half = before.shape[1] // 2
    # Left: the chosen input face, untouched by any slider.
    assert np.abs(after[:, :half] - before[:, :half]).max() == 0
    # Right: the decoded edit, moved along the direction by the drag.
    change = np.abs(after[:, half:] - before[:, half:]).mean()
    # The tiny model's Sunglasses direction is weak (300 faces, a handful with sunglasses), so the
    # bar is low; a slider that does nothing gives exactly 0.
    assert change > 0.1, f"the edited face barely changed: mean |diff| = {change:.3f} / 255"
    print(f"slider {readout_before} -> {readout_after}: mean |diff| = {change:.2f} / 255")

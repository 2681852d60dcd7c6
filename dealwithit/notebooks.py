"""The notebooks' side of the package: open the workspace in a notebook, and run all four.

The notebooks share results only through files (the cache, ``weights/``, the
vectors), so they run one after another in one working folder; executed copies,
outputs included, are written to ``out_dir``. ``SMALL_PARAMETERS`` is the one
tiny configuration that the tests and ``python -m dealwithit notebooks --small``
use for every notebook (the recommenders / stellargraph pattern).

Importing this module imports TensorFlow with its start-up lines hidden
(``quiet.import_tensorflow``), which is why each notebook imports it first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dealwithit import quiet

quiet.import_tensorflow()

from dealwithit import model, pipeline  # noqa: E402  (after TensorFlow's quiet import)
from dealwithit.config import VAEConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_data.ipynb",
    "02_train_vae.ipynb",
    "03_latent_classifier.ipynb",
    "04_sunglasses_vector.ipynb",
)
KERNEL_NAME = "python3"

# A few hundred synthetic faces at 32x32, one or two epochs: every cell runs,
# nothing is learnt well. Each key is declared in the parameters cell of every
# notebook that uses it; run_all passes each notebook only its own keys.
SMALL_PARAMETERS: dict[str, Any] = {
    "n_synthetic": 300,
    "image_size": 32,
    "latent_dim": 16,
    "epochs": 2,
    "warmup_epochs": 1.0,
    "classifier_epochs": 1,
    "n_faces": 4,
    "n_evaluate": 100,
}


def open_workspace(data_dir: str | Path | None = None, image_size: int | None = None):
    """The ``pipeline.Workspace`` a notebook works in, from the repository root.

    Jupyter starts a kernel beside the notebook, so the working folder moves up
    to the repository (where ``data/``, ``weights/`` and ``outputs/`` are);
    the package's progress notes are shown in the cell output.

    Args:
        data_dir: CelebA-layout folder, or a folder of plain photos (its faces
            are aligned into one, ``pipeline.celeba_layout``); None:
            ``pipeline.default_data()``.
        image_size: Pixels per side; None: the size the VAE in this data set's
            weights was trained for (notebooks 03 and 04 follow notebook 02).

    Returns:
        A ``pipeline.Workspace``.

    Raises:
        pipeline.PipelineError: ``image_size`` is None and no VAE was trained yet.
    """
    if Path.cwd().name == "notebooks" and Path("../dealwithit").is_dir():
        os.chdir("..")
    quiet.show_notes()
    folder = pipeline.celeba_layout(data_dir) if data_dir is not None else pipeline.default_data()
    if image_size is None:
        vae_dir = pipeline.Workspace(folder).vae_dir
        if not (vae_dir / model.CONFIG_FILE).is_file():
            raise pipeline.PipelineError(
                f"Expected a trained VAE in {vae_dir}, found nothing. Run notebook 02 "
                "(or `python -m dealwithit train`) first."
            )
        image_size = model.read_config(VAEConfig, vae_dir).image_size
    return pipeline.Workspace(folder, image_size)


class NotebookError(Exception):
    """A notebook that failed: which one, the error, and where its executed copy is."""


def declared_parameters(path: str | Path) -> dict[str, Any]:
    """The names and default source text of a notebook's ``parameters`` cell.

    Args:
        path: An ``.ipynb`` file with one cell tagged ``parameters``.

    Returns:
        ``{name: default as written}`` in the cell's order.
    """
    import papermill  # only here: it is slow to import and only runs notebooks

    inferred = papermill.inspect_notebook(str(path))
    return {name: info["default"] for name, info in inferred.items()}


def _literal(value: Any) -> Any:
    """A value papermill writes back as the same Python literal (it quotes tuples and Paths)."""
    if isinstance(value, (tuple, list)):
        return [_literal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def run_all(
    out_dir: str | Path,
    small: bool = False,
    parameters: Mapping[str, Any] | None = None,
    *,
    cwd: str | Path | None = None,
    notebooks: Sequence[str] = NOTEBOOKS,
    notebook_dir: str | Path = NOTEBOOK_DIR,
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
) -> list[Path]:
    """Executes the notebooks in order and writes executed copies to ``out_dir``.

    Each notebook gets only the parameters its ``parameters`` cell declares,
    so one dict serves all four; a key no notebook declares is an error (a typo
    would otherwise be ignored silently).

    Args:
        out_dir: Folder for the executed copies (created).
        small: Start from ``SMALL_PARAMETERS`` (the tests' tiny run).
        parameters: Values that override the notebooks' defaults (and
            ``SMALL_PARAMETERS``), e.g. ``{"epochs": 50}``.
        cwd: Working folder of the kernels, where ``data/``, ``weights/`` and
            ``outputs/`` are read and written; default: the current folder, as
            for every other CLI step (the repository root under ``make``).
        notebooks: File names to run, in order.
        notebook_dir: Folder holding them.
        kernel_name: Jupyter kernel; "python3" resolves to this interpreter.
        progress: Show papermill's cell progress bar.

    Returns:
        The executed notebooks' paths, in run order.

    Raises:
        NotebookError: A notebook raised; the message names the cell and the
            executed copy that holds the traceback.
        ValueError: A parameter no notebook declares, or a missing notebook.
    """
    import papermill  # see declared_parameters

    values = {**(SMALL_PARAMETERS if small else {}), **dict(parameters or {})}
    notebook_dir = Path(notebook_dir)
    sources = [notebook_dir / name for name in notebooks]
    absent = [str(path) for path in sources if not path.is_file()]
    if absent:
        raise ValueError(
            f"Expected the notebooks {list(notebooks)}. Received missing files: {absent}"
        )
    declared = {path: declared_parameters(path) for path in sources}
    unknown = sorted(set(values) - {name for names in declared.values() for name in names})
    if unknown:
        known = sorted({name for names in declared.values() for name in names})
        raise ValueError(
            f"Expected parameters declared by the notebooks: {known}. Received unknown: {unknown}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    written = []
    for source in sources:
        target = out_dir / source.name
        own = {name: _literal(value) for name, value in values.items() if name in declared[source]}
        start = time.time()
        print(f"Running {source.name} in {cwd} with {own or 'its defaults'} -> {target}")
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=own,
                kernel_name=kernel_name,
                cwd=str(cwd),
                progress_bar=progress,
            )
        except papermill.PapermillExecutionError as error:
            raise NotebookError(
                f"{source.name} failed in cell In [{error.exec_count}]: {error.ename}: {error.evalue}. "
                f"The executed copy with the traceback is {target}."
            ) from error
        print(f"  done in {time.time() - start:.0f} s")
        written.append(target)
    return written

"""The walkthrough notebooks: committed clean, written by the house rules, and runnable.

The slow test runs all four in order through papermill with the one shared
``SMALL_PARAMETERS`` dict (a few hundred synthetic 32x32 faces, one or two
epochs) in a temporary working folder, so ``data/``, ``weights/`` and
``outputs/`` are created there and the repository is not touched.
"""

from __future__ import annotations

import ast
import json
import re
import sys

import nbformat
import pytest

from dealwithit import notebooks

PATHS = [notebooks.NOTEBOOK_DIR / name for name in notebooks.NOTEBOOKS]


def _read(path):
    return nbformat.read(path, as_version=4)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _dirty_cells(notebook) -> list[str]:
    """Cells that carry outputs or an execution count (a notebook must be committed clean)."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index}: execution_count={cell.execution_count}")
    return problems


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs_or_execution_counts(path):
    """Protects the repository from megabytes of outputs (clear them before committing)."""
    problems = _dirty_cells(_read(path))
    assert problems == [], f"{path.name} has outputs; clear them: {problems}"


def test_dirty_check_catches_outputs_and_execution_counts():
    """The clean check itself can fail: one output and one execution count are both caught."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("1 + 1", execution_count=3),
            nbformat.v4.new_code_cell(
                "print(2)", outputs=[nbformat.v4.new_output("stream", text="2\n")]
            ),
            nbformat.v4.new_markdown_cell("# fine"),
        ]
    )
    assert _dirty_cells(notebook) == ["cell 0: execution_count=3", "cell 1: 1 output(s)"]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_parameters_cell_is_first_and_holds_only_commented_literals(path):
    """One ``parameters`` cell, the first code cell: ``name = literal  # unit; full run: value``."""
    notebook = _read(path)
    tagged = [
        cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1
    cell = tagged[0]
    assert _code_cells(notebook)[0] is cell
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    names = []
    for line in cell.source.splitlines():
        assert re.fullmatch(r"[a-z][a-z0-9_]* = .+  # .+; full run: .+", line), line
        statement = ast.parse(line).body[0]
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1
        ast.literal_eval(statement.value)  # raises on anything but a literal
        names.append(statement.targets[0].id)
    # papermill must read every one of them, or run_all would drop the value silently.
    assert list(notebooks.declared_parameters(path)) == names


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_notebook_follows_the_house_rules(path):
    """No installs, autoreload, absolute paths or function definitions; seeded exactly once."""
    source = "\n".join(cell.source for cell in _code_cells(_read(path)))
    assert "!pip" not in source and "%pip" not in source
    assert "autoreload" not in source
    assert not re.search(r"[\"'](/|[A-Za-z]:\\)", source), "absolute path in a code cell"
    assert not re.search(r"^\s*(def|class) ", source, flags=re.MULTILINE), (
        "code belongs in dealwithit/"
    )
    assert source.count("keras.utils.set_random_seed(seed)") == 1


def test_later_notebooks_reuse_saved_codes_instead_of_encoding_again():
    """03 takes its codes from one ``pipeline.vector`` call; 04 loads what 03 saved."""
    source = {
        path.name: "\n".join(cell.source for cell in _code_cells(_read(path))) for path in PATHS
    }
    assert "encode_split" not in source["03_latent_classifier.ipynb"]
    assert source["03_latent_classifier.ipynb"].count("pipeline.vector(") == 1
    assert "encode_split" not in source["04_sunglasses_vector.ipynb"]
    assert "vectors.load_codes(" in source["04_sunglasses_vector.ipynb"]
    for name, text in source.items():
        assert "os.chdir" not in text, f"{name}: notebooks.open_workspace moves to the root"
        assert "notebooks.open_workspace(" in text, name


def test_small_parameters_are_declared_with_the_defaults_types():
    """Every SMALL_PARAMETERS key reaches a notebook, as the type that notebook declares."""
    declared = {}
    for path in PATHS:
        for name, default in notebooks.declared_parameters(path).items():
            declared.setdefault(name, set()).add(type(ast.literal_eval(default)))
    for name, value in notebooks.SMALL_PARAMETERS.items():
        assert name in declared, f"{name} is declared by no notebook"
        assert type(value) in declared[name] or type(None) in declared[name], name


def test_run_all_rejects_a_parameter_no_notebook_declares(tmp_path):
    """A typo ('epoch') is an error naming it, before any notebook runs."""
    with pytest.raises(ValueError, match=r"Received unknown: \['epoch'\]"):
        notebooks.run_all(tmp_path, parameters={"epoch": 3}, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_python3_kernel_runs_this_interpreter():
    """Kernel "python3" starts this venv's Python, so the notebooks see the installed package."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(notebooks.KERNEL_NAME).argv
    # jupyter_client replaces a bare "python"/"python3" by sys.executable at launch.
    assert argv[0] in {"python", f"python{sys.version_info[0]}", sys.executable}
    assert argv[1:3] == ["-m", "ipykernel_launcher"]


@pytest.mark.slow
def test_notebooks_run_in_order_with_the_small_parameters(tmp_path):
    """All four notebooks run, in order, from an empty folder; each shows a figure.

    Their results are only files, so checking the files each one promises also
    checks that the next one could read them.
    """
    work = tmp_path / "work"
    work.mkdir()
    written = notebooks.run_all(tmp_path / "executed", small=True, cwd=work, progress=False)

    assert [path.name for path in written] == list(notebooks.NOTEBOOKS)
    for path in written:
        executed = _read(path)
        outputs = [output for cell in _code_cells(executed) for output in cell.get("outputs", [])]
        errors = [output for output in outputs if output.output_type == "error"]
        assert errors == [], f"{path.name}: {errors}"
        images = [output for output in outputs if "image/png" in output.get("data", {})]
        assert len(images) >= 1, f"{path.name} shows no figure"
        injected = [
            c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
        ]
        assert len(injected) == 1, f"{path.name}: papermill injected no parameters"

    size = notebooks.SMALL_PARAMETERS["image_size"]
    assert (work / "data" / "synthetic" / "list_attr_celeba.txt").is_file()
    assert (work / "data" / "cache" / f"synthetic_{size}.h5").is_file()
    weights = work / "weights" / "synthetic"
    for folder in ("classifier", "judge", "vae", "vae_plain"):
        assert (weights / folder / "config.json").is_file(), folder
    vae_config = json.loads((weights / "vae" / "config.json").read_text())
    assert vae_config["image_size"] == size
    assert vae_config["latent_dim"] == notebooks.SMALL_PARAMETERS["latent_dim"]
    assert vae_config["discriminative"] is True
    assert (
        json.loads((weights / "vae_plain" / "config.json").read_text())["discriminative"] is False
    )
    assert (weights / "vectors" / "Sunglasses" / "vectors.json").is_file()
    outputs = work / "outputs" / "synthetic"
    assert (outputs / "dealwithit.gif").is_file()
    metrics = json.loads((outputs / "metrics.json").read_text())
    assert 0.0 <= metrics["flip_rate"] <= 1.0

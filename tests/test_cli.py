"""The command line: every command explains itself, and known errors are one clear line."""

import json
import os
import subprocess
import sys

import pytest

from dealwithit import cli

COMMANDS = ("synth", "prepare", "train", "vector", "evaluate", "apply", "demo", "notebooks")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"python -m dealwithit {command}" in text
    assert len(text.splitlines()) > 4


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert command in text


def test_missing_data_folder_is_one_line_exit_2(tmp_path, capsys):
    code = cli.main(["prepare", "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert "nowhere" in err and "synth" in err


def test_missing_weights_says_to_train(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["apply", "--weights", str(tmp_path / "weights" / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "python -m dealwithit train" in err


@pytest.mark.slow
def test_pipeline_end_to_end_from_the_command_line(tmp_path):
    """synth -> train -> vector -> evaluate -> apply, as a user types them (tiny sizes)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run(*args):
        result = subprocess.run(
            [sys.executable, "-m", "dealwithit", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    run("synth", "--n", "160", "--out", "data/synthetic", "--workers", "1")
    run(
        "train",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--classifier-epochs",
        "1",
        "--judge-epochs",
        "1",
    )
    assert (tmp_path / "weights/LAST").read_text().strip() == "weights/synthetic"
    out = run("vector")
    assert " on Z (" in out and "cosine with the paired (true) direction" in out
    run("evaluate", "--json", "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "latent_auc",
        "judge_auc",
        "flip_rate",
        "removal_flip_rate",
        "eye_band_share",
        "outside_change_ratio",
        "counterfactual_ratio",
        "alpha_curve",
    ):
        assert key in metrics
    assert metrics["counterfactual_ratio"] is not None, "synthetic sets have counterfactuals"
    run("apply", "--gif", "--index", "1")
    for name in (
        "face_1_dealwithit.png",
        "face_1_dealwithit.gif",
        "reconstructions.png",
        "roc.png",
    ):
        assert (tmp_path / "outputs/synthetic" / name).is_file(), name


@pytest.mark.slow
def test_demo_runs_every_step_and_says_where_the_pictures_are(tmp_path):
    """`make demo`'s command on a tiny synthetic set: all pictures and metrics.json appear."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dealwithit",
            "demo",
            "--n",
            "160",
            "--image-size",
            "32",
            "--epochs",
            "1",
        ],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = tmp_path / "outputs" / "synthetic"
    for name in ("slider_grid.png", "dealwithit.gif", "reconstructions.png", "dose_response.png"):
        assert (outputs / name).is_file(), name
        assert f"outputs/synthetic/{name}" in result.stdout, f"demo does not point at {name}"
    metrics = json.loads((tmp_path / "outputs" / "metrics.json").read_text())
    assert 0.0 <= metrics["flip_rate"] <= 1.0 and metrics["counterfactual_ratio"] is not None

"""The command line: every command explains itself, and known errors are one clear line."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dealwithit import cli, faces, model
from dealwithit.config import VAEConfig

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


def test_train_reads_discriminative_weights_and_logit_weight():
    args = cli.build_parser().parse_args(
        ["train", "--discriminative-weights", "1,0.5,1,2", "--logit-weight", "100"]
    )
    assert args.discriminative_weights == (1.0, 0.5, 1.0, 2.0)
    assert args.logit_weight == 100.0


def test_train_reads_named_logit_weights():
    args = cli.build_parser().parse_args(
        ["train", "--logit-weights", "Eyeglasses=1000,Sunglasses=5"]
    )
    config = cli.train_config(args, 64)
    assert config.logit_weights == (("Eyeglasses", 1000.0), ("Sunglasses", 5.0))
    saved = json.loads(json.dumps(config.to_dict()))
    assert VAEConfig.from_dict(saved) == config  # JSON's lists come back as pairs
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--logit-weights", "Eyeglasses"])


def test_train_mirror_reaches_the_vae_config():
    parse = cli.build_parser().parse_args
    assert cli.train_config(parse(["train", "--mirror"]), 64).mirror is True
    assert cli.train_config(parse(["train"]), 64).mirror is False


@pytest.mark.parametrize(
    "cpu, flag, expected",
    [
        ("bfloat16", "auto", "bfloat16"),
        ("float32", "auto", "float32"),
        ("bfloat16", "float32", "float32"),
        ("bfloat16", None, "float32"),
    ],
)
def test_train_precision_auto_takes_the_machines_choice(monkeypatch, cpu, flag, expected):
    monkeypatch.setattr(model, "fastest_precision", lambda: cpu)
    argv = ["train"] + (["--precision", flag] if flag else [])
    assert cli.train_config(cli.build_parser().parse_args(argv), 64).precision == expected


@pytest.mark.parametrize("text", ["1,a", "1,-1"])
def test_bad_discriminative_weights_are_refused_by_argparse(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["train", "--discriminative-weights", text])
    assert exit_info.value.code == 2
    assert "--discriminative-weights" in capsys.readouterr().err


def test_multi_worker_without_tf_config_says_how_to_set_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli.main(["train", "--data", str(tmp_path), "--strategy", "multi-worker"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "TF_CONFIG" in err and "Scaling out" in err


def test_a_target_probability_outside_0_1_is_refused_before_any_work(tmp_path, capsys):
    code = cli.main(["vector", "--data", str(tmp_path), "--target-probability", "1.5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "target_probability" in err


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
    assert not (tmp_path / "weights/LAST").exists(), "no hidden pointer to go stale"
    out = run("vector", "--target-probability", "0.9")
    assert " on Z (" in out and "cosine with the paired (true) direction" in out
    run("evaluate", "--json", "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["target_probability"] == 0.9, "vector's flag reaches auto alpha"
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
    done = re.search(r"Done in ([\d.]+) min \((.*)\)\. Look at:", result.stdout)
    assert done, result.stdout[-2000:]
    steps = dict(part.rsplit(" ", 1) for part in done.group(2).split(", "))
    assert list(steps)[:5] == ["synth", "train", "vector", "evaluate", "pictures"], steps
    assert sum(map(float, steps.values())) <= float(done.group(1)) + 0.1 * len(steps)


STARTUP_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")


def test_cli_stderr_holds_no_tensorflow_startup_lines(tiny_celeba, tmp_path):
    """A real `prepare` (it imports TensorFlow): its stderr is the progress bar, nothing else.

    TF_CPP_MIN_LOG_LEVEL is removed from the environment: the CLI must not rely on it.
    """
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "dealwithit", "prepare", "--data", str(tiny_celeba)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Cache " in result.stdout
    noise = [line for line in result.stderr.splitlines() if any(s in line for s in STARTUP_LINES)]
    assert noise == [], result.stderr
    # Written to a pipe, the bar refreshes at most every 30 s: its start and its end.
    assert result.stderr.count("img/s]") <= 2, result.stderr


def test_apply_keeps_working_when_the_last_trained_folder_is_deleted(
    tmp_path, monkeypatch, capsys, make_weights
):
    """Train elsewhere, delete it: `apply photo.jpg` edits with the weights that remain."""
    monkeypatch.chdir(tmp_path)
    older = make_weights(tmp_path / "weights" / "older")
    stamp = (older / "vae" / model.VAE_FILE).stat().st_mtime - 100
    os.utime(older / "vae" / model.VAE_FILE, (stamp, stamp))
    make_weights(tmp_path / "weights" / "last")
    face = faces.Face(
        box=(100.0, 80.0, 180.0, 220.0), landmarks=faces.TEMPLATE + (110.0, 20.0), confidence=1.0
    )
    monkeypatch.setattr(faces, "detect_faces", lambda photo: [face])
    Image.fromarray(np.full((300, 400, 3), 180, np.uint8)).save(tmp_path / "one.jpg")

    assert cli.main(["apply", "one.jpg", "--alpha", "3"]) == 0
    assert "using weights/last" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "weights" / "last")
    (tmp_path / "outputs" / "one_dealwithit.jpg").unlink()
    assert cli.main(["apply", "one.jpg", "--alpha", "3"]) == 0
    out = capsys.readouterr().out
    assert "using weights/older" in out and "one_dealwithit.jpg" in out
    assert (tmp_path / "outputs" / "one_dealwithit.jpg").is_file()
    shutil.rmtree(tmp_path / "weights" / "older")
    assert cli.main(["apply", "one.jpg", "--alpha", "3"]) == 2
    assert "python -m dealwithit train" in capsys.readouterr().err

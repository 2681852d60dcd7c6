"""benchmarks/convergence.py: the rule that says which seeds converged, on hand-made losses."""

import importlib
import math

import pytest
from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def convergence():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
        yield importlib.import_module("convergence")


def test_negative_losses_use_a_margin_of_abs_best(convergence):
    """best -100: the ceiling is -90, not -110 (10 % of a negative number would shrink it)."""
    losses = [-100.0, -95.0, -90.0, -89.0]
    assert convergence.converged(losses, 0.10) == [True, True, True, False]


def test_positive_losses_and_nan_runs(convergence):
    """best 200: ceiling 220; a NaN run (None or nan) never converges and is not the best."""
    losses = [210.0, None, 200.0, math.nan, 221.0]
    assert convergence.converged(losses, 0.10) == [True, False, True, False, False]
    assert convergence.converged([None, math.inf], 0.10) == [False, False]


def test_summary_counts_and_statistics_per_architecture(convergence):
    runs = [
        {"architecture": "conv", "nan": False, "held_out_loss": -100.0, "held_out": {"mse": 0.01}},
        {"architecture": "conv", "nan": False, "held_out_loss": -80.0, "held_out": {"mse": 0.001}},
        {"architecture": "conv", "nan": True, "held_out_loss": None},
        {"architecture": "ladder", "nan": False, "held_out_loss": 50.0},
    ]
    rows = convergence.summary(runs, 0.10)
    assert list(rows) == ["conv", "ladder"]
    conv = rows["conv"]
    assert (conv["runs"], conv["converged"], conv["nan"]) == (3, 1, 1)
    assert conv["mean"] == pytest.approx(-90.0)
    assert conv["sd"] == pytest.approx(math.sqrt(200.0))  # sample sd of -100 and -80
    assert (conv["min"], conv["max"]) == (-100.0, -80.0)
    assert rows["ladder"]["converged"] == 1 and rows["ladder"]["sd"] is None
    # PSNR of MSE 0.01 and 0.001: 20 and 30 dB; the NaN run has none.
    assert conv["psnr_mean"] == pytest.approx(25.0)
    assert conv["psnr_sd"] == pytest.approx(math.sqrt(50.0))
    assert rows["ladder"]["psnr_mean"] is None


def test_the_mse_rule_judges_the_pixels_not_the_loss(convergence):
    # Losses near zero: 10 % of |best| is 1 nat, so the second seed fails the loss rule.
    # Its pixels are 5 % worse (within the rule); the third seed's are 50 % worse (fails).
    runs = [
        {"architecture": "conv", "nan": False, "held_out_loss": 10.0, "held_out": {"mse": 0.010}},
        {"architecture": "conv", "nan": False, "held_out_loss": 15.0, "held_out": {"mse": 0.0105}},
        {"architecture": "conv", "nan": False, "held_out_loss": 10.5, "held_out": {"mse": 0.015}},
        {"architecture": "conv", "nan": True, "held_out_loss": None},
    ]
    conv = convergence.summary(runs, 0.10)["conv"]
    assert conv["converged"] == 2  # seeds 1 and 3 by the loss
    assert conv["converged_mse"] == 2  # seeds 1 and 2 by the pixels; NaN never converges

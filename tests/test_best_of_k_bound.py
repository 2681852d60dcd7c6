"""benchmarks/best_of_k_bound.py: the per-face best alpha bound, on a VAE whose decoder is a reshape."""

import importlib

import numpy as np
import pytest
from conftest import REPO_ROOT

from dealwithit import evaluate as edit_metrics


@pytest.fixture(scope="module")
def bound():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
        yield importlib.import_module("best_of_k_bound")


def _faces(seed=0, n=5, k=3):
    """z = the pixels; each face's K styles lie on its line z + a v at a = 2, 4, 6."""
    rng = np.random.default_rng(seed)
    original = rng.uniform(0, 1, (n, 2, 2, 3))
    direction = rng.normal(size=12)
    direction /= np.linalg.norm(direction)
    styles = np.stack(
        [original + a * direction.reshape(2, 2, 3) for a in (2.0, 4.0, 6.0)[:k]], axis=1
    )
    reconstruction = original + 0.1  # error 0.01 per pixel
    return original, direction, styles, reconstruction


def decode(z):
    return np.asarray(z).reshape(-1, 2, 2, 3)


def test_styles_on_the_line_are_reached_when_the_grid_holds_their_alpha(bound):
    original, direction, styles, reconstruction = _faces()
    z = original.reshape(len(original), -1)
    on_grid = bound.per_face_best_ratio(
        decode, z, direction, [0.0, 4.0], styles, reconstruction, original
    )
    assert on_grid == pytest.approx(0.0, abs=1e-12)
    # Off the grid by 1 along a unit direction: squared distance 1 over 12 pixels, / 0.01.
    off_grid = bound.per_face_best_ratio(
        decode, z, direction, [1.0, 3.0], styles, reconstruction, original
    )
    assert off_grid == pytest.approx((1.0 / 12) / 0.01)


def test_per_face_best_is_below_every_single_alpha(bound):
    original, direction, styles, reconstruction = _faces(seed=1)
    z = original.reshape(len(original), -1)
    grid = np.linspace(0, 8, 9)
    best = bound.per_face_best_ratio(decode, z, direction, grid, styles, reconstruction, original)
    for alpha in grid:
        fixed = edit_metrics.best_of_k_ratio(
            decode(z + alpha * direction[None]), styles, reconstruction, original
        )
        assert best <= fixed + 1e-12

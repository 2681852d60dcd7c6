"""The loss terms and the warm-up schedule: numbers, not just shapes."""

import math

import numpy as np
import pytest
from keras import ops

from dealwithit import losses


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_kl_of_standard_normal_is_zero():
    z = np.zeros((3, 8), "float32")
    np.testing.assert_allclose(_np(losses.kl_divergence(z, z)), 0.0, atol=1e-7)


def test_kl_matches_monte_carlo_estimate():
    """Protects the closed form: E_q[log q(z) - log p(z)] estimated by sampling."""
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(1, 4)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(1, 4)).astype("float32")
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.normal(size=(200_000, 4))
    log_q = -0.5 * (((z - mean) / std) ** 2 + log_var + math.log(2 * math.pi))
    log_p = -0.5 * (z**2 + math.log(2 * math.pi))
    monte_carlo = (log_q - log_p).sum(axis=1).mean()
    closed = _np(losses.kl_divergence(mean, log_var))[0]
    assert closed == pytest.approx(monte_carlo, rel=0.02)


def test_kl_sums_over_latent_dimensions():
    """Summing (not averaging) per example: doubling the dims doubles the KL."""
    mean = np.full((2, 3), 0.5, "float32")
    log_var = np.full((2, 3), -0.3, "float32")
    single = _np(losses.kl_divergence(mean, log_var))
    double = _np(losses.kl_divergence(np.tile(mean, 2), np.tile(log_var, 2)))
    np.testing.assert_allclose(double, 2 * single, rtol=1e-6)


def test_gaussian_nll_matches_formula():
    x = np.array([[0.2, 0.9]], "float32")
    mean = np.array([[0.3, 0.5]], "float32")
    log_sigma = np.array([-1.0, 0.5], "float32")
    sigma = np.exp(log_sigma)
    expected = np.sum(0.5 * ((x - mean) / sigma) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi))
    assert _np(losses.gaussian_nll(x, mean, log_sigma))[0] == pytest.approx(expected, rel=1e-5)


def test_bernoulli_nll_is_binary_cross_entropy():
    x = np.array([[1.0, 0.0, 0.5]], "float32")
    p = np.array([[0.8, 0.1, 0.5]], "float32")
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    assert _np(losses.bernoulli_nll(x, p))[0] == pytest.approx(expected, rel=1e-5)


def test_discriminative_loss_zero_for_identical_features_positive_otherwise():
    rng = np.random.default_rng(1)
    f = [
        rng.normal(size=(2, 4, 4, 3)).astype("float32"),
        rng.normal(size=(2, 2, 2, 5)).astype("float32"),
    ]
    scales = [np.ones(3, "float32"), np.full(5, 2.0, "float32")]
    same = _np(losses.discriminative_loss(f, f, scales, [1.0, 1.0]))
    np.testing.assert_allclose(same, 0.0, atol=1e-7)
    moved = [f[0] + 1.0, f[1]]
    diff = _np(losses.discriminative_loss(f, moved, scales, [0.5, 1.0]))
    # 0.5 weight * 0.5 * (1/1)^2 * 4*4*3 units = 12 per example.
    np.testing.assert_allclose(diff, 12.0, rtol=1e-6)


def test_discriminative_loss_rejects_mismatched_lists():
    f = [np.zeros((1, 2, 2, 1), "float32")]
    with pytest.raises(ValueError, match="one scale and one weight"):
        losses.discriminative_loss(f, f, [np.ones(1, "float32")], [1.0, 1.0])


def test_kl_warmup_ends_and_middle():
    assert losses.kl_warmup(0, 100) == 0.0
    assert losses.kl_warmup(50, 100) == pytest.approx(0.5)
    assert losses.kl_warmup(100, 100) == 1.0
    assert losses.kl_warmup(10_000, 100) == 1.0
    assert losses.kl_warmup(0, 100, start=0.2) == pytest.approx(0.2)
    assert losses.kl_warmup(0, 0) == 1.0


def test_kl_warmup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Expected warmup_steps >= 0"):
        losses.kl_warmup(0, -1)
    with pytest.raises(ValueError, match="0 <= start <= 1"):
        losses.kl_warmup(0, 10, start=1.5)

"""The VAE architectures: shapes, saving, the ladder's per-layer KL and warm-up, the spatial grid."""

import keras
import numpy as np
import pytest
from keras import ops

from dealwithit import losses, model
from dealwithit.config import VAEConfig
from dealwithit.layers import precision_weighted

SMALL = dict(
    image_size=16,
    latent_dim=6,
    filters=(8, 16),
    ladder_dims=(10, 8),
    discriminative_weights=(1.0, 0.5),
)
ARCHITECTURES = ("conv", "resnet", "ladder")


def _numpy(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shapes_and_public_interface(architecture, classifier, images):
    """encode gives the top latent, decode reads it, encode_all concatenates every layer."""
    vae = model.build_vae(VAEConfig(**SMALL, architecture=architecture), classifier)
    out = vae(images)
    assert tuple(out["reconstruction"].shape) == (8, 16, 16, 3)
    z_mean, z_log_var = vae.encode(images)
    assert tuple(z_mean.shape) == tuple(z_log_var.shape) == (8, 6)
    assert tuple(vae.decode(z_mean).shape) == (8, 16, 16, 3)
    expected = 6 + 10 + 8 if architecture == "ladder" else 6
    assert tuple(vae.encode_all(images).shape) == (8, expected)
    assert tuple(vae.reconstruct(images).shape) == (8, 16, 16, 3)
    if architecture == "resnet":
        assert len([x for x in vae.encoder.layers if x.name.endswith("_res_add")]) == 2
    if architecture == "ladder":
        assert isinstance(vae, model.LadderVAE)
        assert [tuple(out[f"z_{i}"].shape) for i in (1, 2, 3)] == [(8, 10), (8, 8), (8, 6)]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_save_and_safe_mode_load_round_trip(architecture, classifier, images, tmp_path):
    vae = model.build_vae(VAEConfig(**SMALL, architecture=architecture), classifier)
    model.save_vae(vae, tmp_path)
    loaded = model.load_vae(tmp_path)  # safe_mode=True inside
    assert type(loaded) is type(vae) and loaded.config == vae.config
    z = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(_numpy(loaded.decode(z)), _numpy(vae.decode(z)), atol=1e-6)
    np.testing.assert_allclose(
        _numpy(loaded.encode_all(images)), _numpy(vae.encode_all(images)), atol=1e-5
    )
    assert len(loaded.weights) == len(vae.weights)


def test_precision_weighting_matches_the_closed_form():
    """Variances 1 and 4: precision 1.25, so var 0.8 and mean 0.8 * (2/1 + 7/4)."""
    mean, log_var = precision_weighted(
        np.array([[2.0]]), np.log([[1.0]]), np.array([[7.0]]), np.log([[4.0]])
    )
    np.testing.assert_allclose(_numpy(log_var), np.log([[0.8]]), rtol=1e-6)
    np.testing.assert_allclose(_numpy(mean), [[0.8 * (2.0 + 7.0 / 4.0)]], rtol=1e-6)


def test_gaussian_kl_is_zero_for_equal_and_matches_standard_kl():
    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(
        _numpy(losses.gaussian_kl(mean, log_var, mean, log_var)), 0, atol=1e-9
    )
    np.testing.assert_allclose(
        _numpy(losses.gaussian_kl(mean, log_var, np.zeros_like(mean), np.zeros_like(mean))),
        _numpy(losses.kl_divergence(mean, log_var)),
        rtol=1e-9,
    )


def _log_normal(z, mean, log_var):
    return -0.5 * np.sum(np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var), -1)


def test_ladder_kl_of_each_layer_is_its_own(images):
    """Each logged layer's KL equals a Monte Carlo estimate of E_q[log q(z_i) - log p(z_i | z_i+1)].

    The trained-for-a-step ladder has distinct posteriors and priors in every
    layer, so a term computed on the wrong layer's distributions would miss.
    """
    config = VAEConfig(**SMALL, architecture="ladder", discriminative=False)
    vae = model.build_vae(config)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    vae.fit(images, epochs=2, batch_size=8, verbose=0)
    out = {k: _numpy(v).astype(np.float64) for k, v in vae(images).items()}
    terms = [_numpy(t) for t in vae.kl_terms(out)]
    assert len(terms) == 3 and all(t.shape == (8,) for t in terms)
    rng = np.random.default_rng(0)
    samples = 20_000
    for i in (1, 2, 3):
        mean, log_var = out[f"z_mean_{i}"], out[f"z_log_var_{i}"]
        prior_mean = out.get(f"prior_mean_{i}", np.zeros_like(mean))
        prior_log_var = out.get(f"prior_log_var_{i}", np.zeros_like(mean))
        z = mean + np.exp(0.5 * log_var) * rng.normal(size=(samples, *mean.shape))
        estimate = np.mean(
            _log_normal(z, mean, log_var) - _log_normal(z, prior_mean, prior_log_var), axis=0
        )
        np.testing.assert_allclose(terms[i - 1], estimate, rtol=0.05, atol=0.05)
    assert len({round(float(t.mean()), 3) for t in terms}) == 3, "each layer has its own KL"


def test_warmup_weight_reaches_every_ladder_layer(images):
    """On fixed outputs, loss(beta=1) - loss(beta=0) is the mean of the sum of every layer's KL."""
    vae = model.build_vae(VAEConfig(**SMALL, architecture="ladder", discriminative=False))
    out = vae(images)
    totals = {}
    for beta in (0.0, 1.0):
        vae.kl_weight.assign(beta)
        totals[beta] = float(_numpy(vae.compute_loss(images, y_pred=out)))
    terms = [float(_numpy(t).mean()) for t in vae.kl_terms(out)]
    assert all(t > 0 for t in terms)
    assert totals[1.0] - totals[0.0] == pytest.approx(sum(terms), rel=1e-4)
    logged = {m.name: float(_numpy(m.result())) for m in vae.metrics}
    assert [logged[f"kl_loss_{i}"] for i in (1, 2, 3)] == pytest.approx(terms, rel=1e-5)


def test_spatial_latent_is_a_grid_each_cell_drawing_its_own_region(images, tmp_path):
    """z is the 4x4 grid flattened (16 cells x 2 channels); a cell moves its corner, not the far one."""
    config = VAEConfig(**{**SMALL, "latent_dim": 32}, architecture="spatial", discriminative=False)
    vae = model.build_vae(config)
    assert config.spatial_grid() == (4, 2)
    z_mean, z_log_var = vae.encode(images)
    assert tuple(z_mean.shape) == tuple(z_log_var.shape) == (8, 32)
    np.testing.assert_allclose(_numpy(z_log_var), 0.0)  # unit posterior variance at the start
    z = np.random.default_rng(2).normal(size=(1, 32)).astype("float32")
    moved = z.copy()
    moved[0, :2] += 5.0  # both channels of cell (0, 0): the top-left 4x4 pixels
    change = np.abs(_numpy(vae.decode(moved)) - _numpy(vae.decode(z)))[0].sum(axis=-1)
    assert change[:4, :4].max() > 1e-3
    np.testing.assert_allclose(change[12:, 12:], 0.0, atol=1e-7)  # beyond its receptive field
    model.save_vae(vae, tmp_path)
    loaded = model.load_vae(tmp_path)
    np.testing.assert_allclose(_numpy(loaded.decode(z)), _numpy(vae.decode(z)), atol=1e-6)


def test_spatial_latent_size_must_fill_its_grid():
    with pytest.raises(ValueError, match="divisible by its 4x4 grid"):
        VAEConfig(**SMALL, architecture="spatial")  # latent_dim 6 over 16 cells


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="Expected architecture one of"):
        VAEConfig(architecture="transformer")
    with pytest.raises(ValueError, match="1 or 2 positive latent sizes"):
        VAEConfig(ladder_dims=(8, 8, 8))


def test_transfer_copies_the_classifier_stages(classifier):
    config = VAEConfig(**SMALL, architecture="conv", transfer_stages=2)
    vae = model.build_vae(config, classifier)
    for i in (1, 2):
        copied = vae.encoder.get_layer(f"encoder_{i}_conv").get_weights()
        source = classifier.get_layer(f"stage_{i}_conv").get_weights()
        for a, b in zip(copied, source):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="Expected an attribute classifier to copy"):
        model.build_vae(config.replace(discriminative=False), None)

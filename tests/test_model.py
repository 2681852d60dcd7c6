"""The VAE and the attribute classifier: shapes, loss wiring, saving and loading."""

import keras
import numpy as np
import pytest
from keras import ops

from dealwithit import cpu, model
from dealwithit.config import VAEConfig

SMALL = dict(
    image_size=16,
    architecture="conv",
    latent_dim=6,
    filters=(8, 16),
    discriminative_weights=(1.0, 0.5),
)


def _vae(classifier=None, attribute_names=None, **changes):
    config = VAEConfig(**{**SMALL, "discriminative": classifier is not None, **changes})
    return model.build_vae(config, classifier, attribute_names)


def test_shapes(classifier, images):
    vae = _vae(classifier)
    out = vae(images)
    assert tuple(out["reconstruction"].shape) == (8, 16, 16, 3)
    for key in ("z_mean", "z_log_var", "z"):
        assert tuple(out[key].shape) == (8, 6)
    assert tuple(classifier(images).shape) == (8, 40)
    recon = ops.convert_to_numpy(out["reconstruction"])
    assert recon.min() >= 0.0 and recon.max() <= 1.0


def test_kl_weight_reaches_the_compiled_loss(images):
    """β=0 and β=1 on the same batch differ by exactly the mean KL (the compile-time pitfall)."""
    vae = _vae(None)
    vae.compile(optimizer="adam")
    vae.kl_weight.assign(0.0)
    at_zero = vae.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    vae.kl_weight.assign(1.0)
    at_one = vae.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    assert at_zero["kl_weight"] == 0.0 and at_one["kl_weight"] == 1.0
    # Sampling noise differs between the calls, so compare each total with its own parts.
    assert at_zero["loss"] == pytest.approx(at_zero["reconstruction_loss"], rel=1e-5)
    assert at_one["loss"] == pytest.approx(
        at_one["reconstruction_loss"] + at_one["kl_loss"], rel=1e-5
    )
    assert at_one["kl_loss"] > 0


def test_discriminative_term_zero_for_perfect_reconstruction(classifier, images):
    vae = _vae(classifier)
    vae.calibrate_feature_scales(images)
    same = ops.convert_to_numpy(vae.discriminative_term(images, images))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    blurred = (images + images[::-1]) / 2
    assert np.all(ops.convert_to_numpy(vae.discriminative_term(images, blurred)) > 0)


def _logit_terms(classifier, images, other):
    """Per logit, 0.5 * ((l(x) - l(x')) / sd)^2, with sd each logit's spread over ``images``: (n, 40)."""
    logits = ops.convert_to_numpy(classifier(images, training=False))
    logits_other = ops.convert_to_numpy(classifier(other, training=False))
    scale = np.maximum(logits.std(axis=0), 1e-3)
    return 0.5 * ((logits - logits_other) / scale) ** 2


def test_logit_term_adds_the_weighted_logit_distance(classifier, images):
    """``logit_weight`` adds exactly w * 0.5 * sum(((l(x) - l(x')) / sd)^2) over the logits."""
    stages_only = _vae(classifier, logit_weight=0.0)
    with_logits = _vae(classifier, logit_weight=3.0)
    assert len(with_logits.feature_scales) == len(stages_only.feature_scales) + 1
    for vae in (stages_only, with_logits):
        vae.calibrate_feature_scales(images)
    other = images[::-1]
    expected = 3.0 * _logit_terms(classifier, images, other).sum(axis=1)
    added = ops.convert_to_numpy(with_logits.discriminative_term(images, other)) - (
        ops.convert_to_numpy(stages_only.discriminative_term(images, other))
    )
    np.testing.assert_allclose(added, expected, rtol=1e-3)
    np.testing.assert_allclose(
        ops.convert_to_numpy(with_logits.discriminative_term(images, images)), 0.0, atol=1e-6
    )


def test_logit_weight_survives_save_and_load(tmp_path, classifier, images):
    vae = _vae(classifier, logit_weight=2.0)
    vae.calibrate_feature_scales(images)
    model.save_vae(vae, tmp_path)
    loaded = model.load_vae(tmp_path)
    assert loaded.config.logit_weight == 2.0
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.discriminative_term(images, images[::-1])),
        ops.convert_to_numpy(vae.discriminative_term(images, images[::-1])),
        rtol=1e-5,
    )


def test_named_logit_weights_replace_the_shared_weight_for_those_logits(
    tmp_path, classifier, images
):
    """logit_weights=((name, w),) weights that one logit w, the rest logit_weight; kept on save."""
    names = [f"attribute_{i}" for i in range(40)]
    shared = _vae(classifier, logit_weight=3.0)
    named = _vae(classifier, names, logit_weight=3.0, logit_weights=(("attribute_5", 30.0),))
    for vae in (shared, named):
        vae.calibrate_feature_scales(images)
    other = images[::-1]
    one_logit = _logit_terms(classifier, images, other)[:, 5]
    added = ops.convert_to_numpy(named.discriminative_term(images, other)) - (
        ops.convert_to_numpy(shared.discriminative_term(images, other))
    )
    np.testing.assert_allclose(added, (30.0 - 3.0) * one_logit, rtol=1e-3, atol=1e-4)
    model.save_vae(named, tmp_path)
    loaded = model.load_vae(tmp_path)
    assert loaded.config.logit_weights == (("attribute_5", 30.0),)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.discriminative_term(images, other)),
        ops.convert_to_numpy(named.discriminative_term(images, other)),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="Unknown"):
        _vae(classifier, names, logit_weights=(("Nope", 1.0),))
    with pytest.raises(ValueError, match="one name per classifier logit"):
        _vae(classifier, names[:3], logit_weights=(("attribute_5", 30.0),))
    with pytest.raises(ValueError, match="Expected attribute_names"):
        _vae(classifier, logit_weights=(("attribute_5", 30.0),))
    with pytest.raises(ValueError, match="logit_weight > 0"):
        VAEConfig(logit_weight=0.0, logit_weights=(("Eyeglasses", 10.0),))


def test_discriminative_off_contributes_nothing(images):
    vae = _vae(None)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(vae.discriminative_term(images, images[::-1])), 0
    )


def test_discriminative_requires_classifier():
    with pytest.raises(ValueError, match="Expected an attribute classifier"):
        model.build_vae(VAEConfig(**SMALL, discriminative=True), None)


def test_classifier_stays_frozen_while_vae_trains(classifier, images):
    vae = _vae(classifier)
    before = [w.copy() for w in classifier.get_weights()]
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    vae.fit(images, epochs=2, batch_size=4, verbose=0)
    for a, b in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_round_trip(tmp_path, classifier, images):
    vae = _vae(classifier)
    vae.calibrate_feature_scales(images)
    model.save_vae(vae, tmp_path)
    loaded = model.load_vae(tmp_path)
    assert loaded.config == vae.config
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.encode(images)[0]),
        ops.convert_to_numpy(vae.encode(images)[0]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.discriminative_term(images, images[::-1])),
        ops.convert_to_numpy(vae.discriminative_term(images, images[::-1])),
        rtol=1e-5,
    )


def test_load_refuses_other_image_size(tmp_path):
    model.save_vae(_vae(None), tmp_path)
    with pytest.raises(model.WeightsError, match="built for 16x16"):
        model.load_vae(tmp_path, image_size=32)


def test_load_refuses_truncated_file(tmp_path):
    model.save_vae(_vae(None), tmp_path)
    path = tmp_path / model.VAE_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(model.WeightsError, match="truncated"):
        model.load_vae(tmp_path)


def test_load_missing_weights_says_what_to_do(tmp_path):
    with pytest.raises(model.WeightsError, match="python -m dealwithit train"):
        model.load_vae(tmp_path)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="likelihood"):
        VAEConfig(likelihood="laplace")
    with pytest.raises(ValueError, match="divisible"):
        VAEConfig(image_size=20, filters=(8, 16, 32))


def test_bernoulli_likelihood_trains(images):
    vae = _vae(None, likelihood="bernoulli")
    vae.compile(optimizer="adam")
    logs = vae.fit(images, epochs=1, batch_size=4, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    assert not vae.pixel_log_sigma.trainable


def test_float16_precision_builds_for_gpus_with_loss_scaling():
    """precision="float16" (the GPU choice): mixed_float16 layers, float32 variables and
    outputs, and compile() wraps the optimizer in Keras' loss scaling."""
    import keras

    config = VAEConfig(
        image_size=16, architecture="conv", latent_dim=4, filters=(8, 16), discriminative=False
    )
    vae = model.build_vae(config.replace(precision="float16"))
    assert keras.mixed_precision.global_policy().name == "float32"
    assert vae.decoder.get_layer("to_rgb").dtype_policy.name == "mixed_float16"
    assert {v.dtype for v in vae.weights} == {"float32"}
    vae.compile(optimizer=keras.optimizers.Adam())
    assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(ValueError, match="Received: precision='half'"):
        config.replace(precision="half")


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # AMD EPYC here
        ({"avx2", "amx_bf16", "amx_tile"}, "bfloat16"),  # Intel Xeon with AMX
        ({"avx2", "avx512f"}, "float32"),
        (set(), "float32"),  # no /proc/cpuinfo
    ],
)
def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(monkeypatch, flags, expected):
    monkeypatch.setattr(model, "cpu_flags", lambda: flags)
    assert model.fastest_precision() == expected


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu.cpu_flags(tmp_path / "absent") == set()

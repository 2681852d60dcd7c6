"""Training: the loss goes down, warm-up reaches the loss, runs resume, NaN is caught."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from dealwithit import model, training
from dealwithit.config import AttributeClassifierConfig, VAEConfig

TINY = dict(image_size=16, latent_dim=8, filters=(8, 16), batch_size=16, discriminative=False)


def _history(directory):
    return training.read_history(directory)


def test_a_few_epochs_lower_the_loss(synthetic_cache, tmp_path):
    config = VAEConfig(**TINY, epochs=6, warmup_epochs=0, learning_rate=3e-3)
    _, history = training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 100, losses
    assert (tmp_path / model.VAE_FILE).is_file() and (tmp_path / model.CONFIG_FILE).is_file()
    assert VAEConfig.from_json(tmp_path / model.CONFIG_FILE) == config


def test_kl_weight_ramps_per_batch_and_is_logged(synthetic_cache, tmp_path):
    """76 train images / 16 = 5 steps an epoch; warm-up of 2 epochs = 10 steps."""
    config = VAEConfig(**TINY, epochs=3, warmup_epochs=2)
    vae, history = training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    beta = history.history["kl_weight"]
    # Epoch means of beta over steps 0..4, 5..9, 10..14 of a 10-step ramp.
    np.testing.assert_allclose(beta, [0.2, 0.7, 1.0], atol=1e-6)
    assert float(vae.kl_weight.numpy()) == 1.0
    assert list(_history(tmp_path)["kl_weight"]) == pytest.approx(beta)


def test_training_is_repeatable_with_a_seed(synthetic_cache, tmp_path):
    config = VAEConfig(**TINY, epochs=2, warmup_epochs=1, seed=3)
    _, first = training.train_vae(synthetic_cache, config, tmp_path / "a", progress=False)
    _, second = training.train_vae(synthetic_cache, config, tmp_path / "b", progress=False)
    assert first.history["loss"] == pytest.approx(second.history["loss"], rel=1e-5)


class _StopAt(keras.callbacks.Callback):
    """Simulates Ctrl-C at the start of an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_last_finished_epoch(synthetic_cache, tmp_path):
    config = VAEConfig(**TINY, epochs=4, warmup_epochs=3)
    with pytest.raises(KeyboardInterrupt):
        training.train_vae(
            synthetic_cache, config, tmp_path, progress=False, callbacks=(_StopAt(2),)
        )
    assert (tmp_path / training.BACKUP_DIR).is_dir()
    assert not (tmp_path / model.VAE_FILE).exists(), "no final model before training ends"
    vae, history = training.train_vae(
        synthetic_cache, config, tmp_path, resume=True, progress=False
    )
    assert len(history.history["loss"]) == 2, "only epochs 3 and 4 run again"
    log = _history(tmp_path)
    assert list(log["epoch"]) == [0, 1, 2, 3]
    # The optimizer's step counter (and so the warm-up ramp) continued, not restarted.
    assert int(vae.optimizer.iterations.numpy()) == 4 * 5
    assert log["kl_weight"][2] > log["kl_weight"][1]
    assert not (tmp_path / training.BACKUP_DIR).exists(), "backup removed after success"


def test_nan_loss_stops_with_a_clear_message(synthetic_cache, tmp_path):
    config = VAEConfig(**TINY, epochs=3, warmup_epochs=0, learning_rate=1e12)
    with pytest.raises(training.TrainingError, match="NaN or infinite.*lower learning_rate"):
        training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    assert not (tmp_path / model.VAE_FILE).exists()


def test_cache_of_another_size_is_refused(synthetic_cache, tmp_path):
    config = VAEConfig(**{**TINY, "image_size": 32}, epochs=1)
    with pytest.raises(training.TrainingError, match="Expected a cache of 32x32"):
        training.train_vae(synthetic_cache, config, tmp_path, progress=False)


def test_attribute_classifier_reports_every_attribute(synthetic_cache, tmp_path):
    config = AttributeClassifierConfig(image_size=16, filters=(8, 16), epochs=2, batch_size=16)
    classifier, report = training.train_attribute_classifier(
        synthetic_cache, config, tmp_path, progress=False
    )
    from dealwithit import data

    with data.CelebACache(synthetic_cache) as cache:
        names = cache.attribute_names  # CelebA's 40 and the renderer's Sunglasses
    assert [k for k in report if k[0].isupper() or k[0].isdigit()] == list(names)
    assert 0.0 <= report["Eyeglasses"] <= 1.0 and report["n"] == 10
    saved = json.loads((tmp_path / "attribute_accuracy.json").read_text())
    assert saved["mean_accuracy"] == pytest.approx(report["mean_accuracy"])
    loaded, loaded_config = model.load_classifier(tmp_path)
    assert loaded_config == config.replace(attribute_names=tuple(names))
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), classifier(x), atol=1e-6)


def test_dr_vae_trains_with_frozen_classifier(synthetic_cache, tmp_path):
    classifier = model.build_attribute_classifier(
        AttributeClassifierConfig(image_size=16, filters=(8, 16))
    )
    config = VAEConfig(
        **{**TINY, "discriminative": True}, discriminative_weights=(1.0, 0.5), epochs=1
    )
    vae, history = training.train_vae(
        synthetic_cache, config, tmp_path, classifier=classifier, progress=False
    )
    assert history.history["discriminative_loss"][0] > 0
    assert model.load_vae(tmp_path).feature_extractor is not None


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dealwithit import training
    from dealwithit.config import VAEConfig
    cache, out = sys.argv[1], sys.argv[2]
    config = VAEConfig(image_size=16, latent_dim=8, filters=(8, 16), batch_size=16,
                       discriminative=False, epochs=1, warmup_epochs=0)
    _, single = training.train_vae(cache, config, out + "/single", progress=False)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    _, mirrored = training.train_vae(cache, config, out + "/mirrored", progress=False, strategy=strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "single": single.history["loss"][0], "mirrored": mirrored.history["loss"][0]}))
    """
)


def test_mirrored_strategy_matches_single_device(synthetic_cache, tmp_path):
    """One epoch on 2 logical CPUs gives the single-device loss (up to sampling noise)."""
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(synthetic_cache), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["replicas"] == 2
    assert numbers["mirrored"] == pytest.approx(numbers["single"], rel=0.02)


def test_fit_opens_one_iterator_per_dataset(synthetic_cache, tmp_path, monkeypatch):
    """Keras 3, given a finite dataset and no step count, opens a new iterator at the end of
    every epoch and another at the start of the next. Dropping a part-read ``from_generator``
    iterator stalled ~38 s before every other epoch on the real subset. Training must open one
    training iterator for the whole run (validation opens one per evaluation)."""
    import tensorflow as tf

    opened = []
    original = tf.data.Dataset.__iter__

    def counting(self):
        opened.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", counting)
    config = VAEConfig(**TINY, epochs=4, warmup_epochs=1)
    training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    assert len(opened) == 1 + config.epochs, opened


def test_judge_reports_auc_and_balanced_accuracy_on_held_out_faces_only(synthetic_cache, tmp_path):
    """attribute_report.json holds the valid split's 10 faces, not the 76 training ones.

    Its numbers are recomputed here from the saved judge and the valid faces.
    """
    from sklearn.metrics import roc_auc_score

    from dealwithit import data
    from dealwithit.config import JudgeConfig

    config = JudgeConfig(image_size=16, filters=(8, 16), dense_units=16, epochs=1, batch_size=16)
    training.train_attribute_classifier(synthetic_cache, config, tmp_path, progress=False)
    report = json.loads((tmp_path / training.ATTRIBUTE_REPORT_FILE).read_text())
    with data.CelebACache(synthetic_cache) as cache:
        images, labels = cache.images("valid"), cache.attributes("valid") > 0
        names = cache.attribute_names
    assert report["split"] == "valid" and report["n"] == len(images) == 10
    assert list(report["attributes"]) == list(names)
    judge, loaded_config = model.load_classifier(tmp_path)
    assert loaded_config.attribute_names == tuple(names), "outputs named from the cache"
    assert loaded_config.replace(attribute_names=()).to_dict() == config.to_dict()
    probabilities = model.classifier_fn(judge)(images)
    for k, name in enumerate(names):
        row = report["attributes"][name]
        assert row["positive_rate"] == pytest.approx(labels[:, k].mean())
        if 0 < labels[:, k].sum() < len(labels):
            assert row["roc_auc"] == pytest.approx(roc_auc_score(labels[:, k], probabilities[:, k]))
        else:
            assert row["roc_auc"] is None


def test_judge_augments_in_training_only():
    """The augmentation layers change a face when training and leave it alone otherwise."""
    from dealwithit.config import JudgeConfig
    from dealwithit.data import CELEBA_ATTRIBUTES

    names = (*CELEBA_ATTRIBUTES, "Sunglasses")
    config = JudgeConfig(image_size=16, filters=(8, 16), dense_units=16, attribute_names=names)
    judge = model.build_attribute_classifier(config)
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    augment = judge.get_layer("augmentation")
    np.testing.assert_array_equal(augment(x, training=False), x)
    assert float(np.abs(keras.ops.convert_to_numpy(augment(x, training=True)) - x).max()) > 0.05
    assert judge(x).shape == (4, 41)
    np.testing.assert_array_equal(judge(x, training=False), judge(x, training=False))

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

MULTI_WORKER_TOLERANCE = 0.01
# The default (spatial) architecture at 16 px: a 4x4 grid of one channel.
TINY = dict(image_size=16, latent_dim=16, filters=(8, 16), batch_size=16, discriminative=False)


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


class _LearningRates(keras.callbacks.Callback):
    """Records the optimizer's learning rate at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_cosine_decay_reaches_zero_and_a_resumed_run_stays_on_the_curve(synthetic_cache, tmp_path):
    """5 steps an epoch, 4 epochs: the rate after epoch k is 1e-3 * (1 + cos(pi k / 4)) / 2."""
    config = VAEConfig(**TINY, epochs=4, warmup_epochs=1, cosine_decay=True)
    first, second = _LearningRates(), _LearningRates()
    with pytest.raises(KeyboardInterrupt):
        training.train_vae(
            synthetic_cache, config, tmp_path, progress=False, callbacks=(first, _StopAt(2))
        )
    training.train_vae(
        synthetic_cache, config, tmp_path, resume=True, progress=False, callbacks=(second,)
    )
    expected = 1e-3 * (1 + np.cos(np.pi * np.arange(1, 5) / 4)) / 2
    np.testing.assert_allclose(first.rates + second.rates, expected, atol=1e-9)
    constant = _LearningRates()
    training.train_vae(
        synthetic_cache,
        config.replace(cosine_decay=False, epochs=2),
        tmp_path / "constant",
        progress=False,
        callbacks=(constant,),
    )
    assert constant.rates == pytest.approx([1e-3, 1e-3])


def test_nan_loss_stops_with_a_clear_message(synthetic_cache, tmp_path):
    config = VAEConfig(**TINY, epochs=3, warmup_epochs=0, learning_rate=1e12)
    with pytest.raises(training.TrainingError, match="NaN or infinite.*lower learning_rate"):
        training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    assert not (tmp_path / model.VAE_FILE).exists()


def test_cache_of_another_size_is_refused(synthetic_cache, tmp_path):
    config = VAEConfig(**{**TINY, "image_size": 32, "latent_dim": 64}, epochs=1)
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
    config = VAEConfig(image_size=16, latent_dim=16, filters=(8, 16), batch_size=16,
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
    training iterator for the whole run.

    Validation opens one per evaluation and drops the last one part-read (Keras'
    ``evaluate`` resets its cached iterator), which stalled ~37 s before every epoch's
    validation in `make demo`, waiting for the iterator's tf.data autotuning thread: no
    dataset fit reads may autotune."""
    import tensorflow as tf

    opened = []
    original = tf.data.Dataset.__iter__

    def counting(self):
        opened.append(type(self).__name__)
        assert self.options().autotune.enabled is False, opened[-1]
        return original(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", counting)
    config = VAEConfig(**TINY, epochs=4, warmup_epochs=1)
    training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    assert len(opened) == 1 + config.epochs, opened


WORKER = textwrap.dedent(
    """
    import json, sys
    from dealwithit import training
    from dealwithit.config import VAEConfig
    strategy = training.make_strategy("multi-worker")  # before any other TensorFlow work
    cache, out = sys.argv[1], sys.argv[2]
    config = VAEConfig(image_size=16, latent_dim=16, filters=(8, 16), batch_size=16,
                       discriminative=False, epochs=1, warmup_epochs=0)
    _, history = training.train_vae(cache, config, out, progress=False, strategy=strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "chief": training.is_chief(strategy), "loss": history.history["loss"][0]}))
    """
)


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_match_one_process(synthetic_cache, tmp_path):
    """Two MultiWorkerMirroredStrategy processes on 127.0.0.1, one epoch: both exit 0, only the
    chief keeps files, its weights load, and the loss matches one process with the same global
    batch. Each worker reads its own half of the cache, so the batches differ from the single
    run's: over seeds 0, 1, 2 the two-worker loss was 0.21%, 0.12% and 0.03% from the single
    run's. MULTI_WORKER_TOLERANCE (1%) is about 5x that, and below the 1.7% seed-to-seed spread
    of the single run's loss (194.9 to 198.1), so a worker that trained on the wrong batch or
    skipped the gradient exchange would fail it."""
    import os

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = tmp_path / f"worker{index}"
        command = [sys.executable, "-c", WORKER, str(synthetic_cache), str(out)]
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:  # a worker whose partner died waits for it forever
        for process in processes:
            if process.poll() is None:
                process.kill()
    results = []
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [r["chief"] for r in results] == [True, False]
    assert all(r["replicas"] == 2 for r in results)
    assert (tmp_path / "worker0" / model.VAE_FILE).is_file()
    assert not (tmp_path / "worker1").exists()  # the other worker's files were temporary
    chief = model.load_vae(tmp_path / "worker0")
    config = VAEConfig(**TINY, epochs=1, warmup_epochs=0)
    assert chief.config == config
    _, single = training.train_vae(synthetic_cache, config, tmp_path / "single", progress=False)
    loss = single.history["loss"][0]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)
    assert results[0]["loss"] == pytest.approx(loss, rel=MULTI_WORKER_TOLERANCE)


def test_bfloat16_computes_in_bfloat16_with_float32_variables(synthetic_cache, tmp_path):
    """--precision bfloat16: bfloat16 convolutions, float32 variables, posterior, noise and loss;
    the config records it and the saved model loads and runs in bfloat16 for inference."""
    config = VAEConfig(**TINY, epochs=1, warmup_epochs=0, precision="bfloat16")
    vae, history = training.train_vae(synthetic_cache, config, tmp_path, progress=False)
    assert np.isfinite(history.history["loss"][0])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert {v.dtype for v in vae.weights} == {"float32"}
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    hidden = keras.Model(vae.encoder.inputs, vae.encoder.get_layer("encoder_1").output)
    assert keras.backend.standardize_dtype(hidden([x]).dtype) == "bfloat16"
    outputs = vae(x)
    for name in ("z_mean", "z_log_var", "z", "reconstruction"):
        assert keras.backend.standardize_dtype(outputs[name].dtype) == "float32", name
    assert json.loads((tmp_path / model.CONFIG_FILE).read_text())["precision"] == "bfloat16"
    loaded = model.load_vae(tmp_path)
    assert loaded.config == config
    assert loaded.encoder.get_layer("encoder_1_conv").dtype_policy.name == "mixed_bfloat16"
    z = model.encoder_fn(loaded)(x)
    faces = model.decoder_fn(loaded)(z)
    assert z.dtype == np.float32 and faces.dtype == np.float32
    np.testing.assert_allclose(z, keras.ops.convert_to_numpy(vae.encode(x)[0]), atol=1e-6)
    assert np.isfinite(faces).all() and faces.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("architecture", ["conv", "resnet", "ladder"])
def test_each_architecture_resumes(architecture, synthetic_cache, tmp_path):
    """(spatial, the default, is covered above.) Interrupted at epoch 2 of 3, the resumed run trains only epoch 3,
    continues the step counter, and logs the ladder's per-layer KL in every epoch."""
    config = VAEConfig(**TINY, epochs=3, warmup_epochs=2, architecture=architecture)
    with pytest.raises(KeyboardInterrupt):
        training.train_vae(
            synthetic_cache, config, tmp_path, progress=False, callbacks=(_StopAt(2),)
        )
    vae, history = training.train_vae(
        synthetic_cache, config, tmp_path, resume=True, progress=False
    )
    assert len(history.history["loss"]) == 1
    assert int(vae.optimizer.iterations.numpy()) == 3 * 5
    log = _history(tmp_path)
    assert list(log["epoch"]) == [0, 1, 2]
    if architecture == "ladder":
        assert isinstance(model.load_vae(tmp_path), model.LadderVAE)
        total = log["kl_loss"]
        np.testing.assert_allclose(log["kl_loss_1"] + log["kl_loss_2"], total, rtol=1e-4)


class _Snapshot(keras.callbacks.Callback):
    """Records the first encoder conv's kernel at the start of every epoch and at the end."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def _record(self):
        layer = self.model.encoder.get_layer("encoder_1_conv")
        self.kernels.append((layer.trainable, np.array(layer.kernel.numpy())))

    def on_epoch_begin(self, epoch, logs=None):
        self._record()

    def on_train_end(self, logs=None):
        self._record()


def test_transfer_copies_then_freezes_then_unfreezes(synthetic_cache, tmp_path):
    classifier = model.build_attribute_classifier(
        AttributeClassifierConfig(image_size=16, filters=(8, 16))
    )
    source = classifier.get_layer("stage_1_conv").kernel.numpy()
    config = VAEConfig(**TINY, epochs=2, transfer_stages=1, transfer_frozen_epochs=1)
    snapshot = _Snapshot()
    training.train_vae(
        synthetic_cache,
        config,
        tmp_path,
        classifier=classifier,
        progress=False,
        callbacks=(snapshot,),
    )
    (frozen, at_start), (unfrozen, after_one), (_, at_end) = snapshot.kernels
    np.testing.assert_array_equal(at_start, source)  # copied
    assert not frozen and unfrozen
    np.testing.assert_array_equal(after_one, source)  # frozen for epoch 1
    assert np.abs(at_end - after_one).max() > 1e-4  # trained in epoch 2
    other = model.load_vae(tmp_path).encoder.get_layer("encoder_2_conv")
    assert other.kernel.shape[0] == 4, "only transferred stages take the classifier's 3x3 kernels"


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

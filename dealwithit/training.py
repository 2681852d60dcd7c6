"""Training: the attribute classifiers and the VAE, with their callbacks.

KL warm-up, live progress bars (terminal and notebook), a CSV log of every
metric, a checkpoint every epoch that ``resume=True`` continues from, and a
clear error when the loss goes NaN. Final models are written atomically.
Training runs on one device, all local devices, or several machines
(``make_strategy``); only the chief of a multi-worker run keeps its files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from contextlib import nullcontext
from pathlib import Path

import keras
import numpy as np

from dealwithit import data, model
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.losses import kl_warmup

HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
ATTRIBUTE_REPORT_FILE = "attribute_report.json"


class TrainingError(Exception):
    """Training that cannot go on: a NaN loss, or a resume that does not fit."""


class KLWarmup(keras.callbacks.Callback):
    """Sets the VAE's ``kl_weight`` before every batch from ``kl_warmup(step)``.

    The step is the optimizer's iteration counter, which checkpoints restore,
    so a resumed run continues the ramp where it stopped.

    Args:
        warmup_steps: Length of the ramp in optimizer steps.
        start: β at step 0.
    """

    def __init__(self, warmup_steps: int, start: float = 0.0):
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"Expected warmup_steps >= 0. Received: warmup_steps={warmup_steps}")
        self.warmup_steps = warmup_steps
        self.start = start

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.kl_weight.assign(kl_warmup(step, self.warmup_steps, self.start))


class TransferFreeze(keras.callbacks.Callback):
    """Keeps transferred encoder stages frozen for the first epochs, then lets them train.

    Fresh layers above copied ones send large, random gradients at first;
    freezing the copies until the rest has settled keeps what the classifier
    learned (the usual fine-tuning recipe). The optimizer is built with every
    variable before the first freeze, so unfreezing needs no new optimizer
    state, and the train function is retraced whenever the set changes.

    Args:
        layer_names: Encoder layers holding the transferred weights.
        frozen_epochs: Epochs (0-based count) before they become trainable.
    """

    def __init__(self, layer_names, frozen_epochs: int):
        super().__init__()
        self.layer_names = list(layer_names)
        self.frozen_epochs = frozen_epochs

    def _layers(self):
        return [self.model.encoder.get_layer(name) for name in self.layer_names]

    def on_train_begin(self, logs=None):
        for layer in self._layers():
            layer.trainable = True
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)

    def on_epoch_begin(self, epoch, logs=None):
        trainable = epoch >= self.frozen_epochs
        changed = False
        for layer in self._layers():
            changed = changed or layer.trainable != trainable
            layer.trainable = trainable
        if changed or epoch == 0:
            self.model.make_train_function(force=True)


def progress_bar(progress: bool):
    """A live tqdm bar (notebook widget or terminal) in place of Keras' progbar.

    keras_tqdm breaks on Keras 3 (``KeyError: 'metrics'``); tqdm's own callback
    works in terminals and notebooks alike.
    """
    if not progress:
        return []
    from tqdm.auto import tqdm
    from tqdm.keras import TqdmCallback

    return [TqdmCallback(verbose=1, tqdm_class=tqdm, leave=True)]


STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str = "default"):
    """The ``tf.distribute`` strategy ``train_vae`` builds and trains under.

    Args:
        name: ``"default"`` (one device: returns None), ``"mirrored"`` (every
            local device, ``tf.distribute.MirroredStrategy``) or
            ``"multi-worker"`` (``tf.distribute.MultiWorkerMirroredStrategy``;
            the cluster and this process's task come from the standard
            ``TF_CONFIG`` environment variable). Create it before any other
            TensorFlow work: collectives are configured when it is made.

    Returns:
        The strategy, or None for ``"default"``.

    Raises:
        ValueError: an unknown name.
        TrainingError: ``"multi-worker"`` without a usable ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Expected strategy to be one of {STRATEGIES}. Received: strategy={name!r}"
        )
    if name == "default":
        return None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    try:
        task = json.loads(os.environ["TF_CONFIG"])["task"]
    except (KeyError, ValueError, TypeError) as error:
        raise TrainingError(
            "Expected the TF_CONFIG environment variable to hold the cluster and this worker's "
            'task, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": '
            f'{{"type": "worker", "index": 0}}}}. Received: {os.environ.get("TF_CONFIG")!r} '
            f"({type(error).__name__}: {error}). See the README, section Scaling out."
        ) from None
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise TrainingError(
            f"Expected TF_CONFIG's task to have a type and an index. Received: {task!r}"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None) -> bool:
    """Whether this process keeps the files: always, except on workers other than the chief.

    The chief is the task of type ``"chief"`` or, when the cluster has none,
    worker 0 (TensorFlow's own convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


@contextlib.contextmanager
def worker_directory(directory, strategy=None):
    """``directory`` on the chief; elsewhere a temporary folder, removed on exit.

    Every worker of a multi-worker run must run the same code, saving
    included (saving reads synchronised variables), but only the chief's
    weights, logs and backups are kept.
    """
    if is_chief(strategy):
        yield Path(directory)
        return
    scratch = Path(tempfile.mkdtemp(prefix="dealwithit_worker_"))
    try:
        yield scratch / Path(directory).name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def wait_for_workers(strategy=None) -> None:
    """Blocks until every worker of a multi-worker run gets here; a no-op elsewhere.

    A worker that exits while the chief still writes its report stops sending
    heartbeats, and TensorFlow's coordination service then aborts the chief.
    """
    if not is_multi_worker(strategy):
        return
    import tensorflow as tf

    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def is_multi_worker(strategy) -> bool:
    """Whether ``strategy`` spans several processes (``MultiWorkerMirroredStrategy``)."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _fit_data(cache_path, split: str, batch_size: int, strategy, **options):
    """``(dataset, steps)`` for ``fit``: endless, ``batch_size`` faces a step in all.

    Under a multi-worker strategy every worker streams only its own shard
    (``data.make_dataset(shard=...)``) in batches of
    ``batch_size / replicas``, so a step still sees ``batch_size`` faces, as
    on one device. Elsewhere the strategy splits each batch itself.
    """
    dataset = data.make_dataset(cache_path, split, batch_size, **options)
    if not is_multi_worker(strategy):
        return _endless(dataset)
    steps = len(dataset)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise TrainingError(
            f"Expected batch_size divisible by the {replicas} replicas of the cluster, so "
            f"every replica gets the same share. Received: batch_size={batch_size}."
        )

    def shard(context):
        part = (context.input_pipeline_id, context.num_input_pipelines)
        per_replica = context.get_per_replica_batch_size(batch_size)
        return data.make_dataset(cache_path, split, per_replica, shard=part, **options).repeat()

    return strategy.distribute_datasets_from_function(shard), steps


def _logs_with_a_batch_axis(network: keras.Model) -> None:
    """Gives every logged scalar of a step a leading axis of length 1.

    Keras 3 averages a step's logs over workers with ``reduce("MEAN", axis=0)``,
    which fails on scalars ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). With one axis the mean over
    workers is again a scalar.
    """
    from keras import ops

    def with_axis(step):
        def wrapped(data):
            return {name: ops.reshape(value, (1,)) for name, value in step(data).items()}

        return wrapped

    network.train_step = with_axis(network.train_step)
    network.test_step = with_axis(network.test_step)


def _steps(cache_path, split: str, batch_size: int, limit: int | None) -> int:
    with data.CelebACache(cache_path) as cache:
        n = len(cache.indices(split))
    if limit is not None:
        n = min(n, limit)
    if n == 0:
        raise TrainingError(
            f"Expected images in the {split!r} split of {cache_path}. Received none. "
            "Re-run `python -m dealwithit prepare` on a folder with a partition file, or more images."
        )
    return math.ceil(n / batch_size)


def _mixed_fit_data(
    caches, batch_size: int, strategy, seed: int, limit: int | None, mirror: bool = False
):
    """``(dataset, steps)`` over the train splits of several caches, for ``fit``.

    Each step's batch comes from one cache, drawn at random (seeded) in proportion
    to the caches' sizes, so one epoch sees about every face of every set once.
    """
    if len(caches) == 1:
        return _fit_data(
            caches[0], "train", batch_size, strategy, seed=seed, limit=limit, mirror=mirror
        )
    if is_multi_worker(strategy):
        raise TrainingError(
            f"Expected one data set on several machines. Received {len(caches)}: mixing sets "
            "is not sharded per worker yet. Train with one --data, or on one machine."
        )
    import tensorflow as tf

    parts = [
        data.make_dataset(cache, "train", batch_size, seed=seed + i, limit=limit, mirror=mirror)
        for i, cache in enumerate(caches)
    ]
    sizes = np.array([len(part) for part in parts], dtype=np.float64)
    mixed = tf.data.Dataset.sample_from_datasets(
        [part.repeat() for part in parts], weights=list(sizes / sizes.sum()), seed=seed
    )
    return mixed, int(sizes.sum())


def _endless(dataset):
    """``(dataset.repeat(), batches per pass)``, for ``fit``'s ``steps_per_epoch``.

    Given a finite dataset and no step count, Keras 3's epoch iterator opens a
    new iterator at the end of every epoch and another at the start of the
    next; dropping the first, part-read iterator blocked about 38 s before the
    first batch of every other epoch (it waited for the iterator's tf.data
    autotuning thread, which ``data.make_dataset`` now turns off). One endless
    iterator with known steps per epoch never drops one. Each pass still calls
    the reader again, so every epoch gets its own seeded shuffle.
    """
    return dataset.repeat(), len(dataset)


def learning_rate(config, steps_per_epoch: int):
    """The config's Adam learning rate: constant, or a half cosine to 0 over the whole run.

    The schedule is keyed on the optimizer's step counter, which ``--resume``
    restores, so a resumed run continues down the same curve.
    """
    if not config.cosine_decay:
        return config.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch)
    )


def _raise_if_nan(history: keras.callbacks.History, what: str, learning_rate: float) -> None:
    losses = history.history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrainingError(
            f"The {what} loss became NaN or infinite (epoch {len(losses)}); training stopped. "
            f"Try a lower learning_rate (now {learning_rate}), a longer warm-up, or re-seeding."
        )


def _backup(directory: Path, resume: bool, config) -> keras.callbacks.BackupAndRestore:
    """Checkpoints every epoch into ``directory/backup``, with the config that owns them.

    Two alternating checkpoint files (``double_checkpoint``) keep a good one
    even if the process dies while writing the other.
    """
    backup = directory / BACKUP_DIR
    if backup.exists() and not resume:
        # A stale interrupted run: start over rather than silently continue it.
        shutil.rmtree(backup)
    saved = backup / "config.json"
    previous = type(config).from_json(saved) if resume and saved.is_file() else None
    if previous is not None and previous != config:
        raise TrainingError(
            f"Expected --resume to continue the run in {backup} with its own settings. "
            f"Received different ones: saved {previous}, now {config}. "
            "Drop --resume to start over, or resume without changing settings."
        )
    if resume and not backup.exists():
        print(f"Nothing to resume in {backup}; starting from epoch 1.")
    backup.mkdir(parents=True, exist_ok=True)
    config.to_json(saved)
    return keras.callbacks.BackupAndRestore(
        str(backup), delete_checkpoint=True, double_checkpoint=True
    )


def train_attribute_classifier(
    cache_path,
    config: AttributeClassifierConfig,
    directory,
    *,
    resume: bool = False,
    progress: bool = True,
    limit: int | None = None,
    callbacks: tuple = (),
) -> tuple[keras.Model, dict]:
    """Trains the attribute CNN (multi-label binary cross-entropy) and saves it.

    It predicts every attribute column of the cache (CelebA's 40 and any extra
    or derived ones, e.g. Sunglasses) unless ``config.attribute_names`` says which.
    Every number in the reports comes from the held-out ``valid`` split, never
    from training faces.

    Args:
        cache_path: HDF5 cache from ``data.prepare_cache``.
        config: Classifier hyperparameters (saved as ``config.json``).
        directory: Output folder: ``classifier.keras``, ``config.json``,
            ``history.csv``, ``attribute_accuracy.json``, ``attribute_report.json``.
        resume: Continue an interrupted run from its last finished epoch.
        progress: Show a live progress bar.
        limit: Use at most this many training images (quick runs and tests).
        callbacks: Extra Keras callbacks.

    Returns:
        ``(classifier, report)`` where ``report`` maps each attribute to its
        held-out accuracy, plus ``mean_accuracy`` and ``majority_accuracy``.
    """
    with data.CelebACache(cache_path) as cache:
        unlabelled = int((~cache.labelled).sum())
    if unlabelled:
        raise TrainingError(
            f"Expected every face of {cache_path} to have attribute labels: a classifier would "
            f"read unknown (0) as 'does not have'. Received {unlabelled} unlabelled faces (a "
            "folder of photos). Train on a labelled set and add the photos to the VAE only: "
            "`train --data CELEBA --data PHOTOS`."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = with_cache_attributes(config, cache_path)
    keras.utils.set_random_seed(config.seed)
    classifier = model.build_attribute_classifier(config)
    steps = _steps(cache_path, "train", config.batch_size, limit)
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    train = data.make_dataset(
        cache_path,
        "train",
        config.batch_size,
        seed=config.seed,
        attributes=config.attribute_names,
        limit=limit,
    )
    train, steps_per_epoch = _endless(train)
    history = classifier.fit(
        train,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        verbose=0,
        shuffle=False,  # the dataset reshuffles itself, seeded, every epoch
        callbacks=[
            _backup(directory, resume, config),
            keras.callbacks.CSVLogger(str(directory / HISTORY_FILE), append=resume),
            keras.callbacks.TerminateOnNaN(),
            *progress_bar(progress),
            *callbacks,
        ],
    )
    _raise_if_nan(history, "attribute classifier", config.learning_rate)
    probabilities, labels, names = _held_out_predictions(
        classifier, cache_path, "valid", config.attribute_names
    )
    report = _accuracy_report(probabilities, labels, names)
    model.save_classifier(classifier, config, directory)
    (directory / "attribute_accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    detailed = attribute_report(probabilities, labels, names, split="valid")
    (directory / ATTRIBUTE_REPORT_FILE).write_text(json.dumps(detailed, indent=2) + "\n")
    return classifier, report


def with_cache_attributes(
    config: AttributeClassifierConfig, cache_path
) -> AttributeClassifierConfig:
    """``config`` predicting every attribute column of the cache, unless it names its own."""
    if config.attribute_names:
        return config
    with data.CelebACache(cache_path) as cache:
        return config.replace(attribute_names=tuple(cache.attribute_names))


def attribute_accuracy(
    classifier: keras.Model, cache_path, split: str = "valid", names=None
) -> dict:
    """Held-out accuracy per attribute, with the majority-class baseline for context.

    Args:
        names: The classifier's outputs, in order (default: the cache's columns);
            each is scored against the cache column of that name.
    """
    return _accuracy_report(*_held_out_predictions(classifier, cache_path, split, names))


def _held_out_predictions(classifier: keras.Model, cache_path, split: str, names=None):
    """``(probabilities, labels, names)`` of ``classifier`` on one split of the cache."""
    with data.CelebACache(cache_path) as cache:
        images = cache.images(split)
        names = tuple(names or cache.attribute_names)
        columns = [cache.attribute_names.index(name) for name in names]
        labels = cache.attributes(split)[:, columns] > 0
    if len(images) == 0:
        raise TrainingError(f"Expected images in the {split!r} split of {cache_path}; found none.")
    probabilities = model.classifier_fn(classifier)(images)
    if probabilities.shape[1] != len(names):
        raise TrainingError(
            f"Expected a classifier with one output per attribute of {cache_path} ({len(names)}). "
            f"Received one with {probabilities.shape[1]}. Retrain it on this cache."
        )
    return probabilities, labels, names


def _accuracy_report(probabilities: np.ndarray, labels: np.ndarray, names) -> dict:
    """Accuracy per attribute at p > 0.5, with the majority-class baseline for context.

    Args:
        probabilities: ``(n, k)`` predicted probabilities.
        labels: ``(n, k)`` booleans.
        names: The ``k`` attribute names.
    """
    correct = (probabilities > 0.5) == labels
    accuracy = correct.mean(axis=0)
    majority = np.maximum(labels.mean(axis=0), 1.0 - labels.mean(axis=0))
    report = {name: float(a) for name, a in zip(names, accuracy)}
    report["mean_accuracy"] = float(accuracy.mean())
    report["majority_accuracy"] = float(majority.mean())
    report["n"] = int(len(labels))
    return report


def attribute_report(probabilities: np.ndarray, labels: np.ndarray, names, split: str) -> dict:
    """AUC, balanced accuracy and accuracy per attribute, with their means.

    Accuracy flatters rare attributes (Eyeglasses is ~6.5 % positive: always
    saying "no" scores 93.5 %), so AUC and balanced accuracy lead.

    Args:
        probabilities: ``(n, k)`` predicted probabilities on held-out faces.
        labels: ``(n, k)`` booleans.
        names: The ``k`` attribute names.
        split: Which split they came from (recorded in the report).

    Returns:
        ``{"split", "n", "attributes": {name: {"roc_auc", "balanced_accuracy",
        "accuracy", "positive_rate"}}, "mean_roc_auc", "mean_balanced_accuracy",
        "mean_accuracy"}``; an attribute with one class only has ``None`` AUC and
        is left out of the means.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rows = {}
    for k, name in enumerate(names):
        y, p = labels[:, k], probabilities[:, k]
        both = 0 < y.sum() < len(y)
        rows[name] = {
            "roc_auc": float(roc_auc_score(y, p)) if both else None,
            "balanced_accuracy": float(balanced_accuracy_score(y, p > 0.5)) if both else None,
            "accuracy": float(((p > 0.5) == y).mean()),
            "positive_rate": float(y.mean()),
        }
    scored = [row for row in rows.values() if row["roc_auc"] is not None]
    return {
        "split": split,
        "n": int(len(labels)),
        "attributes": rows,
        "mean_roc_auc": float(np.mean([r["roc_auc"] for r in scored])) if scored else None,
        "mean_balanced_accuracy": (
            float(np.mean([r["balanced_accuracy"] for r in scored])) if scored else None
        ),
        "mean_accuracy": float(np.mean([r["accuracy"] for r in rows.values()])),
    }


def train_vae(
    cache_path,
    config: VAEConfig,
    directory,
    *,
    classifier: keras.Model | None = None,
    resume: bool = False,
    strategy=None,
    progress: bool = True,
    limit: int | None = None,
    validation: bool = True,
    callbacks: tuple = (),
) -> tuple[model.VAE, keras.callbacks.History]:
    """Trains a (discriminatively regularized) VAE with KL warm-up and saves it.

    Args:
        cache_path: HDF5 cache from ``data.prepare_cache``, or several: the VAE
            trains on all their train splits (``_mixed_fit_data``) and is
            validated and calibrated on the first.
        config: VAE hyperparameters (saved as ``config.json``), including
            its ``precision``.
        directory: Output folder: ``vae.keras``, ``config.json``, ``history.csv``
            and, while training, ``backup/`` (deleted when training ends). On
            the workers of a multi-worker run other than the chief, a
            temporary folder stands in for it and is removed at the end.
        classifier: The trained attribute classifier, required when
            ``config.discriminative``; it stays frozen.
        resume: Continue an interrupted run from its last finished epoch.
        strategy: A ``tf.distribute`` strategy to build and train under
            (``make_strategy``); ``config.batch_size`` stays the batch of one
            step over all replicas.
        progress: Show a live progress bar.
        limit: Use at most this many training images.
        validation: Evaluate the same loss on the ``valid`` split every epoch.
        callbacks: Extra Keras callbacks.

    Returns:
        ``(vae, history)``.

    Raises:
        TrainingError: the loss went NaN, or a split is empty.
    """
    if resume and is_multi_worker(strategy) and strategy.extended._in_multi_worker_mode():
        raise TrainingError(
            "Expected --resume on one machine. Received a multi-worker run: only the chief keeps "
            "backups, so the other workers could not restore theirs. Start the run again."
        )
    caches = [cache_path] if isinstance(cache_path, (str, Path)) else list(cache_path)
    cache_path = caches[0]  # validation, calibration: the first set
    with worker_directory(directory, strategy) as directory:
        directory.mkdir(parents=True, exist_ok=True)
        for path in caches:
            _steps(path, "train", config.batch_size, limit)
            with data.CelebACache(path) as cache:
                if cache.image_size != config.image_size:
                    size = config.image_size
                    raise TrainingError(
                        f"Expected a cache of {size}x{size} images for this config. Received "
                        f"{cache.image_size}x{cache.image_size} in {path}. Re-run prepare "
                        f"with --image-size {size} or change image_size."
                    )
        with data.CelebACache(cache_path) as cache:
            has_valid = len(cache.indices("valid")) > 0
            calibration = cache.images("train", limit=512)
            attribute_names = cache.attribute_names  # the DR classifier's logits, in order
        valid = {}
        if validation and has_valid:
            dataset, steps = _fit_data(
                cache_path, "valid", config.batch_size, strategy, shuffle=False, limit=limit
            )
            valid = {"validation_data": dataset, "validation_steps": steps}
        train, steps_per_epoch = _mixed_fit_data(
            caches, config.batch_size, strategy, config.seed, limit, config.mirror
        )
        with strategy.scope() if strategy is not None else nullcontext():
            vae = model.build_vae(config, classifier, attribute_names)
            vae.calibrate_feature_scales(calibration.astype("float32") / 255.0)
            vae.compile(optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)))
        if is_multi_worker(strategy):
            _logs_with_a_batch_axis(vae)
        warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
        history = vae.fit(
            train,
            steps_per_epoch=steps_per_epoch,
            **valid,
            epochs=config.epochs,
            verbose=0,
            shuffle=False,  # the dataset reshuffles itself, seeded, every epoch
            callbacks=[
                # Before the backup, so a resumed optimizer finds every variable it saved.
                *_transfer(config),
                KLWarmup(warmup_steps, config.warmup_start),
                _backup(directory, resume, config),
                keras.callbacks.CSVLogger(str(directory / HISTORY_FILE), append=resume),
                keras.callbacks.TerminateOnNaN(),
                *progress_bar(progress and is_chief(strategy)),
                *callbacks,
            ],
        )
        _raise_if_nan(history, "VAE", config.learning_rate)
        model.save_vae(vae, directory)
        return vae, history


def _transfer(config: VAEConfig) -> list:
    """The ``TransferFreeze`` callback for the stages ``build_vae`` copied, if any."""
    if not config.transfer_stages:
        return []
    names = [f"encoder_{i}_conv" for i in range(1, config.transfer_stages + 1)]
    return [TransferFreeze(names, config.transfer_frozen_epochs)]


def read_history(directory) -> dict[str, np.ndarray]:
    """Reads ``history.csv`` of a training folder into ``{metric: values per epoch}``."""
    path = Path(directory) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Expected a training log at {path}; found none. Train first.")
    table = np.genfromtxt(path, delimiter=",", names=True)
    table = np.atleast_1d(table)
    return {name: np.asarray(table[name], float) for name in table.dtype.names}

"""Training: the attribute classifiers and the VAE, with their callbacks.

KL warm-up, live progress bars (terminal and notebook), a CSV log of every
metric, a checkpoint every epoch that ``resume=True`` continues from, and a
clear error when the loss goes NaN. Final models are written atomically.
"""

from __future__ import annotations

import json
import math
import shutil
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


def _endless(dataset):
    """``(dataset.repeat(), batches per pass)``, for ``fit``'s ``steps_per_epoch``.

    Given a finite dataset and no step count, Keras 3's epoch iterator opens a
    new iterator at the end of every epoch and another at the start of the
    next; dropping the first, part-read ``from_generator`` iterator blocked
    about 38 s before the first batch of every other epoch. One endless
    iterator with known steps per epoch never drops one. Each pass still calls
    the reader again, so every epoch gets its own seeded shuffle.
    """
    return dataset.repeat(), len(dataset)


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
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = with_cache_attributes(config, cache_path)
    keras.utils.set_random_seed(config.seed)
    classifier = model.build_attribute_classifier(config)
    steps = _steps(cache_path, "train", config.batch_size, limit)
    learning_rate = config.learning_rate
    if config.cosine_decay:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps
        )
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
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
        cache_path: HDF5 cache from ``data.prepare_cache``.
        config: VAE hyperparameters (saved as ``config.json``).
        directory: Output folder: ``vae.keras``, ``config.json``, ``history.csv``
            and, while training, ``backup/`` (deleted when training ends).
        classifier: The trained attribute classifier, required when
            ``config.discriminative``; it stays frozen.
        resume: Continue an interrupted run from its last finished epoch.
        strategy: A ``tf.distribute`` strategy to build and train under.
        progress: Show a live progress bar.
        limit: Use at most this many training images.
        validation: Evaluate the same loss on the ``valid`` split every epoch.
        callbacks: Extra Keras callbacks.

    Returns:
        ``(vae, history)``.

    Raises:
        TrainingError: the loss went NaN, or a split is empty.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _steps(cache_path, "train", config.batch_size, limit)
    train = data.make_dataset(cache_path, "train", config.batch_size, seed=config.seed, limit=limit)
    with data.CelebACache(cache_path) as cache:
        if cache.image_size != config.image_size:
            raise TrainingError(
                f"Expected a cache of {config.image_size}x{config.image_size} images for this config. "
                f"Received {cache.image_size}x{cache.image_size} in {cache_path}. Re-run prepare "
                f"with --image-size {config.image_size} or change image_size."
            )
        has_valid = len(cache.indices("valid")) > 0
        calibration = cache.images("train", limit=512)
    valid = {}
    if validation and has_valid:
        dataset = data.make_dataset(
            cache_path, "valid", config.batch_size, shuffle=False, limit=limit
        )
        valid = dict(zip(("validation_data", "validation_steps"), _endless(dataset)))
    with strategy.scope() if strategy is not None else nullcontext():
        vae = model.build_vae(config, classifier)
        vae.calibrate_feature_scales(calibration.astype("float32") / 255.0)
        vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    train, steps_per_epoch = _endless(train)
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    history = vae.fit(
        train,
        steps_per_epoch=steps_per_epoch,
        **valid,
        epochs=config.epochs,
        verbose=0,
        shuffle=False,  # the dataset reshuffles itself, seeded, every epoch
        callbacks=[
            KLWarmup(warmup_steps, config.warmup_start),
            _backup(directory, resume, config),
            keras.callbacks.CSVLogger(str(directory / HISTORY_FILE), append=resume),
            keras.callbacks.TerminateOnNaN(),
            *progress_bar(progress),
            *callbacks,
        ],
    )
    _raise_if_nan(history, "VAE", config.learning_rate)
    model.save_vae(vae, directory)
    return vae, history


def read_history(directory) -> dict[str, np.ndarray]:
    """Reads ``history.csv`` of a training folder into ``{metric: values per epoch}``."""
    path = Path(directory) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Expected a training log at {path}; found none. Train first.")
    table = np.genfromtxt(path, delimiter=",", names=True)
    table = np.atleast_1d(table)
    return {name: np.asarray(table[name], float) for name in table.dtype.names}

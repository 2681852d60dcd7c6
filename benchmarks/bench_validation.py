"""The stall before each epoch's validation: tf.data autotuning on vs off.

Keras 3's ``evaluate``, called by ``fit`` after every epoch, first resets its
cached validation iterator, dropping it part-read. Dropping an iterator waits for
its tf.data autotuning thread (``~RootDataset::Iterator`` in ``py-spy dump``),
which took about 37 s before every epoch's validation after the first in
``make demo``. ``data.make_dataset`` now turns autotuning off (fixed map
parallelism and prefetch). A small plain VAE trains ``epochs`` epochs each way on
the train split, validated on the valid split after every epoch: *autotuned*
re-enables tf.data autotuning on both datasets, as they were built before;
*fixed* is ``make_dataset`` as it is now.

    .venv/bin/python benchmarks/bench_validation.py [--cache data/cache/celeba_64.h5] [--epochs 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import harness  # first: it quiets TensorFlow's start-up logs
import keras
import tensorflow as tf
from bench_epochs import compare

from dealwithit import data, model, training
from dealwithit.config import VAEConfig

## Setup

epochs = 4  # per way; the stall hit every epoch after the first
train_faces = None  # the whole train split: the stall needs iterators that live as long as
# a real epoch (none in 5-s epochs of 3,200 faces)
batch_size = 64
config = VAEConfig(discriminative=False, latent_dim=32, filters=(8, 16, 32, 64))


class ValidationClock(keras.callbacks.Callback):
    """Seconds from each epoch's last training batch to its validation's start, and epoch times."""

    def on_train_begin(self, logs=None):
        self.waits, self.epochs = [], []
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.mark = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.waits.append(time.perf_counter() - self.mark)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epochs.append(now - self.epoch_start)
        self.epoch_start = now


def _autotuned(dataset):
    options = tf.data.Options()
    options.autotune.enabled = True
    return dataset.with_options(options)


def train(cache: Path, autotune: bool, n_epochs: int, limit: int | None) -> ValidationClock:
    """One fit of ``n_epochs`` with validation, its datasets autotuned or not."""
    vae = model.build_vae(config)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    train_data = data.make_dataset(cache, "train", batch_size, limit=limit)
    valid = data.make_dataset(cache, "valid", batch_size, shuffle=False)
    if autotune:
        train_data, valid = _autotuned(train_data), _autotuned(valid)
    train_data, steps = training._endless(train_data)
    valid, valid_steps = training._endless(valid)
    clock = ValidationClock()
    vae.fit(
        train_data,
        steps_per_epoch=steps,
        validation_data=valid,
        validation_steps=valid_steps,
        epochs=n_epochs,
        verbose=0,
        callbacks=[clock],
    )
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="default: a 20k synthetic cache")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--train-faces", type=int, default=train_faces)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    limit = 640 if args.quick else args.train_faces
    cache = args.cache or harness.training_cache(20_000)
    with data.CelebACache(cache) as opened:
        n_valid = len(opened.indices("valid"))
    record = harness.Record(
        "validation",
        "8b. The stall before each epoch's validation",
        f"A small plain VAE (filters {config.filters}, latent {config.latent_dim}) trains "
        f"{args.epochs} epochs on {'all' if limit is None else f'the first {limit:,}'} train "
        f"faces of a 64 px cache, batch {batch_size}, validated after every epoch on all "
        f"{n_valid:,} valid faces: *autotuned*, `data.make_dataset` with tf.data autotuning "
        "re-enabled, as it was built before; *fixed*, `make_dataset` as it is now (autotuning "
        "off). Wait: from the epoch's last training batch to the start of its validation "
        "(Keras resets the validation iterator in between).",
    )
    record.settings(epochs=args.epochs, batch_size=batch_size, cache=str(cache), train_faces=limit)
    ways = {
        name: (lambda a=a: train(cache, a, args.epochs, limit))
        for name, a in (("autotuned", True), ("fixed", False))
    }
    compare(record, ways, "before validation")
    record.save()


if __name__ == "__main__":
    main()

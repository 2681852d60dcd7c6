"""The stall before an epoch's first batch: a finite dataset vs ``training._endless``.

Keras 3's ``fit``, given a finite ``data.make_dataset`` dataset and no
``steps_per_epoch``, opens a new iterator at the end of every epoch and another
at the start of the next; dropping the part-read ``from_generator`` iterator
blocked for tens of seconds before every other epoch (issue 13). Training now
feeds ``fit`` one endless iterator (``dataset.repeat()``) with
``steps_per_epoch``. A small plain VAE trains ``epochs`` epochs each way, in
one process, on a 20k-face cache at 64 px (the real subset's shape: 17,823 /
2,177 faces; the synthetic set's 16,000 / 2,000 / 2,000 here), without
validation. The wait before an epoch's first batch runs from the end of the
previous epoch's last batch (for epoch 1, from the start of ``fit``).

    .venv/bin/python benchmarks/bench_epochs.py [--cache data/cache/synthetic_64.h5] [--epochs 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import harness  # first: it quiets TensorFlow's start-up logs
import keras

from dealwithit import data, model, training
from dealwithit.config import VAEConfig

## Setup

epochs = 4  # per way of feeding fit; the stall hit every other epoch
batch_size = 64
config = VAEConfig(discriminative=False, latent_dim=32, filters=(8, 16, 32, 64))  # small: the
# stall, not the model, is measured


class FirstBatchClock(keras.callbacks.Callback):
    """Seconds before each epoch's first batch, and each epoch's wall time."""

    def on_train_begin(self, logs=None):
        self.waits, self.epochs = [], []
        self.mark = self.epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.waits.append(time.perf_counter() - self.mark)

    def on_train_batch_end(self, batch, logs=None):
        self.mark = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epochs.append(now - self.epoch_start)
        self.epoch_start = now


def train(cache: Path, endless: bool, n_epochs: int, limit: int | None) -> FirstBatchClock:
    """One fit of ``n_epochs`` on the train split, fed the finite or the endless dataset."""
    vae = model.build_vae(config)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    dataset = data.make_dataset(cache, "train", batch_size, seed=0, limit=limit)
    clock = FirstBatchClock()
    if endless:
        dataset, steps = training._endless(dataset)
        vae.fit(dataset, steps_per_epoch=steps, epochs=n_epochs, verbose=0, callbacks=[clock])
    else:
        vae.fit(dataset, epochs=n_epochs, verbose=0, callbacks=[clock])
    return clock


def compare(record: harness.Record, ways: dict, wait: str) -> None:
    """Runs each way (a name -> a call returning a clock with ``waits`` and ``epochs``) in
    turn, and records its waits, its epoch times and a note comparing the first two."""
    clocks = {}
    for name, run in ways.items():
        load = [harness.load_average()]
        clocks[name] = clock = run()
        record.add(f"{name}: wait {wait}", clock.waits, "s", loads=load)
        record.add(f"{name}: epoch wall time", clock.epochs, "s", loads=load)
        record.settings(
            **{
                f"{name}_waits_s": [round(w, 2) for w in clock.waits],
                f"{name}_epochs_s": [round(e, 1) for e in clock.epochs],
            }
        )
    (first, a), (second, b) = list(clocks.items())[:2]
    record.note(
        f"Wait {wait} of each epoch: {first} "
        + ", ".join(f"{w:.1f}" for w in a.waits)
        + f" s; {second} "
        + ", ".join(f"{w:.1f}" for w in b.waits)
        + f" s. Epochs took {sum(a.epochs):.0f} s vs {sum(b.epochs):.0f} s in all."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="default: a 20k synthetic cache")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    limit = 640 if args.quick else None
    cache = args.cache or harness.training_cache(20_000)
    with data.CelebACache(cache) as opened:
        sizes = {split: len(opened.indices(split)) for split in data.SPLITS}
    record = harness.Record(
        "epochs",
        "8. The stall before an epoch's first batch",
        f"A small plain VAE (filters {config.filters}, latent {config.latent_dim}) trains "
        f"{args.epochs} epochs on a 64 px cache (train/valid/test {sizes['train']:,}/"
        f"{sizes['valid']:,}/{sizes['test']:,}), batch {batch_size}, no validation: *before*, "
        "`fit` given the finite `data.make_dataset` dataset (no `steps_per_epoch`); *after*, "
        "`training._endless` (`repeat()` + `steps_per_epoch`), as `train_vae` does now. Wait: "
        "from the previous epoch's last batch (or the start of `fit`) to the epoch's first.",
    )
    record.settings(epochs=args.epochs, batch_size=batch_size, cache=str(cache), limit=limit)
    ways = {
        name: (lambda e=e: train(cache, e, args.epochs, limit))
        for name, e in (("before", False), ("after", True))
    }
    compare(record, ways, "before the first batch")
    record.save()


if __name__ == "__main__":
    main()

"""Scaling: epoch time and peak memory as the data set grows from 2k to 50k faces.

Synthetic faces (rendered once into a scratch folder; 50k take a few minutes
the first time) are cached with ``data.prepare_cache`` at 2k, 10k and 50k.
For each size a fresh process builds the plain VAE, streams one full
training epoch through ``data.make_dataset`` (no training: the pipeline
alone), then runs a fixed number of training steps (Keras' compiled
``train_function`` on one long-lived ``make_dataset`` iterator); the epoch
time is projected from that rate (train-split faces / img/s). Peak
RSS (``ru_maxrss``) is read at the end of each process. The cache is
streamed, so peak memory should stay flat while the split grows 25x.

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 2000 10000 50000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import harness

## Setup

sizes = (2_000, 10_000, 50_000)  # faces in the data set (80 % are the train split)
steps = 8  # training steps per timed repetition, fed by make_dataset
rounds = 3  # timed repetitions in each process
batch_size = 64


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(cache_path: str, steps: int, rounds: int) -> None:
    """Runs in a fresh process: stream one epoch, train, print the figures as JSON."""
    import keras
    import numpy as np

    from dealwithit import data, model
    from dealwithit.config import VAEConfig

    config = VAEConfig(discriminative=False)
    vae = model.build_vae(config)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    with data.CelebACache(cache_path) as cache:
        n_train = len(cache.indices("train"))
    training = data.make_dataset(cache_path, "train", batch_size, drop_remainder=True).repeat()
    harness.fit_rate(vae, training, 2, batch_size)  # warm-up: tracing, builds train_function
    setup_mb = peak_rss_mb()

    def stream():
        for _ in data.make_dataset(cache_path, "train", batch_size):
            pass

    streamed = harness.measure_rate(stream, n_train)
    iterator = iter(training)
    rates = [harness.step_rate(vae, iterator, steps, batch_size) for _ in range(rounds)]
    train_rate = float(np.median([rate.per_second for rate in rates]))
    print(
        json.dumps(
            {
                "n_train": n_train,
                "setup_peak_rss_mb": setup_mb,
                "stream_img_s": streamed.per_second,
                "stream_seconds": n_train / streamed.per_second,
                "train_img_s": [rate.per_second for rate in rates],
                "epoch_seconds": n_train / train_rate,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(sizes))
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.rounds)
        return
    if args.quick:
        args.sizes, args.steps, args.rounds = [500, 1000, 2000], 2, 2

    record = harness.Record(
        "scaling",
        "6. Scaling with the data set",
        "Per data-set size, a fresh process: one epoch streamed through `make_dataset`, "
        f"{args.rounds}x{args.steps} training steps fed by it (epoch time projected from "
        "that rate), and the process's peak RSS.",
    )
    record.settings(sizes=args.sizes, steps=args.steps, rounds=args.rounds, batch_size=batch_size)
    largest = max(args.sizes)
    caches = {n: harness.synthetic_cache(n, source=largest) for n in args.sizes}

    results = {}
    for n, cache_path in caches.items():
        load = harness.load_average()
        command = [sys.executable, __file__, "--worker", str(cache_path)]
        command += ["--steps", str(args.steps), "--rounds", str(args.rounds)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[n] = {**json.loads(output.strip().splitlines()[-1]), "load": load}

    for n, result in results.items():
        load = [result["load"]]
        record.add(f"{n} faces: train split", [result["n_train"]], "faces", loads=load)
        record.add(f"{n} faces: training rate", result["train_img_s"], "img/s", loads=load)
        record.add(f"{n} faces: epoch time (projected)", [result["epoch_seconds"]], "s", loads=load)
        record.add(f"{n} faces: epoch streamed alone", [result["stream_seconds"]], "s", loads=load)
        record.add(
            f"{n} faces: peak RSS after set-up", [result["setup_peak_rss_mb"]], "MB", loads=load
        )
        record.add(f"{n} faces: peak RSS", [result["peak_rss_mb"]], "MB", loads=load)
        record.add(
            f"{n} faces: train split if held in memory",
            [result["n_train"] * 64 * 64 * 3 / 2**20],
            "MB",
            loads=load,
        )
    small, large = results[min(results)], results[max(results)]
    growth = record.add(
        f"peak RSS {max(results)} / {min(results)} faces",
        [large["peak_rss_mb"] / small["peak_rss_mb"]],
        "x",
        goal=("<=", 1.10),
    )
    record.note(
        f"The train split grows {large['n_train'] / small['n_train']:.0f}x and peak RSS "
        f"{growth['median']:.2f}x ({small['peak_rss_mb']:.0f} -> {large['peak_rss_mb']:.0f} MB): "
        f"the cache is streamed; an epoch of {large['n_train']} faces takes about "
        f"{large['epoch_seconds'] / 60:.1f} min at the measured rate."
    )
    record.save()


if __name__ == "__main__":
    main()

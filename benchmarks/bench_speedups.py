"""The obvious training speed-ups, each against the default in the same run.

The plain VAE (``VAEConfig(discriminative=False)``) trains on 64x64 random
images, batch 64. Each repetition runs Keras' compiled ``train_function`` (the
step ``fit`` calls per batch, without callbacks) ``steps`` times on one
long-lived iterator, so a streamed dataset is timed in its steady state. In
one process, interleaved round by round:

- default: ``compile()`` as the package does it (no XLA on CPU, float32);
- XLA: ``compile(jit_compile=True)``;
- mixed bfloat16: encoder and decoder built under the ``mixed_bfloat16``
  policy, the reconstruction cast back to float32 for the loss (a global
  policy cannot be used: ``layers.Sampling`` then adds float32 noise to
  bfloat16 codes and fails);
- tf.data: the same default model fed by ``data.make_dataset`` from an HDF5
  cache instead of from memory; memory is the ceiling any faster input
  pipeline (more tf.data parallelism) could reach.

Thread settings must be fixed before TensorFlow starts, so they run as pairs
of fresh processes, alternating default (0/0: TensorFlow picks) and
inter/intra-op = 1/2.

    .venv/bin/python benchmarks/bench_speedups.py [--steps 5] [--rounds 6] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import harness
import numpy as np

## Setup

steps = 5  # training steps per timed repetition
rounds = 6  # timed epochs per candidate, interleaved
thread_pairs = 3  # fresh-process pairs (default, 1/2) for the thread settings
thread_rounds = 2  # timed epochs inside each of those processes
batch_size = 64


def _compile(network, jit_compile="auto"):
    import keras

    network.compile(
        optimizer=keras.optimizers.Adam(network.config.learning_rate), jit_compile=jit_compile
    )
    return network


def build_candidates(cache_path):
    """The models and datasets of each in-process candidate."""
    import keras

    from dealwithit import data, model
    from dealwithit.config import VAEConfig

    config = VAEConfig(discriminative=False)
    default = _compile(model.build_vae(config))
    xla = _compile(model.build_vae(config), jit_compile=True)

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        encoder = model.build_encoder(config)
        decoder = model.build_decoder(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    decoder = keras.Sequential(
        [decoder, keras.layers.Activation("linear", dtype="float32", name="to_float32")],
        name="decoder",
    )
    bf16 = model.VAE(encoder, decoder, config, name="vae_bf16")
    bf16(harness.random_images(1))
    _compile(bf16)

    memory = harness.in_memory_dataset(harness.random_images(steps * batch_size), batch_size)
    streamed = data.make_dataset(cache_path, "train", batch_size, drop_remainder=True).repeat()
    for network in (default, xla, bf16):
        harness.fit_rate(network, memory, 2, batch_size)  # builds train_function: tracing, XLA
    return {
        "default": (default, iter(memory)),
        "XLA": (xla, iter(memory)),
        "mixed bfloat16": (bf16, iter(memory)),
        "fed by make_dataset": (default, iter(streamed)),
    }


def thread_worker(inter: int, intra: int, steps: int, rounds: int) -> None:
    """Runs in a fresh process: set the thread pools, train, print the rates as JSON."""
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    from dealwithit import model
    from dealwithit.config import VAEConfig

    network = _compile(model.build_vae(VAEConfig(discriminative=False)))
    dataset = harness.in_memory_dataset(harness.random_images(steps * batch_size), batch_size)
    harness.fit_rate(network, dataset, 2, batch_size)  # builds train_function
    iterator = iter(dataset)
    rates = [harness.step_rate(network, iterator, steps, batch_size) for _ in range(rounds)]
    print(json.dumps({"rates": [list(rate) for rate in rates]}))


def run_thread_pairs(pairs: int, steps: int, rounds: int):
    """Alternates fresh processes with default and 1/2 thread pools; medians per process."""
    results = {"default": [], "1/2": []}
    loads = {"default": [], "1/2": []}
    for k in range(pairs):
        order = [("default", 0, 0), ("1/2", 1, 2)]
        for name, inter, intra in order if k % 2 == 0 else order[::-1]:
            loads[name].append(harness.load_average())
            command = [sys.executable, __file__, "--thread-worker", f"{inter},{intra}"]
            command += ["--steps", str(steps), "--rounds", str(rounds)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rates = [harness.Rate(*r) for r in json.loads(output.strip().splitlines()[-1])["rates"]]
            results[name].append(
                harness.Rate(
                    float(np.median([r.per_second for r in rates])),
                    float(np.median([r.cpu_ms for r in rates])),
                )
            )
    return results, loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--thread-pairs", type=int, default=thread_pairs)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--thread-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.thread_worker:
        inter, intra = (int(v) for v in args.thread_worker.split(","))
        thread_worker(inter, intra, args.steps, args.rounds)
        return
    if args.quick:
        args.steps, args.rounds, args.thread_pairs = 2, 2, 1

    record = harness.Record(
        "speedups",
        "Speed-ups tried",
        "Training img/s of the plain VAE (64x64, batch 64; Keras' compiled train step on a "
        f"long-lived iterator) with each candidate vs the default, {args.steps} steps per "
        "repetition, interleaved; thread settings in alternating fresh processes.",
    )
    cache_path = harness.training_cache()
    record.settings(
        steps=args.steps,
        rounds=args.rounds,
        batch_size=batch_size,
        thread_pairs=args.thread_pairs,
        thread_rounds=thread_rounds,
        cache=str(cache_path),
    )
    candidates = build_candidates(cache_path)
    for network, iterator in candidates.values():
        harness.step_rate(network, iterator, 2, batch_size)  # warm-up: the streamed pool fills

    values, loads = harness.interleave(
        {
            name: (lambda m=network, i=iterator: harness.step_rate(m, i, args.steps, batch_size))
            for name, (network, iterator) in candidates.items()
        },
        args.rounds,
    )
    for name in candidates:
        record.add_rates(name, values[name], "img/s", loads=loads[name])
    base = values["default"]
    xla = record.add_speed_ratio(
        "XLA / default",
        values["XLA"],
        base,
        loads=loads["XLA"] + loads["default"],
        speedup="XLA: compile(jit_compile=True)",
    )
    bf16 = record.add_speed_ratio(
        "mixed bfloat16 / default",
        values["mixed bfloat16"],
        base,
        loads=loads["mixed bfloat16"] + loads["default"],
        speedup="mixed precision: mixed_bfloat16 conv stacks",
    )
    memory = record.add_speed_ratio(
        "from memory / fed by make_dataset",
        base,
        values["fed by make_dataset"],
        loads=loads["fed by make_dataset"] + loads["default"],
        speedup="tf.data: ceiling of any input-pipeline speed-up (training from memory)",
        ceiling=True,
    )

    threads, thread_loads = run_thread_pairs(args.thread_pairs, args.steps, thread_rounds)
    for name in threads:
        record.add_rates(
            f"threads {name} (fresh process)", threads[name], "img/s", loads=thread_loads[name]
        )
    threads_row = record.add_speed_ratio(
        "threads 1/2 / default",
        threads["1/2"],
        threads["default"],
        loads=thread_loads["1/2"] + thread_loads["default"],
        speedup="threads: inter_op=1, intra_op=2 (default 0/0)",
    )
    paying = [
        row["speedup"]
        for row in (xla, bf16, threads_row)
        if min(row["median"], row["cpu_median"]) >= harness.PAYS
    ]
    record.note(
        f"Wall-clock (CPU-time) ratios: XLA {xla['median']:.2f}x ({xla['cpu_median']:.2f}x), "
        f"mixed bfloat16 {bf16['median']:.2f}x ({bf16['cpu_median']:.2f}x), threads 1/2 "
        f"{threads_row['median']:.2f}x ({threads_row['cpu_median']:.2f}x); training from memory "
        f"runs at {memory['median']:.2f}x ({memory['cpu_median']:.2f}x) the streamed speed, the "
        "most any input-pipeline change could buy. Pays on both bases (>10%): "
        f"{', '.join(paying) if paying else 'none'}."
    )
    record.save()


if __name__ == "__main__":
    main()

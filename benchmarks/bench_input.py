"""Input pipeline: how fast the HDF5 cache streams, against what training consumes.

In one process, interleaved: ``data.make_dataset`` alone (a pass over the
first ``images`` training faces of the cache, batch 64, float32 out), the raw
HDF5 read of the same faces (``CelebACache.images``) as its ceiling, and the
plain VAE training from memory with its ``KLWarmup`` callback, as
``training.train_vae`` runs it. The goal is a pipeline at least 5x faster
than training, so streaming never starves it. Then ``prepare_cache`` on
JPEGs: synthetic faces with 1 and 2 decoding threads, and real CelebA if the
shared copy is there (read only; the cache goes to a scratch folder).

    .venv/bin/python benchmarks/bench_input.py [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness
import keras

from dealwithit import data, model
from dealwithit.config import VAEConfig
from dealwithit.training import KLWarmup

## Setup

rounds = 4  # interleaved repetitions
images = 8192  # faces per pass of the pipeline (128 batches)
steps = 5  # training steps per timed epoch
prepare_images = 3000  # JPEGs per prepare_cache repetition; fewer would time its fixed set-up
batch_size = 64
celeba = harness.REPO.parent / "shared" / "data" / "celeba"


def jpeg_folder() -> Path:
    """The repository's synthetic faces if rendered, else a scratch set of 5,000."""
    folder = harness.REPO / "data" / "synthetic"
    if (folder / data.ATTRIBUTE_FILE).is_file():
        return folder
    return harness.synthetic_folder(5000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    n_images, n_prepare, n_steps = images, prepare_images, steps
    if args.quick:
        args.rounds, n_images, n_prepare, n_steps = 2, 1024, 200, 2

    cache_path = harness.training_cache()
    record = harness.Record(
        "input",
        "3. Input pipeline",
        f"Images per second of `data.make_dataset` over {n_images} cached faces vs the plain "
        "VAE's training (interleaved), and of `data.prepare_cache` on JPEGs.",
    )
    sources = {"synthetic": jpeg_folder()}
    if (celeba / data.ATTRIBUTE_FILE).is_file():
        sources["CelebA"] = celeba
    record.settings(
        rounds=args.rounds,
        images=n_images,
        steps=n_steps,
        batch_size=batch_size,
        prepare_images=n_prepare,
        cache=str(cache_path),
        jpeg_sources={k: str(v) for k, v in sources.items()},
    )

    pipeline = data.make_dataset(cache_path, "train", batch_size, limit=n_images)

    def stream():
        for _ in pipeline:
            pass

    def read():
        with data.CelebACache(cache_path) as cache:
            cache.images("train", limit=n_images)

    config = VAEConfig(discriminative=False)
    vae = model.build_vae(config)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    memory = harness.in_memory_dataset(harness.random_images(n_steps * batch_size), batch_size)
    warmup = [KLWarmup(10_000)]
    harness.fit_rate(vae, memory, n_steps, batch_size, warmup)
    stream()

    scratch = harness.SCRATCH / "prepare"
    scratch.mkdir(parents=True, exist_ok=True)

    def prepare(root: Path, workers: int, name: str):
        def run():
            data.prepare_cache(
                root,
                scratch / f"{name}_{workers}.h5",
                64,
                progress=False,
                overwrite=True,
                limit=n_prepare,
                workers=workers,
            )

        return lambda: harness.measure_rate(run, n_prepare)

    candidates = {
        "make_dataset": lambda: harness.measure_rate(stream, n_images),
        "HDF5 read (CelebACache.images)": lambda: harness.measure_rate(read, n_images),
        "training (plain VAE)": lambda: harness.fit_rate(vae, memory, n_steps, batch_size, warmup),
        "prepare synthetic JPEGs, 1 thread": prepare(sources["synthetic"], 1, "synthetic"),
        "prepare synthetic JPEGs, 2 threads": prepare(sources["synthetic"], 2, "synthetic"),
    }
    if "CelebA" in sources:
        candidates["prepare CelebA JPEGs, 2 threads"] = prepare(sources["CelebA"], 2, "celeba")
    candidates["prepare synthetic JPEGs, 1 thread"]()  # first touch of the files: page cache
    values, loads = harness.interleave(candidates, args.rounds)

    for name in candidates:
        record.add_rates(name, values[name], "img/s", loads=loads[name])
    ratio = record.add_speed_ratio(
        "make_dataset / training",
        values["make_dataset"],
        values["training (plain VAE)"],
        loads=loads["make_dataset"] + loads["training (plain VAE)"],
        goal=(">=", 5.0),
    )
    record.add_speed_ratio(
        "make_dataset / HDF5 read",
        values["make_dataset"],
        values["HDF5 read (CelebACache.images)"],
        loads=loads["make_dataset"] + loads["HDF5 read (CelebACache.images)"],
    )
    threads = record.add_speed_ratio(
        "prepare: 2 threads / 1 thread",
        values["prepare synthetic JPEGs, 2 threads"],
        values["prepare synthetic JPEGs, 1 thread"],
        loads=loads["prepare synthetic JPEGs, 2 threads"]
        + loads["prepare synthetic JPEGs, 1 thread"],
    )
    cpu_share = harness.ratios(
        harness.cpu_ms(values["make_dataset"]), harness.cpu_ms(values["training (plain VAE)"])
    )
    share = record.add("pipeline CPU time / training CPU time, per image", cpu_share, "fraction")
    prepare_rate = record.row("prepare synthetic JPEGs, 2 threads")
    record.note(
        f"The cache streams at {ratio['median']:.1f}x the rate training consumes and costs "
        f"{share['median']:.1%} of training's CPU time per image; prepare decodes "
        f"{prepare_rate['median']:.0f} JPEGs/s with 2 threads ({threads['median']:.2f}x one thread)."
    )
    record.save()


if __name__ == "__main__":
    main()

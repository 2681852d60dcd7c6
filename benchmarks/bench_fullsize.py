"""Full-size data: a 200,000-face set cached at 64 and 128 px, memory flat, builds resumable.

Renders ``large`` synthetic faces in the CelebA layout once (into the scratch
folder; about 370 faces/s on 2 cores), then for each image size (64, 128) and
each data-set size (``small``, ``large``: the first faces of the same folder)
runs, each in a fresh process that reports its own peak RSS (``VmHWM`` in
``/proc/self/status``; a killed one is read just before the kill). Not
``os.wait4``: a child's ``ru_maxrss`` starts from its parent's high-water mark
at the fork, so a small child of a large parent reports the parent's size:

- prepare: ``data.prepare_cache`` (build time, file size, peak RSS). The
  large build at the last image size is killed (SIGKILL) once its partial file holds about
  ``kill_at`` of the rows, then run again: it must resume (the killed run's
  rows are kept) and finish complete;
- train: the DR-VAE (``VAEConfig(image_size=...)`` with an untrained attribute
  classifier) trains ``batches`` batches streamed by ``data.make_dataset``
  through ``training._endless``, as ``train_vae`` feeds it (img/s after a
  warm-up, peak RSS).

Peak RSS must stay flat as the set grows 10x (goal: large / small <= 1.1x).
The projection to the full CelebA (202,599 faces, 162,770 in its train split)
gives the epoch time here from the measured img/s, and on a GPU from the
training FLOPs per image (``bench_flops.count_flops``) at the GPU's peak, a
lower bound; the figure at 30 % of peak is an assumption, not a measurement.

    nice -n 15 .venv/bin/python benchmarks/bench_fullsize.py [--small 20000 --large 200000]
        [--image-sizes 64 128] [--folder FOLDER] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import harness

## Setup

small, large = 20_000, 200_000  # faces; the full CelebA has 202,599
image_sizes = (64, 128)
batches = 40  # training batches timed per cache, after 5 of warm-up
batch_size = 64
kill_at = 0.5  # share of the large 128 px build done when it is killed
CELEBA_FACES, CELEBA_TRAIN = 202_599, 162_770
# Dense peak TFLOP/s of two common GPUs (vendor data sheets): name -> (peak, precision).
GPUS = {"NVIDIA T4": (65.0, "float16"), "NVIDIA A100": (312.0, "bfloat16")}
ASSUMED_GPU_UTILISATION = 0.3  # an assumption for small convnets at batch 64


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident set size (``VmHWM``), in MB; Linux only."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def child(command: list[str], kill_when=None) -> tuple[dict, float, bool]:
    """Runs ``this script --child ...``; returns (its JSON line, its peak RSS MB, killed)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", *command],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    killed = False
    if kill_when is not None:
        while process.poll() is None and not kill_when():
            time.sleep(0.5)
        if process.poll() is None:
            rss = peak_rss_mb(process.pid)
            process.send_signal(signal.SIGKILL)
            killed = True
    output, _ = process.communicate()
    if killed:
        return {}, rss, True
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed with exit code {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    return result, result["peak_rss_mb"], False


def child_prepare(folder: str, path: str, image_size: str, limit: str) -> None:
    from dealwithit import data

    start = time.perf_counter()
    data.prepare_cache(folder, path, int(image_size), limit=int(limit), progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}))


def child_train(path: str, image_size: str, n_batches: str) -> None:
    import keras

    from dealwithit import data, model, training
    from dealwithit.config import AttributeClassifierConfig, VAEConfig

    size, n_batches = int(image_size), int(n_batches)
    classifier = model.build_attribute_classifier(AttributeClassifierConfig(image_size=size))
    config = VAEConfig(image_size=size)
    vae = model.build_vae(config, classifier)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    dataset, _ = training._endless(data.make_dataset(path, "train", batch_size, seed=0))
    vae.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: builds train_function
    rate = harness.step_rate(vae, iter(dataset), n_batches, batch_size)
    figures = {"img_per_s": rate.per_second, "cpu_ms_per_img": rate.cpu_ms}
    print(json.dumps({**figures, "peak_rss_mb": peak_rss_mb()}))


def partial_rows(path: Path, image_size: int) -> float:
    """Rows in a partial build, estimated from its file size (images are stored uncompressed)."""
    partial = path.with_name(path.name + ".partial")
    return partial.stat().st_size / (image_size * image_size * 3) if partial.exists() else 0.0


def written_rows(path: Path) -> int | None:
    """The ``written`` count a killed build left in its partial file, if it can be read."""
    import h5py

    try:
        with h5py.File(path.with_name(path.name + ".partial"), "r") as file:
            return int(file.attrs["written"])
    except (OSError, KeyError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=small)
    parser.add_argument("--large", type=int, default=large)
    parser.add_argument("--batches", type=int, default=batches)
    parser.add_argument(
        "--folder", default=None, help="a CelebA-layout folder of >= --large faces (else rendered)"
    )
    parser.add_argument("--image-sizes", type=int, nargs="+", default=list(image_sizes))
    parser.add_argument("--quick", action="store_true", help="2k vs 6k faces, to check the script")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        {"prepare": child_prepare, "train": child_train}[args.child[0]](*args.child[1:])
        return
    if args.quick:
        args.small, args.large, args.batches = 2_000, 6_000, 5

    record = harness.Record(
        "fullsize",
        "9. Full-size data",
        f"{args.large:,} synthetic faces (CelebA layout) against the first {args.small:,} of "
        f"them, cached at {' and '.join(map(str, args.image_sizes))} px: build time, file size and peak RSS of `prepare_cache`, "
        f"img/s and peak RSS of the DR-VAE's first {args.batches} streamed training batches "
        f"(after 5 of warm-up), each in a fresh process that reports its own peak RSS; the "
        f"large {args.image_sizes[-1]} px build is killed at "
        f"about {kill_at:.0%} and resumed.",
    )
    record.settings(small=args.small, large=args.large, batches=args.batches, batch_size=batch_size)
    start = time.perf_counter()
    folder = args.folder or harness.synthetic_folder(args.large)
    record.settings(folder=str(folder), render_seconds=round(time.perf_counter() - start))
    figures: dict[tuple[int, int], dict] = {}
    for image_size in args.image_sizes:
        for n in (args.small, args.large):
            name = f"{n:,} faces at {image_size} px"
            path = harness.SCRATCH / f"fullsize_{Path(folder).name}_first{n}_{image_size}.h5"
            load = [harness.load_average()]
            prepare = ["prepare", str(folder), str(path), str(image_size), str(n)]
            resumed = None
            path.unlink(missing_ok=True)  # time the whole build, every run
            path.with_name(path.name + ".partial").unlink(missing_ok=True)
            if n == args.large and image_size == args.image_sizes[-1]:
                rows = n * kill_at
                killed_start = time.perf_counter()
                _, first_rss, killed = child(
                    prepare, kill_when=lambda p=path, s=image_size, r=rows: partial_rows(p, s) >= r
                )
                at_kill = written_rows(path)
                killed_seconds = time.perf_counter() - killed_start
                result, rss, _ = child(prepare)
                resumed = {"killed": killed, "rows_at_kill": at_kill, "rss": first_rss}
                resumed["resumed_seconds"] = result["seconds"]
                result["seconds"] += killed_seconds  # the whole build: killed part + resumed part
            else:
                result, rss, _ = child(prepare)
            from dealwithit import data

            with data.CelebACache(path) as cache:
                assert len(cache) == n and cache.image_size == image_size, cache
            trained, train_rss, _ = child(["train", str(path), str(image_size), str(args.batches)])
            figures[(image_size, n)] = {
                "rss": rss,
                "train_rss": train_rss,
                "img_per_s": trained["img_per_s"],
            }
            record.add(f"prepare {name}: build time", [result["seconds"]], "s", loads=load)
            record.add(f"prepare {name}: file size", [path.stat().st_size / 2**30], "GiB")
            record.add(f"prepare {name}: peak RSS", [rss], "MB", loads=load)
            row = record.add(f"train {name}: DR-VAE", [trained["img_per_s"]], "img/s", loads=load)
            row["cpu"] = f"{trained['cpu_ms_per_img']:.3g} CPU ms/item"
            record.add(f"train {name}: peak RSS", [train_rss], "MB", loads=load)
            if resumed is not None:
                record.add(
                    f"prepare {name}: resumed part of the build", [resumed["resumed_seconds"]], "s"
                )
                record.add(
                    f"prepare {name}: rows kept from the killed build",
                    [resumed["rows_at_kill"]],
                    "rows",
                )
                record.settings(resume=resumed)
    for image_size in args.image_sizes:
        big, little = figures[(image_size, args.large)], figures[(image_size, args.small)]
        for what, key in (("prepare", "rss"), ("training", "train_rss")):
            record.add(
                f"{what} peak RSS at {image_size} px: {args.large:,} / {args.small:,} faces",
                [big[key] / little[key]],
                "x",
                goal=("<=", 1.1),
            )
    _project(record, figures, args.large, args.image_sizes)
    record.save()


def _project(record, figures, n: int, sizes) -> None:
    """Epoch time on the full CelebA: here from the measured rate, on GPUs from the FLOPs."""
    import bench_flops
    import keras

    from dealwithit import model
    from dealwithit.config import AttributeClassifierConfig, VAEConfig

    notes = []
    for image_size in sizes:
        config = VAEConfig(image_size=image_size)
        classifier = model.build_attribute_classifier(
            AttributeClassifierConfig(image_size=image_size)
        )
        dr = model.build_vae(config, classifier)
        forward = sum(bench_flops.count_flops(dr.encoder).values()) + sum(
            bench_flops.count_flops(dr.decoder).values()
        )
        flops = 3 * forward + 3 * sum(bench_flops.count_flops(dr.feature_extractor).values())
        here = CELEBA_TRAIN / figures[(image_size, n)]["img_per_s"]
        record.add(f"full CelebA epoch here at {image_size} px (DR-VAE)", [here / 60], "min")
        record.settings(**{f"training_mflops_per_image_{image_size}": round(flops / 1e6, 1)})
        line = f"{image_size} px: {flops / 1e6:.0f} MFLOP per training image, {here / 60:.0f} min an epoch here"
        for gpu, (peak, precision) in GPUS.items():
            bound = CELEBA_TRAIN * flops / (peak * 1e12)
            assumed = bound / ASSUMED_GPU_UTILISATION
            record.add(
                f"full CelebA epoch on {gpu} at {image_size} px ({precision}, at peak)",
                [bound],
                "s",
            )
            line += f"; {gpu} {bound:.1f} s at peak, ~{assumed:.0f} s at 30 % of it"
        notes.append(line)
        keras.backend.clear_session()
    record.note(
        f"Full CelebA ({CELEBA_FACES:,} faces, {CELEBA_TRAIN:,} to train on): "
        + "; ".join(notes)
        + ". GPU figures are FLOP-count bounds, not measurements."
    )


if __name__ == "__main__":
    main()

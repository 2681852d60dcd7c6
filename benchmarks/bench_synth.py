"""Synthetic faces rendered per second, with 2 worker processes and with 1.

Each repetition is a whole ``synthetic.write_synthetic_celeba`` call into a
scratch folder (rendering, JPEG writing, counterfactual twins of the test
faces, the list files and the contact sheet), interleaved between the two
worker counts. The ratio is the parallel speed-up; the goal is 300 faces/s at
2 workers.

    .venv/bin/python benchmarks/bench_synth.py [--faces 400] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse

import harness
import numpy as np

from dealwithit import synthetic

## Setup

faces = 400  # faces per repetition; fixed costs (pool start, contact sheet) are included
rounds = 3  # interleaved repetitions per worker count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=faces)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    if args.quick:
        args.faces, args.rounds = 100, 2

    record = harness.Record(
        "synth",
        "4. Synthetic faces",
        f"Faces per second of `synthetic.write_synthetic_celeba(n={args.faces})` into a "
        "scratch folder, workers=2 and workers=1 interleaved.",
    )
    record.settings(faces=args.faces, rounds=args.rounds)
    out = harness.SCRATCH / "synth_bench"

    def render(workers: int):
        def run():
            synthetic.write_synthetic_celeba(
                out, args.faces, seed=0, workers=workers, progress=False, overwrite=True
            )

        return lambda: harness.measure_rate(run, args.faces)

    values, loads = harness.interleave(
        {"workers=2": render(2), "workers=1": render(1)}, args.rounds
    )
    two = record.add_rates(
        "workers=2", values["workers=2"], "faces/s", loads=loads["workers=2"], goal=(">=", 300)
    )
    record.add_rates("workers=1", values["workers=1"], "faces/s", loads=loads["workers=1"])
    speedup = record.add_speed_ratio(
        "workers=2 / workers=1",
        values["workers=2"],
        values["workers=1"],
        loads=loads["workers=2"] + loads["workers=1"],
    )
    cpu_ms = float(np.median(harness.cpu_ms(values["workers=1"])))
    cores = harness.machine()["cores_usable"] or 1
    record.note(
        f"Rendering runs at {two['median']:.0f} faces/s on 2 workers, {speedup['median']:.2f}x "
        f"one worker, on cores shared with other work (load {two['load']:.1f}); at "
        f"{cpu_ms:.1f} CPU ms per face, {cores} idle cores could render about "
        f"{cores * 1000 / cpu_ms:.0f} faces/s."
    )
    record.save()


if __name__ == "__main__":
    main()

"""What every benchmark records: the command, the machine, the versions and the figures.

Speed on a shared 2-core machine moves with whatever else runs, so a figure is
the median of several repetitions with its min-max, each speed claim is a
ratio against a baseline measured in the same process, and the candidates are
interleaved round by round (``interleave``) so a change of load hits all alike.
Each script saves one JSON record in ``outputs/benchmarks/``; ``run_all.py``
turns the records into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dealwithit import atomic
from dealwithit.cpu import kernel_flags

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = Path(os.environ.get("DEALWITHIT_BENCH_OUT", REPO / "outputs" / "benchmarks"))
# TensorFlow's C++ start-up chatter hides the figures; `make` sets the same default.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SCRATCH = Path(os.environ.get("DEALWITHIT_BENCH_DIR", "/tmp/dealwithit-bench"))

# A speed-up is worth adopting only if it clearly beats the noise of a shared machine.
PAYS = 1.10


## Machine and versions


def load_average() -> float:
    """The 1-minute load average (runnable processes, smoothed over a minute)."""
    return round(os.getloadavg()[0], 2)


def _cpuinfo(field: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """Cores, CPU model, RAM and the CPU features that matter for the speed-ups tried."""
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpuinfo("model name"),
        "cpu_features": kernel_flags(),
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
    }


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose speed is measured."""
    import h5py
    import keras
    import PIL
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "h5py": h5py.__version__,
        "pillow": PIL.__version__,
    }


def command_line() -> str:
    """How this process was started, relative to the repository when possible."""
    return command_line_of([sys.executable, *sys.argv])


def command_line_of(parts: Sequence[str]) -> str:
    """A shell-quoted command with paths inside the repository made relative to it."""
    shown = []
    for part in parts:
        path = Path(part)
        if path.is_absolute():
            try:
                part = str(path.relative_to(REPO))
            except ValueError:
                pass
        shown.append(part)
    return shlex.join(shown)


## Repetitions


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and count of repeated measurements."""
    values = [float(v) for v in values]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {
        "median": _round(float(np.median(values)), digits),
        "min": _round(min(values), digits),
        "max": _round(max(values), digits),
        "n": len(values),
        "values": [_round(v, digits) for v in values],
    }


def _round(value: float, digits: int) -> float:
    if value == 0 or not np.isfinite(value):
        return value
    # Significant digits, not decimals: img/s and ms ratios live on different scales.
    return float(f"{value:.{digits + 1}g}")


def interleave(
    candidates: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, list[Any]], dict[str, list[float]]]:
    """Runs every candidate once per round, rotating who goes first.

    Interleaving puts each candidate's repetitions next to the others', so a
    change in machine load shifts all of them alike; rotating the order
    removes any advantage of always running first or last.

    Args:
        candidates: Name -> callable that runs one repetition and returns its
            figure (a float, or a ``Rate``).
        rounds: Repetitions of each candidate.

    Returns:
        ``(values, loads)``: per candidate, the figure and the 1-minute load
        average at the start of each repetition, in round order.
    """
    names = list(candidates)
    values: dict[str, list[Any]] = {name: [] for name in names}
    loads: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            loads[name].append(load_average())
            values[name].append(candidates[name]())
    return values, loads


def per_second(rates: Sequence[Rate]) -> list[float]:
    """The wall-clock rates of a list of ``Rate``."""
    return [rate.per_second for rate in rates]


def cpu_ms(rates: Sequence[Rate]) -> list[float]:
    """The CPU milliseconds per item of a list of ``Rate``."""
    return [rate.cpu_ms for rate in rates]


def ratios(candidate: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Round-by-round ratios ``candidate[i] / baseline[i]`` of interleaved repetitions."""
    return [c / b for c, b in zip(candidate, baseline)]


def timed(function: Callable[[], Any]) -> float:
    """Seconds taken by one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


## The record


class Record:
    """One benchmark's JSON record: command, machine, versions, rows of figures, notes.

    Args:
        name: File stem in ``outputs/benchmarks/`` and the section's anchor.
        title: Section title in BENCHMARKS.md.
        description: One or two sentences on what is measured and how.
    """

    def __init__(self, name: str, title: str, description: str) -> None:
        self.name = name
        self.data: dict[str, Any] = {
            "name": name,
            "title": title,
            "description": description,
            "command": command_line(),
            "machine": {**machine(), "load_start": list(os.getloadavg())},
            "versions": {},
            "settings": {},
            "rows": [],
            "notes": [],
        }
        self._start = time.perf_counter()

    def settings(self, **values: Any) -> None:
        """Sizes and options the figures depend on (steps, batch size, …)."""
        self.data["settings"].update(values)

    def add(
        self,
        metric: str,
        values: Sequence[float],
        unit: str,
        *,
        loads: Sequence[float] = (),
        goal: tuple[str, float] | None = None,
        speedup: str | None = None,
        digits: int = 3,
    ) -> dict[str, Any]:
        """Adds a row: the median, min-max and n of ``values``.

        Args:
            metric: What was measured, e.g. "ours / reference (img/s ratio)".
            values: The repetitions.
            unit: "img/s", "ms", "x" (a ratio), …
            loads: 1-minute load averages sampled during the repetitions.
            goal: ``(">=", 1.0)`` or ``("<=", 150)``: the median is checked against it.
            speedup: Name of the speed-up this ratio measures (listed in the
                speed-ups table of BENCHMARKS.md).
            digits: Significant digits kept.

        Returns:
            The row.
        """
        row = {"metric": metric, "unit": unit, **summary(values, digits)}
        row["load"] = round(float(np.mean(loads)), 2) if len(loads) else load_average()
        if goal is not None:
            op, target = goal
            median = row["median"]
            met = median is not None and (median >= target if op == ">=" else median <= target)
            row["goal"] = f"{'≥' if op == '>=' else '≤'} {target:g}"
            row["met"] = bool(met)
        if speedup is not None:
            row["speedup"] = speedup
        self.data["rows"].append(row)
        return row

    def add_ratio(
        self,
        metric: str,
        candidate: Sequence[float],
        baseline: Sequence[float],
        *,
        loads: Sequence[float] = (),
        goal: tuple[str, float] | None = None,
        speedup: str | None = None,
    ) -> dict[str, Any]:
        """Adds the round-by-round ratio ``candidate / baseline`` as a row (unit "x")."""
        return self.add(
            metric, ratios(candidate, baseline), "x", loads=loads, goal=goal, speedup=speedup
        )

    def add_rates(
        self,
        metric: str,
        rates: Sequence[Rate],
        unit: str,
        *,
        loads: Sequence[float] = (),
        goal: tuple[str, float] | None = None,
    ) -> dict[str, Any]:
        """Adds a throughput row from ``Rate`` repetitions, with the median CPU ms per item."""
        row = self.add(metric, per_second(rates), unit, loads=loads, goal=goal)
        row["cpu"] = f"{np.median(cpu_ms(rates)):.3g} CPU ms/item"
        return row

    def add_speed_ratio(
        self,
        metric: str,
        candidate: Sequence[Rate],
        baseline: Sequence[Rate],
        *,
        loads: Sequence[float] = (),
        goal: tuple[str, float] | None = None,
        speedup: str | None = None,
        ceiling: bool = False,
    ) -> dict[str, Any]:
        """Adds ``candidate / baseline`` speed, round by round, with its CPU-time twin.

        Above 1 the candidate is faster. The row's ``cpu`` entry is the same
        ratio computed from CPU time per item (baseline / candidate), which
        other processes on the machine disturb far less. ``ceiling`` marks a
        speed-up that is an upper bound, not a change one could make as is.
        """
        row = self.add_ratio(
            metric,
            per_second(candidate),
            per_second(baseline),
            loads=loads,
            goal=goal,
            speedup=speedup,
        )
        cpu = summary(ratios(cpu_ms(baseline), cpu_ms(candidate)))
        row["cpu"] = f"{cpu['median']:.3g} ({cpu['min']:.3g}–{cpu['max']:.3g})"
        row["cpu_median"] = cpu["median"]
        if ceiling:
            row["ceiling"] = True
        return row

    def note(self, text: str) -> None:
        """Adds a one-line interpretation, computed from the figures."""
        self.data["notes"].append(text)

    def row(self, metric: str) -> dict[str, Any]:
        """The row called ``metric``."""
        for row in self.data["rows"]:
            if row["metric"] == metric:
                return row
        raise KeyError(
            f"Expected a row called {metric!r}. Received rows: "
            f"{[r['metric'] for r in self.data['rows']]}"
        )

    def save(self, out_dir: Path | None = None) -> Path:
        """Writes ``<out_dir or OUT_DIR>/<name>.json`` (load at the end, versions, duration)."""
        out_dir = OUT_DIR if out_dir is None else out_dir
        self.data["machine"]["load_end"] = list(os.getloadavg())
        self.data["versions"] = versions()
        self.data["seconds"] = round(time.perf_counter() - self._start, 1)
        self.data["date"] = datetime.now().astimezone().isoformat(timespec="seconds")
        path = atomic.write_json(out_dir / f"{self.name}.json", self.data)
        machine_info, versions_info = self.data["machine"], self.data["versions"]
        print(f"\n{self.data['title']}\ncommand: {self.data['command']}")
        print(f"machine: {json.dumps(machine_info)}\nversions: {json.dumps(versions_info)}")
        for row in self.data["rows"]:
            spread = f"{row['min']}–{row['max']}" if row["n"] > 1 else "—"
            print(
                f"  {row['metric']}: {row['median']} {row['unit']} (min–max {spread}, "
                f"n={row['n']}, load {row['load']}) {row.get('cpu', '')} {row.get('goal', '')}"
            )
        for note in self.data["notes"]:
            print(f"  -> {note}")
        print(f"Wrote {path}")
        return path


## Training throughput


def random_images(n: int, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """``(n, S, S, 3)`` float32 uniform in [0, 1]: speed does not depend on content."""
    return np.random.default_rng(seed).random((n, image_size, image_size, 3), dtype=np.float32)


def in_memory_dataset(images: np.ndarray, batch_size: int = 64):
    """An endless ``tf.data`` dataset of batches from an in-memory array."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)
    return dataset.repeat().prefetch(tf.data.AUTOTUNE)


class Rate(NamedTuple):
    """Throughput of one repetition: wall-clock rate and CPU time per item.

    On a shared machine the wall-clock rate moves with other people's work;
    the process CPU time per item (all threads) moves much less, so its ratio
    is a steadier cross-check of the work each candidate does.
    """

    per_second: float
    cpu_ms: float


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished child processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure_rate(function: Callable[[], Any], items: int) -> Rate:
    """Runs ``function`` once and returns items per second and CPU ms per item.

    CPU time includes worker processes that ``function`` started and joined.
    """
    cpu, wall = cpu_seconds(), time.perf_counter()
    function()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return Rate(items / wall, 1000.0 * cpu / items)


def fit_rate(model, dataset, steps: int, batch_size: int = 64, callbacks=()) -> Rate:
    """Images per second (and CPU ms per image) of ``model.fit`` over ``steps`` batches.

    The clocks run from the epoch's start to its end (Keras' callbacks), so
    ``fit``'s own set-up is left out; the epoch ends only once every step has
    run, so nothing asynchronous is missed.
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            wall, cpu = self.start
            self.rate = Rate(
                steps * batch_size / (time.perf_counter() - wall),
                1000.0 * (time.process_time() - cpu) / (steps * batch_size),
            )

    clock = EpochClock()
    model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=steps,
        verbose=0,
        shuffle=False,
        callbacks=[*callbacks, clock],
    )
    return clock.rate


def steps_and_rounds(description: str, steps: int, rounds: int) -> argparse.Namespace:
    """Parses ``--steps``, ``--rounds`` and ``--quick`` (2 steps, 2 rounds: checks the script)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 2, 2
    return args


def training_rates(
    record: Record,
    models: dict[str, tuple[Any, Sequence]],
    steps: int,
    rounds: int,
    batch_size: int = 64,
) -> tuple[dict[str, list[Rate]], dict[str, list[float]]]:
    """Times ``model.fit`` of several compiled models on the same random images, interleaved.

    Each model trains one untimed epoch first (tracing), then ``rounds`` timed
    epochs of ``steps`` batches, interleaved round by round (``interleave``);
    a row of images per second is added to ``record`` for each.

    Args:
        record: Where the rows go.
        models: Name -> ``(model, callbacks)``: a compiled model and the
            callbacks it trains with.
        steps: Batches per timed epoch.
        rounds: Timed epochs per model.
        batch_size: Images per batch (64x64 random images held in memory).

    Returns:
        ``(values, loads)`` as ``interleave``: per model, its ``Rate`` and the
        load average of each round, for ratios between models.
    """
    dataset = in_memory_dataset(random_images(steps * batch_size), batch_size)
    for network, callbacks in models.values():
        fit_rate(network, dataset, steps, batch_size, callbacks)
    values, loads = interleave(
        {
            name: (lambda m=network, c=callbacks: fit_rate(m, dataset, steps, batch_size, c))
            for name, (network, callbacks) in models.items()
        },
        rounds,
    )
    for name in models:
        record.add_rates(name, values[name], "img/s", loads=loads[name])
    return values, loads


## Data sets, rendered once and kept in SCRATCH


def synthetic_folder(n: int, seed: int = 0) -> Path:
    """A folder of ``n`` synthetic faces in the CelebA layout, rendered on first use.

    ``write_synthetic_celeba`` renames its output into place only when it is
    complete, so an existing folder can be trusted.
    """
    from dealwithit import synthetic

    folder = SCRATCH / f"synthetic_{n}"
    if not folder.is_dir():
        print(f"Rendering {n} synthetic faces into {folder} (once; later runs reuse them)")
        synthetic.write_synthetic_celeba(folder, n, seed=seed, workers=2, progress=True)
    return folder


def synthetic_cache(n: int, source: int | None = None) -> Path:
    """An HDF5 cache of the first ``n`` faces of ``synthetic_folder(source or n)``.

    ``prepare_cache`` returns an existing matching cache without work.
    """
    from dealwithit import data

    folder = synthetic_folder(source or n)
    path = SCRATCH / f"synthetic_{source or n}_first{n}_64.h5"
    return data.prepare_cache(folder, path, 64, progress=True, limit=n)


def training_cache(n: int = 5000) -> Path:
    """The repository's synthetic cache if it is there (read only), else one of ``n`` faces."""
    from dealwithit import data

    path = REPO / "data" / "cache" / "synthetic_64.h5"
    try:
        with data.CelebACache(path):
            return path
    except data.DataError:
        return synthetic_cache(n)


def step_rate(model, iterator, steps: int, batch_size: int = 64) -> Rate:
    """Images per second of ``steps`` calls of Keras' compiled training step on ``iterator``.

    The same ``train_function`` that ``fit`` calls once per batch, on one
    long-lived iterator: no per-call set-up, so a streamed dataset is timed
    in its steady state (``fit`` starts a fresh pass of the data each call).
    Call ``fit`` once first: it builds ``model.train_function``.
    """
    import keras

    def run():
        for _ in range(steps):
            logs = model.train_function(iterator)
        keras.tree.map_structure(lambda value: np.asarray(value), logs)

    return measure_rate(run, steps * batch_size)

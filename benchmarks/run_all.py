"""Runs every benchmark in a fresh process and rewrites BENCHMARKS.md from their records.

Each ``bench_*.py`` saves ``outputs/benchmarks/<name>.json``; ``bench_photo.py``
prints one JSON line, which is wrapped into the same kind of record here.
Nothing in BENCHMARKS.md is typed by hand: every figure comes from a record.

    .venv/bin/python benchmarks/run_all.py            # everything (about 10 min)
    .venv/bin/python benchmarks/run_all.py --only training edit
    .venv/bin/python benchmarks/run_all.py --format-only   # rewrite the markdown only
    .venv/bin/python benchmarks/run_all.py --quick    # tiny sizes, to check the scripts
    .venv/bin/python benchmarks/run_all.py --only fullsize   # 200,000 faces: hours, so never by default
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness

## Setup

# (record name, script), in the order of BENCHMARKS.md.
BENCHMARKS = (
    ("training", "bench_training.py"),
    ("flops", "bench_flops.py"),
    ("input", "bench_input.py"),
    ("synth", "bench_synth.py"),
    ("edit", "bench_edit.py"),
    ("photo", "bench_photo.py"),
    ("scaling", "bench_scaling.py"),
    ("speedups", "bench_speedups.py"),
    ("precision", "bench_precision.py"),
    ("logits", "bench_logits.py"),
    ("epochs", "bench_epochs.py"),
    ("validation", "bench_validation.py"),
    ("fullsize", "bench_fullsize.py"),
)
# Run only when named with --only: rendering and caching 200,000 faces takes hours on 2
# cores. Their last records still go into BENCHMARKS.md.
SLOW = ("fullsize",)
HERE = Path(__file__).resolve().parent


## Running


def run_photo(quick: bool) -> bool:
    """Runs bench_photo.py (which prints one JSON line) and saves it as a record."""
    command = [sys.executable, str(HERE / "bench_photo.py")]
    if quick:
        command += ["--repeats", "2"]
    record = harness.Record(
        "photo",
        "5b. Photo pipeline without the model (bench_photo.py)",
        "Median ms of MTCNN detection, alignment and paste-back on a 1024x768 photo made from "
        "a CelebA face (pasted at 1.5x, turned 12 degrees), and how far the paste moves pixels.",
    )
    record.data["command"] = harness.command_line_of(command)
    done = subprocess.run(command, cwd=harness.REPO, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != 0:
        print(done.stdout)
        return False
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "skipped" in result:
        record.note(f"Skipped: {result['skipped']}.")
        record.save()
        return True
    repeats = int(result["repeats"])
    load = [harness.load_average()]
    for key, value in result.items():
        if key.startswith("ms_"):
            row = record.add(key[3:].replace("_", " "), [value], "ms", loads=load)
            row.update({"n": repeats, "min": None, "max": None})
    for key in (
        "zero_residual_max_abs_change",
        "mean_change_in_eye_band",
        "mean_change_face_outside_eyes",
        "mean_change_photo_outside_eyes",
        "share_of_change_in_eye_band",
        "eye_error_frame_px",
    ):
        if key in result:
            unit = (
                "px"
                if key.endswith("_px")
                else ("fraction" if key.startswith("share") else "grey levels")
            )
            record.add(key.replace("_", " "), [result[key]], unit, loads=load)
    record.settings(
        photo=result.get("photo"),
        repeats=repeats,
        eye_band_residual=result.get("eye_band_residual"),
    )
    record.note(
        f"Detection, alignment and paste take {result['ms_total_zero_residual']:.0f} ms of a "
        f"photo edit; {result['share_of_change_in_eye_band']:.0%} of the pixel change stays in "
        "the eye band."
    )
    record.save()
    return True


def run(name: str, script: str, quick: bool) -> tuple[bool, float]:
    """Runs one benchmark in a fresh process; returns (succeeded, seconds)."""
    record = harness.OUT_DIR / f"{name}.json"
    record.unlink(missing_ok=True)  # a failed run must not leave an old record in its place
    start = time.perf_counter()
    print(f"\n=== {script} ===", flush=True)
    if name == "photo":
        ok = run_photo(quick)
    else:
        command = [sys.executable, str(HERE / script)] + (["--quick"] if quick else [])
        ok = subprocess.run(command, cwd=harness.REPO).returncode == 0
    return ok and record.is_file(), time.perf_counter() - start


## Formatting


def _number(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "fraction":
        return f"{100 * value:.3g} %"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Metric | Median | Min–max | n | Unit | CPU-time basis | Load | Goal | Met |",
        "|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    for row in rows:
        unit = row["unit"]
        spread = (
            f"{_number(row['min'], unit)}–{_number(row['max'], unit)}"
            if row.get("min") is not None and row.get("n", 0) > 1
            else "—"
        )
        met = {True: "yes", False: "**no**"}.get(row.get("met"), "")
        lines.append(
            f"| {row['metric']} | {_number(row['median'], unit)} | {spread} | {row['n']} | "
            f"{'%' if unit == 'fraction' else unit} | {row.get('cpu', '')} | {row['load']:.2f} | "
            f"{row.get('goal', '')} | {met} |"
        )
    return lines


def _machine_line(record: dict[str, Any]) -> str:
    m, v = record["machine"], record["versions"]
    start = "/".join(f"{x:.2f}" for x in m["load_start"])
    end = "/".join(f"{x:.2f}" for x in m["load_end"])
    return (
        f"{m['cores']} cores ({m['cpu_model']}; {', '.join(m['cpu_features'])}), "
        f"{m['ram_gb']} GB RAM; load average (1/5/15 min) {start} at start, {end} at end; "
        f"Python {v['python']}, TensorFlow {v['tensorflow']}, Keras {v['keras']}, "
        f"NumPy {v['numpy']}; {record['date']}, {record['seconds']:.0f} s."
    )


def _marker(name: str) -> str:
    """The hidden line that names a section's benchmark, so a later run can find it."""
    return f"<!-- benchmark: {name} -->"


def _section(name: str, record: dict[str, Any]) -> list[str]:
    settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in record["settings"].items())
    lines = [
        f"## {record['title']}",
        _marker(name),
        "",
        record["description"],
        "",
        f"- Command: `{record['command']}`",
        f"- Machine: {_machine_line(record)}",
    ]
    if settings:
        lines.append(f"- Settings: {settings}")
    lines += ["", *_table(record["rows"]), ""]
    lines += [f"**Interpretation:** {note}" for note in record["notes"]]
    return [*lines, ""]


def _goals(records: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| Benchmark | Goal | Median | Min–max | CPU-time basis | Load | Met |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for record in records.values():
        for row in record["rows"]:
            if "goal" in row:
                unit = row["unit"]
                spread = f"{_number(row['min'], unit)}–{_number(row['max'], unit)}"
                lines.append(
                    f"| {record['title']}: {row['metric']} | {row['goal']} {unit} | "
                    f"{_number(row['median'], unit)} | {spread if row['n'] > 1 else '—'} | "
                    f"{row.get('cpu', '')} | {row['load']:.2f} | "
                    f"{'yes' if row['met'] else '**no**'} |"
                )
    return lines


def _speedups(records: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"| Speed-up | Ratio vs default | Min–max | n | CPU-time basis | Pays (> {harness.PAYS:.2f}x) | Measured in |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for record in records.values():
        for row in record["rows"]:
            if "speedup" in row:
                basis = row.get("cpu_median", row["median"])
                pays = "yes" if min(row["median"], basis) >= harness.PAYS else "no"
                if row.get("ceiling"):
                    pays = f"upper bound ({pays})"
                lines.append(
                    f"| {row['speedup']} | {_number(row['median'])} | {_number(row['min'])}–"
                    f"{_number(row['max'])} | {row['n']} | {row.get('cpu', '')} | {pays} | "
                    f"{record['title']} |"
                )
    return lines


GENERATED_SECTIONS = ("Goals", "Speed-ups: what was tried")


def _old_sections(path: Path) -> tuple[str, list[tuple[str, str | None, list[str]]]]:
    """The "last full run took" sentence and the sections of an existing BENCHMARKS.md.

    Each section is (title, benchmark name from its marker or None, its lines).
    """
    if not path.is_file():
        return "", []
    text = path.read_text()
    took = text.split(" The last full run took ", 1)
    took = " The last full run took " + took[1].split("\n", 1)[0] if len(took) == 2 else ""
    sections: list[tuple[str, str | None, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:], None, []))
        elif sections and line.startswith("<!-- benchmark: "):
            sections[-1] = (sections[-1][0], line[16:].removesuffix(" -->"), sections[-1][2])
        if sections:
            sections[-1][2].append(line)
    return took, sections


def _kept_rows(old, heading: str, keep) -> list[str]:
    """Table rows of the old ``heading`` section for which ``keep(row)`` holds."""
    for title, _, lines in old:
        if title == heading:
            return [line for line in lines[3:] if line.startswith("| ") and keep(line)]
    return []


def write_markdown(path: Path, failed: dict[str, str]) -> Path:
    """Rewrites ``path`` (BENCHMARKS.md) from every record in ``harness.OUT_DIR``.

    A benchmark with no record here (``outputs/`` is not in git, so a fresh
    clone has none) keeps its section of the existing file, with its rows in
    the goal and speed-up tables: running one benchmark never drops the others.
    """
    records = {}
    for name, _ in BENCHMARKS:
        record_file = harness.OUT_DIR / f"{name}.json"
        if record_file.is_file():
            records[name] = json.loads(record_file.read_text())
    took, old = _old_sections(path)
    run_file = harness.OUT_DIR / "run_all.json"
    if run_file.is_file():
        last = json.loads(run_file.read_text())
        took = f" The last full run took {last['seconds'] / 60:.1f} min ({last['date']})."

    # The new sections, by benchmark name, and which old section each replaces.
    new_sections = {}
    for name, _ in BENCHMARKS:
        if name in failed:
            new_sections[name] = [
                f"## {name}",
                _marker(name),
                "",
                f"Not measured: {failed[name]}",
                "",
            ]
        elif name in records:
            new_sections[name] = _section(name, records[name])
    titles = {records[name]["title"]: name for name in records}

    def replaced_by(title: str, name: str | None) -> str | None:
        name = name or titles.get(title) or (title if title in new_sections else None)
        return name if name in new_sections else None

    kept = {
        title
        for title, name, _ in old
        if title not in GENERATED_SECTIONS and replaced_by(title, name) is None
    }
    kept_goals = _kept_rows(old, "Goals", lambda row: row[2:].split(": ", 1)[0] in kept)
    kept_speedups = _kept_rows(
        old, GENERATED_SECTIONS[1], lambda row: row.rstrip(" |").rsplit("| ", 1)[-1] in kept
    )
    goals = _goals(records)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make benchmarks` (`.venv/bin/python benchmarks/run_all.py`) from the JSON "
        "records in `outputs/benchmarks/`; do not edit by hand, rerun to regenerate (one "
        "benchmark: `--only NAME`; markdown only: `--format-only`)." + took,
        "",
        "How to read the tables: every figure is the median of n repetitions with its min–max. "
        "The machine is shared (2 cores; other work runs beside the benchmarks), so absolute "
        "rates move with the load: every speed claim is therefore a ratio against a baseline "
        "measured in the same process, with the two interleaved round by round and the ratio "
        "taken per round. *Load* is the 1-minute load average during the repetitions. "
        "*CPU-time basis* gives the same ratio from CPU time per item (the process and its "
        "workers), which other work disturbs far less than wall time; for a rate it is the "
        "median CPU time per item.",
        "",
        "## Goals",
        "",
        *goals[:2],
        *kept_goals,
        *goals[2:],
        "",
    ]
    # The old file's order, each section replaced by its new one where there is one; new
    # benchmarks with no old section follow, in BENCHMARKS order.
    placed = set()
    for title, name, section in old:
        if title in kept:
            lines += section
        elif (name := replaced_by(title, name)) is not None and name not in placed:
            lines += new_sections[name]
            placed.add(name)
    for name, section in new_sections.items():
        if name not in placed:
            lines += section
    speedups = _speedups(records)
    lines += [
        "## Speed-ups: what was tried",
        "",
        "Each candidate against the default in the same run (above 1: faster). One that pays "
        f"clearly (> {harness.PAYS:.2f}x on both the wall-clock and the CPU-time basis) is "
        "a proposal for the package; none has been applied to it.",
        "",
        *speedups[:2],
        *kept_speedups,
        *speedups[2:],
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"Wrote {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for name, _ in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the scripts")
    parser.add_argument("--format-only", action="store_true", help="only rewrite BENCHMARKS.md")
    args = parser.parse_args()
    markdown = harness.REPO / "BENCHMARKS.md"
    if args.quick:
        # Tiny sizes must never overwrite the real records or BENCHMARKS.md.
        harness.OUT_DIR = harness.OUT_DIR / "quick"
        os.environ["DEALWITHIT_BENCH_OUT"] = str(harness.OUT_DIR)
        markdown = harness.OUT_DIR / "BENCHMARKS.md"
        harness.OUT_DIR.mkdir(parents=True, exist_ok=True)

    failed: dict[str, str] = {}
    if not args.format_only:
        start = time.perf_counter()
        times = {}
        for name, script in BENCHMARKS:
            if (args.only and name not in args.only) or (not args.only and name in SLOW):
                continue
            ok, seconds = run(name, script, args.quick)
            times[name] = seconds
            if not ok:
                failed[name] = f"`{script}` failed; run it alone to see why."
        total = time.perf_counter() - start
        print("\n" + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
        print(f"Total {total / 60:.1f} min")
        if not args.only:  # a partial run says nothing about the full run's duration
            (harness.OUT_DIR / "run_all.json").write_text(
                json.dumps(
                    {
                        "seconds": round(total),
                        "date": time.strftime("%Y-%m-%d %H:%M"),
                        "per_benchmark_seconds": {k: round(v) for k, v in times.items()},
                    }
                )
                + "\n"
            )
    write_markdown(markdown, failed)
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

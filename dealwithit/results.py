"""RESULTS.md's tables, generated from committed JSON records under ``results/``.

A record is one run's metrics (one seed of one data set) with the command and
the machine that produced it, in ``results/<run>/seed<k>.json``.
``results/tables.json`` says which runs and seeds each table needs; ``make
results`` renders every table between its markers in RESULTS.md, so no number
there is typed by hand. The same records always give byte-identical tables, and
a missing record stops it with the path it expected. The format is in
``results/README.md``.

    python -m dealwithit.results record classifier weights/celeba/judge/attribute_report.json \\
        results/judge_celeba/seed1.json --command "python -m dealwithit train --data …"
    python -m dealwithit.results tables          # what `make results` runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dealwithit.cpu import kernel_flags

RECORD_FORMAT_VERSION = 1
RECORD_KINDS = ("classifier", "edits", "metrics")  # metrics: any other JSON (photos, vectors…)
TABLES_FILE = "tables.json"


class ResultsError(Exception):
    """A record or table that is missing or malformed."""


## Records


def machine() -> dict[str, Any]:
    """The machine a run happened on: results repeat on one machine, not across (oneDNN)."""
    from importlib import metadata

    cpu = platform.processor() or None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package, distributions in (
        ("tensorflow", ("tensorflow", "tensorflow-cpu")),
        ("keras", ("keras",)),
        ("numpy", ("numpy",)),
        ("scikit-learn", ("scikit-learn",)),
    ):
        versions[package] = None
        for distribution in distributions:
            try:
                versions[package] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_features": kernel_flags(),  # one model name, several CPUs
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "packages": versions,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def command_line() -> str:
    """This process's command line as a user would type it again."""
    import shlex

    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "dealwithit"):
        head = "python -m dealwithit"
    elif program.endswith(".py"):  # a script, e.g. benchmarks/leakage_floor.py
        head = f"python {sys.argv[0]}"
    else:
        head = program
    return " ".join([head, shlex.join(sys.argv[1:])]).strip()


def make_record(
    kind: str, metrics: Mapping[str, Any], command: str, commit: str | None = None
) -> dict[str, Any]:
    """One run's metrics wrapped with the command, machine, commit and time that produced them.

    Args:
        kind: ``"classifier"`` (an ``attribute_report.json``), ``"edits"``
            (an ``evaluate`` JSON) or ``"metrics"`` (any other metrics JSON).
        metrics: The metrics as written by that step.
        command: The command line that produced them.
        commit: The git commit that produced them; default: the current one.
    """
    if kind not in RECORD_KINDS:
        raise ResultsError(f"Expected kind among {RECORD_KINDS}. Received: kind={kind!r}")
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "kind": kind,
        "command": command,
        "machine": machine(),
        "git_commit": commit or _git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": dict(metrics),
    }


def write_record(record: Mapping[str, Any], path: str | Path) -> Path:
    """Writes a record atomically (``results/<run>/seed<k>.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_record(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Reads a record, or says which file is missing and how to make it."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(
            f"Expected the record {path}, found nothing. Produce it (see results/README.md), "
            "e.g. `python -m dealwithit evaluate … --record "
            f"{path}`, or remove its seed from results/{TABLES_FILE}."
        )
    record = json.loads(path.read_text())
    missing = sorted({"format_version", "kind", "command", "machine", "metrics"} - set(record))
    if missing:
        raise ResultsError(f"Expected a record in {path}. Missing keys: {missing}.")
    if kind is not None and record["kind"] != kind:
        raise ResultsError(
            f"Expected a {kind!r} record in {path}. Received a {record['kind']!r} record."
        )
    return record


## Tables


def _cell(values: Sequence[float | None], digits: int = 3) -> str:
    """``0.991`` for one value, ``0.991 ± 0.004`` (sample sd) for several, ``n/a`` for none.

    Records older than a metric lack it: a cell over fewer seeds than its column says
    how many it covers, ``0.750 (1 of 3 seeds)``, rather than passing for all of them.
    """
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    mean = statistics.fmean(present)
    cell = f"{mean:.{digits}f}"
    if len(present) > 1:
        cell += f" ± {statistics.stdev(present):.{digits}f}"
    if len(present) < len(values):
        cell += f" ({len(present)} of {len(values)} seeds)"
    return cell


def _records(root: Path, run: str, seeds: Sequence[int], kind: str) -> list[dict[str, Any]]:
    return [read_record(root / run / f"seed{seed}.json", kind)["metrics"] for seed in seeds]


def _seeds_text(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def classifier_table(root: Path, spec: Mapping[str, Any]) -> str:
    """Held-out AUC and balanced accuracy of a classifier, one row per data set."""
    focus = spec.get("attributes", ["Eyeglasses"])
    header = ["data", "seeds", "n"]
    for name in focus:
        header += [f"{name} AUC", f"{name} balanced acc."]
    header += ["mean AUC", "mean balanced acc.", "mean accuracy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, run in spec["runs"].items():
        reports = _records(root, run, spec["seeds"], "classifier")
        row = [label, _seeds_text(spec["seeds"]), str(reports[0]["n"])]
        for name in focus:
            rows = [r["attributes"].get(name) for r in reports]
            row.append(_cell([r["roc_auc"] if r else None for r in rows]))
            row.append(_cell([r["balanced_accuracy"] if r else None for r in rows]))
        row += [
            _cell([r["mean_roc_auc"] for r in reports]),
            _cell([r["mean_balanced_accuracy"] for r in reports]),
            _cell([r["mean_accuracy"] for r in reports]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def attributes_table(root: Path, spec: Mapping[str, Any]) -> str:
    """Every attribute's held-out AUC, balanced accuracy and accuracy beside a published accuracy."""
    reports = _records(root, spec["run"], spec["seeds"], "classifier")
    reference = json.loads((root / spec["reference"]).read_text())
    published = reference["accuracy"]
    header = ["attribute", "positive rate", "AUC", "balanced acc.", "accuracy", reference["label"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in reports[0]["attributes"]:
        rows = [r["attributes"][name] for r in reports]
        paper = published.get(name)
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _cell([r["positive_rate"] for r in rows]),
                    _cell([r["roc_auc"] for r in rows]),
                    _cell([r["balanced_accuracy"] for r in rows]),
                    _cell([r["accuracy"] for r in rows]),
                    "—" if paper is None else f"{paper / 100:.2f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _largest_abs(metrics: Mapping[str, Any], path: str) -> float | None:
    """The largest |value| of the mapping at the dotted ``path`` (a row key ``largest_abs:a.b``)."""
    values = _lookup(metrics, path)
    if not isinstance(values, Mapping) or not values:
        return None
    return max(abs(v) for v in values.values())


def _largest_leak(metrics: Mapping[str, Any], kind: str | None = None) -> float | None:
    """The largest |change| of the judge's probability of another attribute.

    For the edit's own kind, or ``kind`` (a row key ``largest_leak:conditional``).
    """
    return _largest_abs(metrics, f"leakage.{kind or metrics.get('kind')}")


# Values that are not a plain path into a metrics JSON, by the name a row gives
# (``name`` or ``name:argument``).
DERIVED = {"largest_leak": _largest_leak, "largest_abs": _largest_abs}

# (label, dotted key into the metrics JSON or a DERIVED name, digits): the default edits rows.
EDIT_ROWS = (
    ("judge AUC (original faces)", "judge_auc", 3),
    ("latent AUC (own classifier)", "latent_auc", 3),
    ("flip rate at auto α", "flip_rate", 3),
    ("dark-lens rate", "dark_lens_rate", 3),
    ("judge's base rate on reconstructions", "base_rate", 3),
    ("removal flip rate", "removal_flip_rate", 3),
    ("eye-band share of the change", "eye_band_share", 3),
    ("change outside eye band ÷ reconstruction error", "outside_change_ratio", 2),
    ("counterfactual ratio, strict twin", "counterfactual_ratio", 2),
    ("counterfactual ratio, best of K styles", "counterfactual_ratio_best_of_k", 2),
    (
        "… the VAE's own floor: its reconstruction of the closest style",
        "counterfactual_ratio_oracle",
        2,
    ),
    ("… best of K as MSE, which compares across models", "counterfactual_mse_best_of_k", 5),
    ("largest leakage, \\|Δ judge probability\\|", "largest_leak", 2),
    ("mean auto α", "mean_alpha", 2),
    ("PSNR (dB)", "reconstruction.psnr", 2),
    ("reconstruction MSE / pixel", "reconstruction.mse", 5),
    ("eye-band MSE", "reconstruction.eye_band_mse", 5),
    ("KL / image (nats)", "reconstruction.kl_per_image", 0),
    ("eyewear kept in reconstructions", "reconstruction.eyewear_kept_rate", 3),
)


def _lookup(metrics: Mapping[str, Any], key: str | Sequence[str]) -> Any:
    """The value at ``key``: a dotted path, a DERIVED ``name:argument``, or a list of keys.

    A list is for keys that hold dots themselves (``["by_scale", "0.6"]``).
    """
    if isinstance(key, str):
        name, _, argument = key.partition(":")
        if name in DERIVED:
            return DERIVED[name](metrics, *([argument] if argument else []))
        key = key.split(".")
    for part in key:
        metrics = metrics.get(part) if isinstance(metrics, Mapping) else None
    return metrics


def _run_and_seeds(entry, seeds: Sequence[int], kind: str) -> tuple[str, Sequence[int], str, Any]:
    """A ``runs`` entry: a run folder, or ``{"run": folder, "seeds", "kind", "at"}``.

    ``at`` is a key (as in a row) of the part of each record the column reads,
    so one record can fill several columns (one per architecture, say).
    """
    if isinstance(entry, Mapping):
        return entry["run"], entry.get("seeds", seeds), entry.get("kind", kind), entry.get("at")
    return entry, seeds, kind, None


def edits_table(root: Path, spec: Mapping[str, Any]) -> str:
    """Metrics, mean ± sd over seeds, one column per run; rows from ``spec["rows"]`` or EDIT_ROWS.

    Rows whose value no run has are left out, so one row list serves real and synthetic runs.
    """
    header, columns = ["metric"], []
    for label, entry in spec["runs"].items():
        run, seeds, kind, at = _run_and_seeds(
            entry, spec.get("seeds", [0]), spec.get("kind", "edits")
        )
        records = _records(root, run, seeds, kind)
        columns.append(records if at is None else [_lookup(m, at) or {} for m in records])
        # "show_seeds": false where a record holds many runs of its own (convergence).
        plural = "s" if len(seeds) > 1 else ""
        show = spec.get("show_seeds", True)
        header.append(f"{label} (seed{plural} {_seeds_text(seeds)})" if show else label)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, key, digits in spec.get("rows", EDIT_ROWS):
        values = [[_lookup(m, key) for m in records] for records in columns]
        if all(v is None for column in values for v in column):
            continue
        lines.append("| " + " | ".join([label, *(_cell(v, digits) for v in values)]) + " |")
    return "\n".join(lines)


_COMPARE = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}


def goals_table(root: Path, spec: Mapping[str, Any]) -> str:
    """Each goal beside the mean ± sd over its run's seeds, and whether the mean meets it.

    A row: ``{"label", "data", "run", "seeds", "key", "goal": ">= 0.98", "digits"}``.
    """
    header = ["metric", "data", "goal", "measured (mean ± sd over seeds)", "seeds", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in spec["rows"]:
        op, _, threshold = row["goal"].partition(" ")
        if op not in _COMPARE:
            raise ResultsError(f"Expected a goal like '>= 0.98'. Received: {row['goal']!r}")
        metrics = _records(root, row["run"], row["seeds"], row.get("kind", "edits"))
        values = [v for v in (_lookup(m, row["key"]) for m in metrics) if v is not None]
        met = (
            "n/a"
            if not values
            else "yes"
            if _COMPARE[op](statistics.fmean(values), float(threshold))
            else "**no**"
        )
        cells = [
            row["label"],
            row["data"],
            f"{op} {threshold}",
            _cell(values, row.get("digits", 3)),
        ]
        lines.append("| " + " | ".join([*cells, _seeds_text(row["seeds"]), met]) + " |")
    return "\n".join(lines)


RENDERERS = {
    "classifier": classifier_table,
    "attributes": attributes_table,
    "edits": edits_table,
    "goals": goals_table,
}


def render_tables(root: str | Path) -> dict[str, str]:
    """Every table of ``root/tables.json``, as markdown, by name."""
    root = Path(root)
    path = root / TABLES_FILE
    if not path.is_file():
        raise ResultsError(f"Expected the table list {path}, found nothing.")
    specs = json.loads(path.read_text())
    tables = {}
    for name, spec in specs.items():
        if spec.get("type") not in RENDERERS:
            raise ResultsError(
                f"Expected table {name!r} in {path} to have a type among {sorted(RENDERERS)}. "
                f"Received: {spec.get('type')!r}"
            )
        tables[name] = RENDERERS[spec["type"]](root, spec)
    return tables


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def update_markdown(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with each table's block, between its two markers, replaced by the table."""
    for name, table in tables.items():
        begin, end = _markers(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ResultsError(
                f"Expected the markers {begin} … {end} in RESULTS.md for table {name!r}. "
                "Add them where the table belongs."
            )
        text = text[: start + len(begin)] + "\n" + table + "\n" + text[stop:]
    return text


def regenerate(root: str | Path = "results", markdown: str | Path = "RESULTS.md") -> Path:
    """Rewrites every generated table of ``markdown`` from the records in ``root``."""
    markdown = Path(markdown)
    text = update_markdown(markdown.read_text(), render_tables(root))
    markdown.write_text(text)
    return markdown


## Command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dealwithit.results", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("record", help="wrap a metrics JSON file into a record")
    p.add_argument("kind", choices=RECORD_KINDS)
    p.add_argument("metrics", type=Path, help="attribute_report.json or an evaluate JSON")
    p.add_argument("out", type=Path, help="results/<run>/seed<k>.json")
    p.add_argument("--command", required=True, help="the command that produced the metrics")
    p.add_argument("--commit", default=None, help="the commit that ran it (default: HEAD)")
    p = sub.add_parser("tables", help="regenerate RESULTS.md's tables from the records")
    p.add_argument("--root", type=Path, default=Path("results"))
    p.add_argument("--markdown", type=Path, default=Path("RESULTS.md"))
    args = parser.parse_args(argv)
    try:
        if args.action == "record":
            metrics = json.loads(args.metrics.read_text())
            record = make_record(args.kind, metrics, args.command, args.commit)
            path = write_record(record, args.out)
            print(f"Record written to {path}")
        else:
            print(f"Tables regenerated in {regenerate(args.root, args.markdown)}")
    except (ResultsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

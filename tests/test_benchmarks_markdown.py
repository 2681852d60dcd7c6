"""benchmarks/run_all.write_markdown: one benchmark's new record never drops the others.

``outputs/`` is not in git, so on a fresh clone only the benchmark just run has a
record; every other section of BENCHMARKS.md, and its goal and speed-up rows,
must come through unchanged.
"""

import importlib
import json

import pytest
from conftest import REPO_ROOT


@pytest.fixture()
def run_all(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
        harness = importlib.import_module("harness")
        patch.setattr(harness, "OUT_DIR", tmp_path / "records")
        harness.OUT_DIR.mkdir()
        yield importlib.import_module("run_all")


def _record(title: str, metric: str, value: float, goal: bool = False) -> dict:
    row = {"metric": metric, "median": value, "min": value, "max": value, "n": 1}
    row.update(unit="x", load=1.0)
    if goal:
        row.update(goal="≥ 1", met=value >= 1)
    machine = {"cores": 2, "cpu_model": "test", "cpu_features": [], "ram_gb": 1}
    machine.update(load_start=[0, 0, 0], load_end=[0, 0, 0])
    versions = {"python": "3", "tensorflow": "2", "keras": "3", "numpy": "2"}
    return {
        "title": title,
        "description": f"What {title} measures.",
        "command": "python bench.py",
        "machine": machine,
        "versions": versions,
        "date": "2026-12-07",
        "seconds": 1.0,
        "settings": {},
        "rows": [row],
        "notes": [f"{title} note."],
    }


def _save(run_all, name: str, record: dict) -> None:
    (run_all.harness.OUT_DIR / f"{name}.json").write_text(json.dumps(record))


def test_sections_without_a_record_are_kept_and_the_new_one_replaced(run_all, tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    _save(run_all, "training", _record("1. Training throughput", "ours / reference", 1.5, True))
    _save(run_all, "fullsize", _record("9. Full-size data", "RSS ratio", 1.02, True))
    (run_all.harness.OUT_DIR / "run_all.json").write_text(
        json.dumps({"seconds": 600, "date": "2026-12-06 10:00"})
    )
    run_all.write_markdown(markdown, {})
    first = markdown.read_text()
    assert "The last full run took 10.0 min" in first

    # A fresh clone re-runs only fullsize, with a new figure.
    for path in run_all.harness.OUT_DIR.iterdir():
        path.unlink()
    _save(run_all, "fullsize", _record("9. Full-size data", "RSS ratio", 1.07, True))
    run_all.write_markdown(markdown, {})
    second = markdown.read_text()

    assert "## 1. Training throughput" in second
    assert "1. Training throughput note." in second
    assert "| 1. Training throughput: ours / reference | ≥ 1 x | 1.5 |" in second
    assert "The last full run took 10.0 min" in second
    assert "| 9. Full-size data: RSS ratio | ≥ 1 x | 1.07 |" in second
    assert "1.02" not in second
    assert second.count("## 9. Full-size data") == 1
    assert second.index("## 1. Training") < second.index("## 9. Full-size")
    # The same records give the same file.
    run_all.write_markdown(markdown, {})
    assert markdown.read_text() == second


def test_a_failed_benchmark_replaces_its_old_section(run_all, tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    _save(run_all, "fullsize", _record("9. Full-size data", "RSS ratio", 1.02, True))
    run_all.write_markdown(markdown, {})
    (run_all.harness.OUT_DIR / "fullsize.json").unlink()
    run_all.write_markdown(markdown, {"fullsize": "`bench_fullsize.py` failed"})
    text = markdown.read_text()
    assert "Not measured: `bench_fullsize.py` failed" in text
    assert "## 9. Full-size data" not in text

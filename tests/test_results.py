"""make results: tables come from records, repeat byte for byte, and stop when one is missing."""

import json

import pytest

from dealwithit import results

NAMES = ("Eyeglasses", "Male")


def _classifier_metrics(auc):
    rows = {
        name: {"roc_auc": auc, "balanced_accuracy": 0.9, "accuracy": 0.95, "positive_rate": 0.1}
        for name in NAMES
    }
    return {
        "split": "valid",
        "n": 100,
        "attributes": rows,
        "mean_roc_auc": auc,
        "mean_balanced_accuracy": 0.9,
        "mean_accuracy": 0.95,
    }


def _edit_metrics(flip):
    return {
        "flip_rate": flip,
        "judge_auc": 0.99,
        "latent_auc": 0.95,
        "reconstruction": {"mse": 0.006},
        # A newer metric: only the last seed's record has it.
        **({"dark_lens_rate": 0.8} if flip == 1.0 else {}),
    }


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "results"
    tables = {
        "judge": {"type": "classifier", "runs": {"real": "judge_real"}, "seeds": [0, 1]},
        "judge_attributes": {
            "type": "attributes",
            "run": "judge_real",
            "seeds": [0, 1],
            "reference": "paper.json",
        },
        "edits": {"type": "edits", "runs": {"real": "edits_real"}, "seeds": [0, 1, 2]},
        "goals": {
            "type": "goals",
            "rows": [
                {
                    "label": "flip",
                    "data": "real",
                    "run": "edits_real",
                    "seeds": [0, 1, 2],
                    "key": "flip_rate",
                    "goal": ">= 0.94",
                },
                {
                    "label": "latent",
                    "data": "real",
                    "run": "edits_real",
                    "seeds": [0, 1],
                    "key": "latent_auc",
                    "goal": ">= 0.99",
                },
                {
                    "label": "mse",
                    "data": "real",
                    "run": "edits_real",
                    "seeds": [2],
                    "key": "reconstruction.mse",
                    "goal": "<= 0.005",
                    "digits": 4,
                },
            ],
        },
    }
    root.mkdir()
    (root / "tables.json").write_text(json.dumps(tables))
    (root / "paper.json").write_text(json.dumps({"label": "paper", "accuracy": {"Male": 98}}))
    for seed, auc in ((0, 0.98), (1, 0.99)):
        record = results.make_record("classifier", _classifier_metrics(auc), "python -m train")
        results.write_record(record, root / "judge_real" / f"seed{seed}.json")
    for seed, flip in enumerate((0.90, 0.95, 1.0)):
        record = results.make_record("edits", _edit_metrics(flip), "python -m evaluate")
        results.write_record(record, root / "edits_real" / f"seed{seed}.json")
    return root


def _markdown(path):
    blocks = "".join(
        f"<!-- results:{n} -->\nold\n<!-- /results:{n} -->\n"
        for n in results.render_tables(path.parent / "results")
    )
    markdown = path.parent / "RESULTS.md"
    markdown.write_text("# Results\n\n" + blocks + "hand-written prose\n")
    return markdown


def test_tables_are_mean_and_sd_over_seeds_and_repeat_byte_for_byte(root):
    markdown = _markdown(root)
    results.regenerate(root, markdown)
    first = markdown.read_bytes()
    results.regenerate(root, markdown)
    assert markdown.read_bytes() == first
    text = first.decode()
    assert "old" not in text and "hand-written prose" in text
    # flip rates 0.90, 0.95, 1.00: mean 0.950, sample sd 0.050.
    assert "| flip rate at auto α | 0.950 ± 0.050 |" in text
    # AUCs 0.98 and 0.99: mean 0.985, sd 0.007.
    assert "| real | 0, 1 | 100 | 0.985 ± 0.007 |" in text
    assert "| Male | 0.100 ± 0.000 | 0.985 ± 0.007 | 0.900 ± 0.000 | 0.950 ± 0.000 | 0.98 |" in text
    assert "| Eyeglasses |" in text and text.count("| Eyeglasses |") == 1
    assert "| dark-lens rate | 0.800 (1 of 3 seeds) |" in text, "a cell says what it covers"
    assert "removal flip rate" not in text, "a row no run has is left out"
    # Goals are judged on the mean over the listed seeds.
    assert "| flip | real | >= 0.94 | 0.950 ± 0.050 | 0, 1, 2 | yes |" in text
    assert "| latent | real | >= 0.99 | 0.950 ± 0.000 | 0, 1 | **no** |" in text
    assert "| mse | real | <= 0.005 | 0.0060 | 2 | **no** |" in text


def test_a_missing_record_stops_with_its_path(root, capsys):
    markdown = _markdown(root)
    (root / "edits_real" / "seed2.json").unlink()
    before = markdown.read_text()
    with pytest.raises(results.ResultsError, match=r"edits_real/seed2\.json"):
        results.regenerate(root, markdown)
    assert markdown.read_text() == before, "nothing is rewritten when a record is missing"
    assert results.main(["tables", "--root", str(root), "--markdown", str(markdown)]) == 1
    assert "seed2.json" in capsys.readouterr().err


def test_a_missing_marker_is_an_error(root):
    markdown = root.parent / "RESULTS.md"
    markdown.write_text("# Results\n")
    with pytest.raises(results.ResultsError, match="<!-- results:judge -->"):
        results.regenerate(root, markdown)


def test_record_holds_command_machine_and_metrics(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(_edit_metrics(0.9)))
    out = tmp_path / "results" / "run" / "seed0.json"
    assert results.main(["record", "edits", str(metrics), str(out), "--command", "make it"]) == 0
    record = results.read_record(out, "edits")
    assert record["command"] == "make it" and record["metrics"]["flip_rate"] == 0.9
    assert record["machine"]["cpus"] >= 1 and "tensorflow" in record["machine"]["packages"]
    with pytest.raises(results.ResultsError, match="'classifier' record"):
        results.read_record(out, "classifier")


def test_list_keys_reach_keys_with_dots_and_largest_abs_takes_the_largest_magnitude():
    metrics = {"by_scale": {"0.6": 2.5, "1.0": 1.8}, "leakage": {"a": {"Young": -0.3, "Male": 0.2}}}
    assert results._lookup(metrics, ["by_scale", "0.6"]) == 2.5
    assert results._lookup(metrics, "by_scale.0.6") is None, "a dotted key splits at every dot"
    assert results._lookup(metrics, "largest_abs:leakage.a") == 0.3
    assert results._lookup(metrics, "largest_abs:leakage.missing") is None


def test_the_committed_tables_are_what_the_committed_records_give(tmp_path):
    """RESULTS.md as committed equals RESULTS.md regenerated from results/ (run `make results`)."""
    from conftest import REPO_ROOT

    committed = (REPO_ROOT / "RESULTS.md").read_text()
    copy = tmp_path / "RESULTS.md"
    copy.write_text(committed)
    results.regenerate(REPO_ROOT / "results", copy)
    assert copy.read_text() == committed, "RESULTS.md is stale: run `make results` and commit it"


def test_one_record_fills_one_column_per_part_with_at(tmp_path):
    root = tmp_path / "results"
    summary = {"conv": {"converged": 5, "mean": 10.0}, "ladder": {"converged": 2, "mean": 12.5}}
    record = results.make_record("metrics", {"summary": summary}, "python convergence.py")
    results.write_record(record, root / "convergence" / "seed0.json")
    columns = {
        name: {"run": "convergence", "kind": "metrics", "at": f"summary.{name}"}
        for name in ("conv", "ladder")
    }
    spec = {"runs": columns, "rows": [["converged of 5", "converged", 0], ["loss", "mean", 1]]}
    table = results.edits_table(root, spec)
    assert table.startswith("| metric | conv (seed 0) | ladder (seed 0) |")
    assert results.edits_table(root, {**spec, "show_seeds": False}).startswith(
        "| metric | conv | ladder |"
    )
    assert "| converged of 5 | 5 | 2 |" in table
    assert "| loss | 10.0 | 12.5 |" in table

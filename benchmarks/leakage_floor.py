"""How much of the measured leakage is occlusion: the judge on real faces that already wear sunglasses.

`evaluate`'s leakage is the change of the judge's probability of every other
attribute when sunglasses are added. Part of that change is not the edit's
fault: dark lenses hide the eyes, eyebrows and eye make-up from which a judge
reads Heavy_Makeup, Arched_Eyebrows or Attractive. This script measures that
part on real photographs, where no edit is involved: for each attribute A, the
judge's mean probability of A on real Sunglasses faces minus that on faces
without any eyewear, within the same true label of A (A = 0 and A = 1 apart,
weighted by the Sunglasses faces' label shares), so the label's own
correlation with sunglasses is held fixed. A perfect sunglasses edit, judged by
this judge, would show about this much "leakage".

Usage: python benchmarks/leakage_floor.py [--weights weights/pretrained]
    [--cache data/cache/celeba_64.h5] [--record results/leakage_floor/seed0.json]
Writes outputs/leakage_floor.json and prints the largest effects.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dealwithit import data, model, pipeline, results


def occlusion_effects(
    probabilities: np.ndarray, labels: np.ndarray, names, sunglasses: np.ndarray, bare: np.ndarray
) -> dict[str, float]:
    """Label-matched mean difference of the judge's probabilities, sunglasses vs bare eyes.

    Args:
        probabilities: ``(n, k)`` judge probabilities.
        labels: ``(n, k)`` true labels (booleans).
        names: The ``k`` attribute names.
        sunglasses: ``(n,)`` faces wearing sunglasses.
        bare: ``(n,)`` faces without any eyewear.
    """
    effects = {}
    for j, name in enumerate(names):
        total, weight = 0.0, 0
        for value in (False, True):
            with_ = sunglasses & (labels[:, j] == value)
            without = bare & (labels[:, j] == value)
            if with_.sum() and without.sum():
                difference = probabilities[with_, j].mean() - probabilities[without, j].mean()
                total += with_.sum() * difference
                weight += with_.sum()
        if weight:
            effects[name] = float(total / weight)
    return effects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=pipeline.PRETRAINED)
    parser.add_argument("--cache", type=Path, default=Path("data/cache/celeba_64.h5"))
    parser.add_argument("--out", type=Path, default=Path("outputs/leakage_floor.json"))
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args()
    judge, config = model.load_classifier(args.weights / "judge")
    names = model.attribute_names(config)
    judged = model.classifier_fn(judge)
    with data.CelebACache(args.cache) as cache:
        # Every split: the judge trained on the train split, so its held-out faces alone are
        # reported too; the effect is a property of the photographs, not of fitting.
        rows = {}
        for split in ("train", "valid"):
            images = pipeline.as_floats(cache.images(split))
            labels = np.stack([cache.attribute(name, split) for name in names], axis=1)
            rows[split] = (judged(images), labels)
    report = {"weights": str(args.weights), "cache": str(args.cache), "splits": {}}
    for split, (probabilities, labels) in rows.items():
        sunglasses = labels[:, names.index("Sunglasses")]
        bare = ~labels[:, names.index("Eyeglasses")]
        others = [n for n in names if n not in ("Sunglasses", "Eyeglasses")]
        keep = [names.index(n) for n in others]
        effects = occlusion_effects(
            probabilities[:, keep], labels[:, keep], others, sunglasses, bare
        )
        report["splits"][split] = {
            "n": int(len(labels)),
            "sunglasses": int(sunglasses.sum()),
            "bare": int(bare.sum()),
            "effects": effects,
            "largest": max(abs(v) for v in effects.values()),
        }
        top = sorted(effects.items(), key=lambda kv: -abs(kv[1]))[:6]
        print(
            f"{split}: {int(sunglasses.sum())} sunglasses vs {int(bare.sum())} bare faces; "
            + ", ".join(f"{k} {v:+.2f}" for k, v in top)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.record is not None:
        record = results.make_record("metrics", report, results.command_line())
        results.write_record(record, args.record)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()

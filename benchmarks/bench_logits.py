"""What the logits term costs a training step: the DR-VAE with and without ``logit_weight``.

The default DR-VAE compares the frozen classifier's stages 1-3 and, since
logits x 100 became the default, its 41 attribute logits too, which runs the
classifier's fourth stage and dense head on every input and reconstruction.
Both models train through ``model.fit`` on random images held in memory (64x64,
batch 64), one warm-up epoch each, then ``rounds`` timed epochs interleaved
round by round; ratios are taken round by round.

    .venv/bin/python benchmarks/bench_logits.py [--steps 5] [--rounds 6] [--quick]
"""

from __future__ import annotations

import harness  # first: it quiets TensorFlow's start-up logs
import keras

from dealwithit import model
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.training import KLWarmup

## Setup

steps = 5  # training steps per timed epoch; short, so load changes hit every model alike
rounds = 6  # timed epochs per model, interleaved
batch_size = 64
variants = {"stages 1-3": 0.0, "stages 1-3 + logits x 100": 100.0}


def main() -> None:
    args = harness.steps_and_rounds(__doc__.splitlines()[0], steps, rounds)
    record = harness.Record(
        "logits",
        "7c. The logits term's cost",
        "Images per second of `model.fit` (64x64, batch 64, random images in memory, "
        f"{args.steps} steps per timed epoch after one warm-up epoch, models interleaved) of "
        "the float32 DR-VAE comparing the classifier's stages 1-3, without and with its "
        "attribute logits (`VAEConfig(logit_weight=0)` and `logit_weight=100`, the default).",
    )
    record.settings(steps=args.steps, rounds=args.rounds, batch_size=batch_size, image_size=64)
    classifier = model.build_attribute_classifier(AttributeClassifierConfig())
    models = {}
    for name, weight in variants.items():
        network = model.build_vae(VAEConfig(logit_weight=weight), classifier)
        network.calibrate_feature_scales(harness.random_images(128, seed=1))
        network.compile(optimizer=keras.optimizers.Adam(1e-3))
        models[name] = (network, [KLWarmup(10_000)])
    values, loads = harness.training_rates(record, models, args.steps, args.rounds, batch_size)
    without, with_logits = variants
    ratio = record.add_speed_ratio(
        "with logits / without",
        values[with_logits],
        values[without],
        loads=loads[with_logits] + loads[without],
    )
    record.note(
        f"The logits term trains at {ratio['median']:.2f}x the speed of stages 1-3 alone "
        f"({ratio['cpu_median']:.2f}x by CPU time) on this CPU; its effect on quality is in "
        'RESULTS.md ("Keeping the eyewear").'
    )
    record.save()


if __name__ == "__main__":
    main()

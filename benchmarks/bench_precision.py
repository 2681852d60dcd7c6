"""Training speed in mixed bfloat16 against float32: ``VAEConfig(precision=...)``.

The DR-VAE (``build_vae(VAEConfig(), classifier)``, 64x64, batch 64) and the
plain VAE train through ``model.fit`` on random images held in memory, each
built once in float32 and once with ``precision="bfloat16"`` (Keras'
``mixed_bfloat16`` policy: bfloat16 compute, float32 variables, posterior,
noise, output and losses), one warm-up epoch each, then ``rounds`` timed
epochs interleaved round by round; ratios are taken round by round. The
machine's bfloat16 support (avx512_bf16, AMX) is in the record's machine line.
Quality at equal epochs is in RESULTS.md (it takes full training runs).

    .venv/bin/python benchmarks/bench_precision.py [--steps 5] [--rounds 6] [--quick]
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


def build_models() -> dict[str, keras.Model]:
    """DR-VAE and plain VAE, each in float32 and in bfloat16, compiled as train_vae does."""
    classifier = model.build_attribute_classifier(AttributeClassifierConfig())
    models = {}
    for name, config in {
        "DR-VAE float32": VAEConfig(),
        "DR-VAE bfloat16": VAEConfig(precision="bfloat16"),
        "plain float32": VAEConfig(discriminative=False),
        "plain bfloat16": VAEConfig(discriminative=False, precision="bfloat16"),
    }.items():
        network = model.build_vae(config, classifier if config.discriminative else None)
        network.calibrate_feature_scales(harness.random_images(128, seed=1))
        network.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        models[name] = network
    return models


def main() -> None:
    args = harness.steps_and_rounds(__doc__.splitlines()[0], steps, rounds)
    record = harness.Record(
        "precision",
        "7. Mixed bfloat16 training",
        "Images per second of `model.fit` (64x64, batch 64, random images in memory, "
        f"{args.steps} steps per timed epoch after one warm-up epoch, models interleaved) of "
        "the DR-VAE and the plain VAE built with `VAEConfig(precision='float32')` and "
        "`precision='bfloat16'` (`mixed_bfloat16`: bfloat16 compute; float32 variables, "
        "posterior heads, sampling noise, output and losses).",
    )
    record.settings(steps=args.steps, rounds=args.rounds, batch_size=batch_size, image_size=64)
    callbacks = [KLWarmup(10_000)]
    models = {name: (network, callbacks) for name, network in build_models().items()}
    values, loads = harness.training_rates(record, models, args.steps, args.rounds, batch_size)
    ratios = {}
    for kind in ("DR-VAE", "plain"):
        ratios[kind] = record.add_speed_ratio(
            f"{kind}: bfloat16 / float32",
            values[f"{kind} bfloat16"],
            values[f"{kind} float32"],
            loads=loads[f"{kind} bfloat16"] + loads[f"{kind} float32"],
            speedup=f"--precision bfloat16 ({kind})",
        )
    dr, plain = ratios["DR-VAE"], ratios["plain"]
    record.note(
        f"bfloat16 trains the DR-VAE at {dr['median']:.2f}x the float32 speed "
        f"({dr['cpu_median']:.2f}x by CPU time) and the plain VAE at {plain['median']:.2f}x "
        f"({plain['cpu_median']:.2f}x) on this CPU; its effect on quality is in RESULTS.md."
    )
    record.save()


if __name__ == "__main__":
    main()

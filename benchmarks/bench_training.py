"""Training throughput: our VAE vs a keras-io-style VAE, and DR-VAE vs plain VAE.

Four models train on 64x64 random images held in memory (batch 64), each
through ``model.fit`` on a ``tf.data`` dataset with ``steps_per_epoch``: one
warm-up epoch (tracing), then ``rounds`` timed epochs, interleaved round by
round. Ratios are taken round by round.

- reference: ``reference_vae.ReferenceVAE``, keras-io's GradientTape step,
  same encoder and decoder as ours;
- ours (bare): ``model.build_vae(VAEConfig(discriminative=False))``, no callback;
- ours: the same model with the ``KLWarmup`` callback, as ``training.train_vae`` runs it;
- DR-VAE: ``model.build_vae(VAEConfig(), classifier)`` with an untrained
  ``build_attribute_classifier(AttributeClassifierConfig())``, with ``KLWarmup``.

    .venv/bin/python benchmarks/bench_training.py [--steps 10] [--rounds 5] [--quick]
"""

from __future__ import annotations

import harness  # first: it quiets TensorFlow's start-up logs
import keras
from reference_vae import ReferenceVAE

from dealwithit import model
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.training import KLWarmup

## Setup

steps = 5  # training steps per timed epoch; short, so load changes hit every model alike
rounds = 8  # timed epochs per model, interleaved
batch_size = 64
warmup_steps = 10_000  # KL ramp length; long, so every timed step runs the ramp


def build_models() -> dict[str, tuple[keras.Model, list]]:
    """The four contenders, compiled, with the callbacks each trains with."""
    plain = VAEConfig(discriminative=False)
    reference = ReferenceVAE(model.build_encoder(plain), model.build_decoder(plain))
    reference.compile(optimizer=keras.optimizers.Adam(plain.learning_rate))

    ours = model.build_vae(plain)
    ours.compile(optimizer=keras.optimizers.Adam(plain.learning_rate))

    classifier = model.build_attribute_classifier(AttributeClassifierConfig())
    dr_config = VAEConfig()
    dr = model.build_vae(dr_config, classifier)
    dr.calibrate_feature_scales(harness.random_images(128, seed=1))
    dr.compile(optimizer=keras.optimizers.Adam(dr_config.learning_rate))
    return {
        "reference": (reference, []),
        "ours (bare)": (ours, []),
        "ours": (ours, [KLWarmup(warmup_steps)]),
        "DR-VAE": (dr, [KLWarmup(warmup_steps)]),
    }


def main() -> None:
    args = harness.steps_and_rounds(__doc__.splitlines()[0], steps, rounds)
    record = harness.Record(
        "training",
        "1. Training throughput",
        "Images per second of `model.fit` (64x64, batch 64, random images in memory), "
        f"{args.steps} steps per timed epoch after one warm-up epoch, models interleaved. "
        "*reference*: keras-io's GradientTape `train_step` (benchmarks/reference_vae.py) around "
        "our encoder and decoder; *ours (bare)*: `build_vae(VAEConfig(discriminative=False))`, "
        "no callback; *ours*: the same with the `KLWarmup` callback, as `train_vae` runs it; "
        "*DR-VAE*: `build_vae(VAEConfig(), classifier)` with `KLWarmup`.",
    )
    record.settings(steps=args.steps, rounds=args.rounds, batch_size=batch_size, image_size=64)
    models = build_models()
    record.settings(jit_compile=bool(models["ours"][0].jit_compile))
    values, loads = harness.training_rates(record, models, args.steps, args.rounds, batch_size)
    both = loads["ours"] + loads["reference"]
    ours = record.add_speed_ratio(
        "ours / reference", values["ours"], values["reference"], loads=both, goal=(">=", 1.0)
    )
    record.add_speed_ratio(
        "ours (bare) / reference",
        values["ours (bare)"],
        values["reference"],
        loads=loads["ours (bare)"] + loads["reference"],
    )
    dr = record.add_speed_ratio(
        "DR-VAE / ours",
        values["DR-VAE"],
        values["ours"],
        loads=loads["DR-VAE"] + loads["ours"],
        goal=(">=", 0.75),
    )
    callback = record.add_speed_ratio(
        "ours (bare) / ours: no per-batch KLWarmup callback",
        values["ours (bare)"],
        values["ours"],
        loads=loads["ours (bare)"] + loads["ours"],
        speedup="KL weight set on device instead of by the per-batch KLWarmup callback",
    )
    record.note(
        f"Our training step runs at {ours['median']:.2f}x the keras-io-style step on the same "
        f"conv stacks ({ours['cpu_median']:.2f}x by CPU time); discriminative regularization "
        f"keeps {dr['median']:.0%} of the plain speed ({dr['cpu_median']:.0%} by CPU time); "
        f"dropping the per-batch warm-up callback: {callback['median']:.2f}x "
        f"({callback['cpu_median']:.2f}x by CPU time)."
    )
    record.save()


if __name__ == "__main__":
    main()

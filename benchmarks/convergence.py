"""How often a short VAE run converges: every architecture, several seeds, one budget.

The seed project's network "did not always converge" and had to be re-seeded
(issue 11). This trains each architecture once per seed on the same cache and
budget (training faces, epochs, warm-up), plain or with the frozen DR
classifier, and records per run whether the loss went NaN (``TerminateOnNaN``
stops it and ``train_vae`` raises ``TrainingError``), the final held-out loss
(the training loss at β = 1 on the same first ``--held-out`` faces of the
``valid`` split for every run) and the wall time. All runs go to one JSON,
rewritten after each run, and a Markdown table is printed:

    PYTHONPATH=$PWD nice -n 15 .venv/bin/python benchmarks/convergence.py \\
        --cache data/cache/celeba_64.h5 --classifier weights/celeba_long/classifier \\
        --limit 2000 --epochs 2 --warmup-epochs 1 --out outputs/convergence/convergence.json
    .venv/bin/python benchmarks/convergence.py --table --out outputs/convergence/convergence.json

A run **converges** when it did not go NaN and its held-out loss is at most
``best + tolerance * |best|``, ``best`` being the lowest held-out loss of the
same architecture's runs (``converged``). The loss is a negative
log-likelihood that can be negative, so the margin is taken relative to
``|best|``; only the upper side matters, since lower is better.

That loss is the difference of two large terms (the discriminative term minus
a Gaussian log-likelihood that is already negative) and falls towards zero as
training goes on, so "10 % of |best|" shrinks with training and a seed a few
dozen steps behind fails it. The same rule is therefore also applied to the
held-out pixel MSE, a loss bounded below by zero (``converged_mse``: within
10 % of the best seed's MSE is within 0.41 dB of its PSNR).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np
from compare_architectures import TimeBudget, held_out_scores

from dealwithit import atomic, data, model, training
from dealwithit.config import ARCHITECTURES, VAEConfig

## Setup

seeds = (0, 1, 2, 3, 4)
limit = 2000  # training faces per run; a full run uses the whole train split
epochs = 2  # per run; full training: 10 (VAEConfig)
warmup_epochs = 1.0  # KL ramp, so every run trains at beta = 1 for its last epoch
held_out = 1000  # first faces of the valid split, the same for every run
tolerance = 0.10  # converged: held-out loss within this share of |best| of the best seed


class NaNWatch(keras.callbacks.Callback):
    """Remembers the first training step whose loss is NaN or infinite.

    ``train_vae`` raises ``TrainingError`` for a NaN loss and for other
    failures alike; this tells them apart and says when it happened.
    """

    def __init__(self):
        super().__init__()
        self.steps = 0
        self.nan_step: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        loss = (logs or {}).get("loss")
        if self.nan_step is None and loss is not None and not math.isfinite(float(loss)):
            self.nan_step = self.steps


def converged(losses: Sequence[float | None], tolerance: float = tolerance) -> list[bool]:
    """Which runs of one architecture converged.

    Args:
        losses: Final held-out loss of each run (lower is better); None or a
            non-finite value for a run that went NaN.
        tolerance: Allowed excess over the best run, as a share of ``|best|``.

    Returns:
        Per run: its loss is finite and ``<= best + tolerance * |best|``,
        where ``best`` is the lowest finite loss. With no finite loss, none did.
    """
    finite = [loss for loss in losses if loss is not None and math.isfinite(loss)]
    if not finite:
        return [False] * len(losses)
    best = min(finite)
    ceiling = best + tolerance * abs(best)
    return [loss is not None and math.isfinite(loss) and loss <= ceiling for loss in losses]


def summary(runs: Sequence[dict], tolerance: float = tolerance) -> dict[str, dict[str, Any]]:
    """Per architecture: runs, converged count (by loss and by MSE), NaN count, loss statistics.

    Also the held-out PSNR (from the pixel MSE) mean and sd: the loss is
    dominated by the discriminative term, the PSNR says how far the pixels
    themselves differ between seeds. Statistics are over the runs that did not
    go NaN; ``sd`` is the sample standard deviation (None for fewer than two).
    """
    result = {}
    for architecture in dict.fromkeys(run["architecture"] for run in runs):
        mine = [run for run in runs if run["architecture"] == architecture]
        losses = [None if run["nan"] else run["held_out_loss"] for run in mine]
        finite = np.array([loss for loss in losses if loss is not None and math.isfinite(loss)])
        pixel_losses = [None if run["nan"] else run.get("held_out", {}).get("mse") for run in mine]
        psnr = np.array([10 * math.log10(1 / mse) for mse in pixel_losses if mse])
        result[architecture] = {
            "runs": len(mine),
            "converged": sum(converged(losses, tolerance)),
            "converged_mse": sum(converged(pixel_losses, tolerance)),
            "nan": sum(bool(run["nan"]) for run in mine),
            "mean": float(finite.mean()) if len(finite) else None,
            "sd": float(finite.std(ddof=1)) if len(finite) > 1 else None,
            "min": float(finite.min()) if len(finite) else None,
            "max": float(finite.max()) if len(finite) else None,
            "psnr_mean": float(psnr.mean()) if len(psnr) else None,
            "psnr_sd": float(psnr.std(ddof=1)) if len(psnr) > 1 else None,
        }
    return result


def train_one(args, architecture: str, seed: int, floats: np.ndarray) -> dict[str, Any]:
    """Trains one VAE within the budget and scores it on the held-out faces."""
    keras.backend.clear_session()  # the previous run's graphs and names
    classifier = None if args.classifier is None else model.load_classifier(args.classifier)[0]
    config = VAEConfig(
        architecture=architecture,
        discriminative=classifier is not None,
        warmup_epochs=args.warmup_epochs,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        cosine_decay=args.cosine_decay,
        seed=seed,
    )
    sizes = {"latent_dim": args.latent_dim, "filters": args.filters and tuple(args.filters)}
    config = config.replace(**{k: v for k, v in sizes.items() if v is not None})
    watch = NaNWatch()
    extra = [watch] if args.minutes is None else [watch, TimeBudget(args.minutes * 60)]
    directory = args.out.parent / "runs" / f"{architecture}_s{seed}"
    started, cpu = time.monotonic(), harness.cpu_seconds()
    run = {"architecture": architecture, "seed": seed, "nan": False, "nan_step": None}
    try:
        vae, history = training.train_vae(
            args.cache,
            config,
            directory,
            classifier=classifier,
            progress=False,
            limit=args.limit,
            validation=False,  # scored once at the end, at beta = 1
            callbacks=tuple(extra),
        )
    except training.TrainingError:
        if watch.nan_step is None:
            raise  # not a NaN: a broken cache or settings, which every run would hit
        run.update(nan=True, nan_step=watch.nan_step, held_out_loss=None)
    run["train_seconds"] = round(time.monotonic() - started, 1)
    run["steps"] = watch.steps
    if not run["nan"]:
        scores = held_out_scores(vae, floats)
        # A finite training loss can still give a non-finite held-out one: that is NaN too.
        run["nan"] = not math.isfinite(scores["loss"])
        run["held_out_loss"] = None if run["nan"] else scores["loss"]
        run["held_out"] = {k: v for k, v in scores.items() if k != "kl_weight"}
        run["train_loss"] = [float(v) for v in history.history["loss"]]
    run["wall_seconds"] = round(time.monotonic() - started, 1)
    # Wall time moves with whatever else the machine runs; CPU time much less.
    run["cpu_seconds"] = round(harness.cpu_seconds() - cpu, 1)
    return run


def measure(args) -> dict[str, Any]:
    """Every (architecture, seed) run, in order, the JSON rewritten after each."""
    with data.CelebACache(args.cache) as cache:
        floats = cache.images("valid", limit=args.held_out).astype("float32") / 255.0
    record = {
        "command": harness.command_line(),
        "machine": harness.machine(),
        "settings": {
            "cache": str(args.cache),
            "classifier": None if args.classifier is None else str(args.classifier),
            "limit": args.limit,
            "epochs": args.epochs,
            "warmup_epochs": args.warmup_epochs,
            "learning_rate": args.learning_rate,
            "cosine_decay": args.cosine_decay,
            "minutes": args.minutes,
            "held_out": len(floats),
            "tolerance": args.tolerance,
        },
        "runs": [],
    }
    for architecture in args.architectures:
        for seed in args.seeds:
            run = train_one(args, architecture, seed, floats)
            record["runs"].append(run)
            record["summary"] = summary(record["runs"], args.tolerance)
            atomic.write_json(args.out, record)
            loss = "NaN" if run["nan"] else f"{run['held_out_loss']:.1f}"
            seconds = f"{run['wall_seconds']} s ({run['cpu_seconds']} s CPU)"
            print(f"{architecture} seed {seed}: held-out loss {loss}, {seconds}")
    return record


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(record: dict[str, Any]) -> str:
    """The Markdown table of a convergence record, with the rule and the budget under it."""
    settings = record["settings"]
    lines = [
        "| architecture | converged (loss) | converged (MSE) | held-out loss (mean ± sd) | min | max "
        "| NaN | PSNR dB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for architecture, row in summary(record["runs"], settings["tolerance"]).items():
        spread = "" if row["sd"] is None else f" ± {row['sd']:.1f}"
        psnr = _number(row["psnr_mean"]) + (
            "" if row["psnr_sd"] is None else f" ± {row['psnr_sd']:.2f}"
        )
        lines.append(
            f"| {architecture} | {row['converged']}/{row['runs']} "
            f"| {row['converged_mse']}/{row['runs']} | {_number(row['mean'])}{spread} "
            f"| {_number(row['min'])} | {_number(row['max'])} | {row['nan']} | {psnr} |"
        )
    kind = "DR-VAE" if settings["classifier"] else "plain VAE"
    lines.append(
        f"\n{kind}, {settings['limit']} training faces, epochs: {settings['epochs']} "
        f"(KL warm-up: {settings['warmup_epochs']:g}); held-out loss: the training loss at β = 1 "
        f"on {settings['held_out']} valid faces (nats per face, lower is better). Converged: "
        f"no NaN and held-out loss (or pixel MSE) ≤ best + {settings['tolerance']:g} × |best| of "
        "the same architecture."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("data/cache/celeba_64.h5"))
    parser.add_argument(
        "--classifier", type=Path, default=None, help="a classifier folder: train DR-VAEs"
    )
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=ARCHITECTURES)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    parser.add_argument("--limit", type=int, default=limit, help="training faces per run")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--warmup-epochs", type=float, default=warmup_epochs)
    parser.add_argument("--learning-rate", type=float, default=VAEConfig.learning_rate)
    parser.add_argument("--latent-dim", type=int, default=None, help="default: config's")
    parser.add_argument("--filters", type=int, nargs="+", default=None, help="default: config's")
    parser.add_argument(
        "--cosine-decay", action="store_true", help="learning rate falls to 0 over each run"
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="also stop a run after this wall time"
    )
    parser.add_argument("--held-out", type=int, default=held_out, help="valid faces scored")
    parser.add_argument("--tolerance", type=float, default=tolerance)
    parser.add_argument("--out", type=Path, default=Path("outputs/convergence/convergence.json"))
    parser.add_argument("--table", action="store_true", help="print the table of OUT and stop")
    args = parser.parse_args()
    if not args.table:
        measure(args)
    print(table(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()

"""conv vs resnet vs ladder VAE (and transfer on/off) at an equal wall-clock budget.

Each run trains one VAE on a prepared cache for a fixed number of minutes
(training stops after the batch that crosses the budget), then scores the
held-out split: PSNR and eye-band MSE of ``decode(z_mean)`` (what edits
paste back) and, for the ladder, of ``reconstruct`` (every layer's posterior
mean); KL per layer; active units; the judge's ``eyewear_kept_rate``; and the
held-out AUC of a latent Eyeglasses classifier on the top latent and on all
layers concatenated. One run per process; run them one after another:

    PYTHONPATH=$PWD nice -n 15 .venv/bin/python benchmarks/compare_architectures.py \\
        --cache data/cache/celeba_64.h5 --weights weights/real --architecture ladder \\
        --minutes 7 --out outputs/compare

It reuses a trained attribute classifier (``WEIGHTS/classifier``) and judge
(``WEIGHTS/judge``) and writes ``OUT/<name>/quality.json``; ``--table``
prints the Markdown table of every run in ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import harness  # noqa: F401  first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

from dealwithit import data, evaluate, model, training, vectors
from dealwithit.config import ARCHITECTURES, VAEConfig

## Setup

warmup_epochs = 1.0  # short, so every architecture reaches beta = 1 well inside the budget
held_out = 1000  # held-out faces scored (as pipeline.vae_report)
latent_train = 5000  # training faces the latent Eyeglasses classifier is fitted on
attribute = "Eyeglasses"


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the batch that crosses ``seconds`` of wall-clock time."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def held_out_scores(vae, floats) -> dict[str, float]:
    """The training loss and its terms on held-out faces, at β = 1.

    The same loss training used (``vae.evaluate``), but at the full KL weight
    whatever β the warm-up had reached, so runs of any length compare.

    Args:
        vae: A trained VAE.
        floats: ``(n, S, S, 3)`` float32 faces in [0, 1].

    Returns:
        ``{"loss", "reconstruction_loss", "kl_loss", ...}``: means per face.
    """
    vae.compile(optimizer="adam")
    vae.kl_weight.assign(1.0)
    return vae.evaluate(floats, batch_size=100, verbose=0, return_dict=True)


def run(args) -> dict:
    config = VAEConfig(
        architecture=args.architecture,
        transfer_stages=args.transfer_stages,
        transfer_frozen_epochs=1,
        warmup_epochs=warmup_epochs,
        epochs=1000,  # the budget stops it
        seed=args.seed,
    )
    changes = {
        "logit_weight": args.logit_weight,
        "learning_rate": args.learning_rate,
        "latent_dim": args.latent_dim,
        "filters": None if args.filters is None else tuple(args.filters),
    }
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    name = args.name or f"{args.architecture}_t{args.transfer_stages}_s{args.seed}"
    directory = Path(args.out) / name
    classifier = model.load_classifier(Path(args.weights) / "classifier")[0]
    budget = TimeBudget(args.minutes * 60)
    started = time.monotonic()
    vae, history = training.train_vae(
        args.cache,
        config,
        directory,
        classifier=classifier,
        progress=False,
        callbacks=(budget,),
    )
    seconds = time.monotonic() - started
    with data.CelebACache(args.cache) as cache:
        steps_per_epoch = int(np.ceil(len(cache.indices("train")) / config.batch_size))
        images = cache.images("valid", limit=held_out)
        labels = cache.attributes("valid")[:held_out]
        train_images = cache.images("train", limit=latent_train)
        train_labels = cache.attributes("train")[:latent_train]
    floats = images.astype("float32") / 255.0
    z_mean, z_log_var = model.predict_batches(vae.encode, floats)
    top = model.decoder_fn(vae)(z_mean)
    quality = evaluate.reconstruction_quality(floats, z_mean, z_log_var, top)
    full = model.predict_batches(vae.reconstruct, floats)
    full_quality = evaluate.reconstruction_quality(floats, z_mean, z_log_var, full)
    quality["psnr_all_layers"] = full_quality["psnr"]
    quality["eye_band_mse_all_layers"] = full_quality["eye_band_mse"]

    scores = held_out_scores(vae, floats)
    quality["kl_per_layer"] = {k: v for k, v in scores.items() if k.startswith("kl_loss")}
    quality["held_out_loss"] = scores["loss"]

    judge = model.classifier_fn(model.load_classifier(Path(args.weights) / "judge")[0])
    index = data.CELEBA_ATTRIBUTES.index(attribute)
    wearers = labels[:, index] > 0
    quality["eyewear_kept_rate"] = evaluate.eyewear_kept_rate(judge(top), wearers, index)
    quality["eyewear_kept_rate_all_layers"] = evaluate.eyewear_kept_rate(
        judge(full), wearers, index
    )
    quality["judge_sees_on_originals"] = evaluate.eyewear_kept_rate(judge(floats), wearers, index)
    quality["wearers"] = int(wearers.sum())

    # Which latent separates Eyeglasses better: the top one edits use, or all layers?
    # Scored as evaluate does: a classifier of its own, C picked by cross-validation.
    for key, encode in (("top", lambda b: vae.encode(b)[0]), ("all_layers", vae.encode_all)):
        z_train = model.predict_batches(encode, train_images)
        z_held = model.predict_batches(encode, floats)
        _, report = vectors.latent_auc_report(
            z_train, train_labels[:, index] > 0, z_held, labels[:, index] > 0
        )
        quality[f"latent_auc_{key}"] = report["roc_auc"]
        quality[f"latent_dim_{key}"] = int(z_train.shape[1])
    quality.update(
        name=name,
        architecture=args.architecture,
        transfer_stages=args.transfer_stages,
        logit_weight=config.logit_weight,
        learning_rate=config.learning_rate,
        top_latent_dim=config.latent_dim,
        filters=list(config.filters),
        seed=args.seed,
        machine=harness.machine(),
        command=" ".join(["python benchmarks/compare_architectures.py", *sys.argv[1:]]),
        budget_minutes=args.minutes,
        wall_seconds=round(seconds, 1),
        train_steps=budget.steps,
        epochs_reached=round(budget.steps / steps_per_epoch, 2),
        parameters=int(sum(np.prod(w.shape) for w in vae.trainable_weights)),
        nan=not all(np.isfinite(history.history["loss"])),
        val_loss=history.history.get("val_loss", [None])[-1],
    )
    np.save(directory / "reconstructions.npy", np.stack([floats[:8], top[:8], full[:8]]))
    (directory / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def table(out: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/quality.json"))]
    header = (
        "| run | epochs reached | PSNR dB (top / all layers) | eye-band MSE | KL per layer (nats) "
        "| active units | eyewear kept (top / all) | latent AUC (top / all) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for q in rows:
        kl = q["kl_per_layer"]
        layers = " / ".join(f"{kl[k]:.1f}" for k in sorted(kl) if k != "kl_loss") or ""
        kl_text = f"{kl['kl_loss']:.1f}" + (f" ({layers})" if layers else "")
        lines.append(
            f"| {q['name']} | {q['epochs_reached']} | {q['psnr']:.2f} / {q['psnr_all_layers']:.2f} "
            f"| {q['eye_band_mse']:.4f} | {kl_text} | {q['active_units']}/{q['latent_dim']} "
            f"| {q['eyewear_kept_rate']:.2f} / {q['eyewear_kept_rate_all_layers']:.2f} "
            f"| {q['latent_auc_top']:.3f} / {q['latent_auc_all_layers']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("data/cache/celeba_64.h5"))
    parser.add_argument("--weights", type=Path, default=Path("weights/real"))
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="conv")
    parser.add_argument("--transfer-stages", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=7.0)
    parser.add_argument("--logit-weight", type=float, default=None, help="default: config's")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: config's")
    parser.add_argument("--latent-dim", type=int, default=None, help="default: config's")
    parser.add_argument("--filters", type=int, nargs="+", default=None, help="default: config's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None)
    parser.add_argument("--out", type=Path, default=Path("outputs/compare"))
    parser.add_argument("--table", action="store_true", help="print the table of OUT and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()

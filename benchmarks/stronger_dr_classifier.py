"""A stronger DR classifier under the shipped recipe: does the VAE gain from it? (issue 12)

Trains the DR classifier with the judge's architecture (two convs a stage, batch norm,
augmentation, cosine decay; its own seed 0, 10 epochs) into WEIGHTS/classifier, copies the
shipped judge beside it, then trains the VAE with the config of a baseline VAE folder, so the
two differ only in the classifier they are compared in. ``vector`` and ``evaluate`` then score
WEIGHTS as any other folder (RESULTS.md, "A stronger DR classifier").

Usage: PYTHONPATH=$PWD python benchmarks/stronger_dr_classifier.py \
    [--weights weights/celeba_strongdr_seed0] [--baseline weights/celeba_mirror_eyew1000_seed0/vae]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from dealwithit import quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("data/cache/celeba_64.h5"))
    parser.add_argument("--weights", type=Path, default=Path("weights/celeba_strongdr_seed0"))
    parser.add_argument(
        "--baseline", type=Path, default=Path("weights/celeba_mirror_eyew1000_seed0/vae")
    )
    parser.add_argument("--epochs", type=int, default=10, help="the DR classifier's")
    args = parser.parse_args()
    quiet.import_tensorflow()
    from dealwithit import model, pipeline, training
    from dealwithit.config import AttributeClassifierConfig, VAEConfig

    stronger = AttributeClassifierConfig(
        convs_per_stage=2, batch_norm=True, augment=True, cosine_decay=True, epochs=args.epochs
    )
    config = training.with_cache_attributes(stronger, args.cache)
    args.weights.mkdir(parents=True, exist_ok=True)
    if not (args.weights / "classifier" / model.CLASSIFIER_FILE).is_file():
        training.train_attribute_classifier(
            args.cache, config, args.weights / "classifier", progress=False
        )
    if not (args.weights / "judge").is_dir():
        shutil.copytree(pipeline.PRETRAINED / "judge", args.weights / "judge")
    classifier, _ = model.load_classifier(args.weights / "classifier")
    vae_config = model.read_config(VAEConfig, args.baseline)
    training.train_vae(
        args.cache, vae_config, args.weights / "vae", classifier=classifier, progress=False
    )


if __name__ == "__main__":
    main()

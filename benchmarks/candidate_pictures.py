"""Synthetic faces and their reconstructions by every candidate VAE, in one picture.

Issue 11 asks for a picture of synthetic faces and their reconstructions per
candidate. The candidates are trained on real CelebA, whose images may not be
committed, so the faces are the project's own renders (seeded, the same for
every model): what each candidate keeps of eyewear, hair and pose on a face it
never saw. Run after ``compare_architectures.py``:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/candidate_pictures.py \\
        --run "conv z128=outputs/compare_avx2/conv_z128" \\
        --run "spatial 8x8x8=outputs/compare_avx2/spatial8_z512" \\
        --out docs/compare_candidates_synthetic.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness  # noqa: F401  first: it quiets TensorFlow's start-up logs
import numpy as np

from dealwithit import data, model, plots, synthetic

faces_shown = 10
# Every other face wears eyewear, so the picture shows what each model keeps of it.
eyewear_every = 2


def synthetic_faces(n: int, seed: int, image_size: int) -> np.ndarray:
    """``n`` rendered faces cropped as the cache crops them, float32 in [0, 1]."""
    crops = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        factors = synthetic.sample_factors(rng)
        if i % eyewear_every == 0:
            factors = synthetic.with_sunglasses(factors, True, rng)
        crops.append(data.crop_face(synthetic.render_face(factors), image_size))
    return np.stack(crops).astype("float32") / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="append", required=True, help="NAME=VAE_DIR (a folder with vae.keras)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--n", type=int, default=faces_shown)
    args = parser.parse_args()

    runs = dict(run.split("=", 1) for run in args.run)
    vaes = {name: model.load_vae(directory) for name, directory in runs.items()}
    image_size = next(iter(vaes.values())).config.image_size
    faces = synthetic_faces(args.n, args.seed, image_size)
    reconstructions = {}
    for name, vae in vaes.items():
        z_mean = model.encoder_fn(vae)(faces)
        reconstructions[name] = model.decoder_fn(vae)(z_mean)
        mse = float(np.mean((reconstructions[name] - faces) ** 2))
        print(f"{name}: PSNR on these synthetic faces {10 * np.log10(1 / mse):.2f} dB")

    figure = plots.comparison_figure(
        faces, reconstructions, title="Synthetic faces, reconstructed by models trained on CelebA"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()

"""Which grid rows should a spatial latent's eyewear direction keep? An ablation over rows and targets.

``vector --region eyes`` keeps the grid rows whose centres lie in the eye band (``vectors.rows_mask``).
This script tries other choices on the same trained weights: it copies the folder, finds the
directions on all of z (``region="face"``) at the given auto-alpha target, keeps only the
listed grid rows of each direction (none listed: all of z), and runs ``evaluate``:

    .venv/bin/python benchmarks/region_rows.py --weights weights/celeba_spatial_seed0 \\
        --rows 3 4 5 --target-probability 0.999 --out weights/rows345_t999 \\
        --record results/edits_celeba_spatial_rows345_t999/seed0.json

The copy is the only folder written; the source weights are left as they were.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from dealwithit import model, pipeline, vectors
from dealwithit.config import VAEConfig, VectorConfig


def keep_rows(folder: Path, rows: list[int]) -> None:
    """Confines every saved direction in ``folder/vectors/*`` to the grid ``rows``."""
    config = model.read_config(VAEConfig, folder / "vae")
    side, channels = config.spatial_grid()
    mask = np.zeros((side, side, channels), dtype=bool)
    mask[rows] = True
    for directory in sorted((folder / "vectors").iterdir()):
        if not (directory / vectors.VECTORS_FILE).is_file():
            continue
        directions, classifier, metadata = vectors.load_vectors(directory)
        for key in vectors._RESERVED_KEYS:  # save_vectors writes these itself
            metadata.pop(key, None)
        metadata["region"] = f"grid rows {rows}"
        kept = {kind: vectors.confine(d, mask.reshape(-1)) for kind, d in directions.items()}
        vectors.save_vectors(directory, kept, classifier, metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/celeba"))
    parser.add_argument("--weights", type=Path, required=True, help="a trained spatial folder")
    parser.add_argument("--rows", type=int, nargs="*", default=[], help="grid rows kept")
    parser.add_argument("--target-probability", type=float, default=0.999)
    parser.add_argument("--out", type=Path, required=True, help="the copy to write (replaced)")
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(args.weights, args.out)
    workspace = pipeline.Workspace(args.data, weights=args.out)
    config = VectorConfig(region="face", target_probability=args.target_probability)
    pipeline.vector(workspace, config, progress=False)
    if args.rows:
        keep_rows(args.out, args.rows)
    result = pipeline.evaluate(workspace, record=args.record, progress=False)
    print(json.dumps({k: result.metrics[k] for k in ("flip_rate", "eye_band_share")}))


if __name__ == "__main__":
    main()

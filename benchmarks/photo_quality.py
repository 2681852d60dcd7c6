"""Sunglasses on real faces pasted into photos: are the lenses dark, is the change local?

Real validation faces of the CelebA subset (read from ../shared, never copied) without
Eyeglasses are pasted, turned and scaled, into photo-like canvases (``faces.photo_on_canvas``),
so the frame -> photo map is known exactly. Each photo is edited by ``apply``'s path with the
shipped weights, and measured back in the aligned frame:

- lens/cheek ratio after the edit (``eyewear.lens_cheek_ratio`` of the edited photo warped back
  to the 178x218 frame); real sunglasses read about 0.3, no glasses 0.66;
- share of the change (sum of |edited - photo|) inside the eye band (``frame.EYE_BAND``);
- mean change outside the face ellipse, in grey levels.

Usage: python benchmarks/photo_quality.py [--n 24] [--weights weights/pretrained] [--frames DIR]
Writes outputs/photo_quality.json and prints a summary; ``--frames`` also writes each face's
frame before | after, to look at (real faces: keep them out of the repository).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dealwithit import data, eyewear, faces, pipeline
from dealwithit.frame import ALIGNED_SIZE, EYE_BAND

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"


def _frame_mask(matrix: np.ndarray, shape, mask: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(mask.astype(np.float32), matrix, (shape[1], shape[0])) > 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--weights", type=Path, default=pipeline.PRETRAINED)
    parser.add_argument("--out", type=Path, default=Path("outputs/photo_quality.json"))
    parser.add_argument("--frames", type=Path, default=None, help="folder for before | after")
    args = parser.parse_args()

    table = data.read_attributes(CELEBA)
    partition = data.read_partition(CELEBA, table.files)
    glasses = table.values[:, table.names.index("Eyeglasses")] > 0
    files = [f for f, p, g in zip(table.files, partition, glasses) if p == 1 and not g][: args.n]
    editor = pipeline.Editor(args.weights)
    width, height = ALIGNED_SIZE
    rows, cols = np.mgrid[0:height, 0:width]
    cx, cy, sx, sy = faces.FACE_ELLIPSE
    face_oval = np.hypot((cols - cx) / sx, (rows - cy) / sy) <= 1.0
    band = np.zeros((height, width), bool)
    band[EYE_BAND[0] : EYE_BAND[1]] = True
    before, after, shares, outside = [], [], [], []
    for k, name in enumerate(files):
        frame = np.asarray(Image.open(CELEBA / data.IMAGE_DIR / name).convert("RGB"))
        photo, matrix = faces.photo_on_canvas(
            frame, scale=1.5 + 0.5 * (k % 3), angle=8.0 * (k % 5 - 2), seed=k
        )
        edited, _ = faces.edit_photo(photo, lambda crops: editor.decodes(crops))
        back = cv2.warpAffine(edited, matrix, (width, height), flags=cv2.WARP_INVERSE_MAP)
        plain = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.WARP_INVERSE_MAP)
        before.append(float(eyewear.lens_cheek_ratio(plain)[0]))
        after.append(float(eyewear.lens_cheek_ratio(back)[0]))
        change = np.abs(edited.astype(np.float64) - photo).mean(axis=-1)
        shares.append(
            float(change[_frame_mask(matrix, photo.shape, band)].sum() / max(change.sum(), 1e-9))
        )
        outside.append(float(change[~_frame_mask(matrix, photo.shape, face_oval)].mean()))
        if args.frames is not None:
            args.frames.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.hstack([plain, back])).save(args.frames / f"face{k:02d}.png")
    summary = {
        "weights": str(args.weights),
        "faces": len(files),
        "median_lens_cheek_ratio_before": float(np.median(before)),
        "median_lens_cheek_ratio_after": float(np.median(after)),
        "dark_lens_rate": float(np.mean(np.array(after) < eyewear.DARK_LENS_RATIO)),
        "median_eye_band_share": float(np.median(shares)),
        "mean_change_outside_face": float(np.mean(outside)),
        "per_face": {"after": after, "eye_band_share": shares, "outside": outside},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_face"}, indent=2))


if __name__ == "__main__":
    main()

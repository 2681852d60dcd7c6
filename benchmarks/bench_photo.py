"""Times one photo edit (detect -> align -> residual -> paste) and prints a JSON line.

A real CelebA face is pasted at 1.5x, turned 12 degrees, into a 1024x768
gradient-and-noise photo. Two residuals are used: zero (an alpha = 0 edit) and
a small darkening of the eye rows, to measure how much the paste moves pixels
outside the eyes.

    .venv/bin/python benchmarks/bench_photo.py [--repeats 10] [--celeba PATH]
"""

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dealwithit import faces
from dealwithit.data import CROP_BOX, EYE_BAND, eye_band_rows

## Setup

repeats = 10  # timed runs; the median is reported
eye_band_value = -0.1  # residual on the eye rows, in [0, 1] intensity units (~25 grey levels)
celeba_file = "000014.jpg"  # a frontal face with confidence 1.0


def synthetic_photo(face, width=1024, height=768, scale=1.5, angle=12.0):
    """The face pasted with a soft oval edge; returns the photo and frame -> photo map."""
    return faces.photo_on_canvas(face, width, height, scale, angle)


def region_masks(shape, matrix):
    """Photo masks of the eye band (grown 3 px) and of the whole face crop square."""

    def polygon(left, top, right, bottom):
        corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], float)
        points = corners @ matrix[:, :2].T + matrix[:, 2]
        mask = np.zeros(shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, np.rint(points).astype(np.int32), 1)
        return mask

    eyes = cv2.dilate(polygon(CROP_BOX[0], EYE_BAND[0], CROP_BOX[2], EYE_BAND[1]), np.ones((7, 7)))
    return eyes > 0, polygon(*CROP_BOX) > 0


def eye_error(frame_matrix, paste_matrix):
    """Mean eye error in 178x218 frame pixels (estimated vs true paste transform)."""
    eyes = faces.TEMPLATE[:2]
    inverse = cv2.invertAffineTransform(frame_matrix)
    estimated = eyes @ inverse[:, :2].T + inverse[:, 2]
    true = eyes @ paste_matrix[:, :2].T + paste_matrix[:, 2]
    scale = np.sqrt(abs(np.linalg.det(paste_matrix[:, :2])))
    return np.linalg.norm(estimated - true, axis=1).mean() / scale


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=repeats)
    default_celeba = Path(__file__).resolve().parents[1].parent / "shared/data/celeba"
    parser.add_argument("--celeba", type=Path, default=default_celeba)
    args = parser.parse_args()

    path = args.celeba / "img_align_celeba" / celeba_file
    if not path.is_file():
        print(json.dumps({"benchmark": "photo_edit", "skipped": f"no CelebA image at {path}"}))
        return
    photo, matrix = synthetic_photo(np.asarray(Image.open(path).convert("RGB")))

    rows = eye_band_rows(64)

    def eye_band_edit(crops):
        residuals = np.zeros_like(crops)
        residuals[:, rows] = eye_band_value
        return residuals

    faces.detect_faces(photo)  # builds the detector once, outside the timings
    timings = {"detect": [], "align": [], "paste_zero": [], "paste_eye_band": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = faces.detect_faces(photo)
        detected = time.perf_counter()
        aligned = faces.align_face(photo, found[0])
        crops = aligned.crop[None].astype(np.float32) / 255.0
        zero = np.zeros_like(crops)[0]
        aligned_at = time.perf_counter()
        unchanged = faces.paste_edit(photo, aligned, zero)
        pasted_zero = time.perf_counter()
        edited = faces.paste_edit(photo, aligned, eye_band_edit(crops)[0])
        pasted_eye_band = time.perf_counter()
        timings["detect"].append(detected - start)
        timings["align"].append(aligned_at - detected)
        timings["paste_zero"].append(pasted_zero - aligned_at)
        timings["paste_eye_band"].append(pasted_eye_band - pasted_zero)
    ms = {f"ms_{name}": round(1000 * float(np.median(t)), 2) for name, t in timings.items()}
    ms["ms_total_zero_residual"] = round(ms["ms_detect"] + ms["ms_align"] + ms["ms_paste_zero"], 1)

    eyes, face_square = region_masks(photo.shape, matrix)
    change = np.abs(edited.astype(float) - photo).mean(axis=-1)  # grey levels per pixel
    result = {
        "benchmark": "photo_edit",
        "photo": f"{photo.shape[1]}x{photo.shape[0]}",
        "repeats": args.repeats,
        **ms,
        "zero_residual_max_abs_change": int(np.abs(unchanged.astype(int) - photo).max()),
        "eye_band_residual": eye_band_value,
        "mean_change_in_eye_band": round(float(change[eyes].mean()), 3),
        "mean_change_face_outside_eyes": round(float(change[face_square & ~eyes].mean()), 4),
        "mean_change_photo_outside_eyes": round(float(change[~eyes].mean()), 5),
        "share_of_change_in_eye_band": round(float(change[eyes].sum() / change.sum()), 4),
        "eye_error_frame_px": round(float(eye_error(aligned.frame_matrix, matrix)), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

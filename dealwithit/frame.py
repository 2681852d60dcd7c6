"""The aligned CelebA frame: its size, mean landmarks, the model's crop and the eye band.

Every module that places something on a face (the cache's crop, the synthetic renderer,
photo alignment, the eye-band metrics, lens darkness) reads its geometry from here.
"""

from __future__ import annotations

# Aligned CelebA frame (width x height) and the mean landmark positions in it.
ALIGNED_SIZE = (178, 218)
LANDMARK_TEMPLATE = {
    "left_eye": (69.0, 111.0),
    "right_eye": (108.0, 111.0),
    "nose": (90.0, 135.0),
    "mouth_left": (71.0, 153.0),
    "mouth_right": (106.0, 153.0),
}

# Centre crop of 148x148 (left, top, right, bottom) in the 178x218 frame, as in
# PyTorch-VAE's CelebA pipeline: the whole face and some hair, little background.
CROP_BOX = (15, 35, 163, 183)

# Rows of the aligned frame that hold eyes and eyewear (y = 96..128, full width).
EYE_BAND = (96, 128)


def eye_band_rows(image_size: int) -> slice:
    """Rows of a cropped ``image_size`` square that hold the eyes and eyewear."""
    left, top, right, bottom = CROP_BOX
    scale = image_size / (bottom - top)
    start = int((EYE_BAND[0] - top) * scale)
    stop = int(round((EYE_BAND[1] - top) * scale + 0.5))
    return slice(start, stop)

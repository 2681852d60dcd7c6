"""The edit itself: move latent codes along a direction, decode, make the GIF.

Works on NumPy arrays and two callables, so any VAE fits: ``encode(images)``
maps ``(n, S, S, 3)`` floats in [0, 1] to ``z_mean`` ``(n, latent_dim)`` and
``decode(z)`` maps back. An ``alpha`` is always an OFFSET in latent units along a
unit direction, ``z' = z + alpha * direction`` (as in Goh 2016's sliders).
Every function encodes once and decodes in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dealwithit import atomic, eyewear
from dealwithit.vectors import as_direction

Encode = Callable[[np.ndarray], np.ndarray]
Decode = Callable[[np.ndarray], np.ndarray]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


## Latent arithmetic


def apply_direction(z: Any, direction: Any, alphas: Any) -> np.ndarray:
    """Moves latent codes along a unit direction: ``z' = z + alphas * direction``.

    Args:
        z: ``(n, latent_dim)`` latent codes (or one code ``(latent_dim,)``).
        direction: ``(latent_dim,)`` unit vector.
        alphas: A scalar offset for every code, or ``(n,)`` offsets, one per
            code, in latent units along ``direction``.

    Returns:
        Float64 array shaped like ``z``.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim not in (1, 2):
        raise ValueError(f"Expected z of shape (n, latent_dim). Received: z.shape={z.shape}")
    direction = as_direction(direction, z.shape[-1])
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim == 0:
        return z + alphas * direction
    if z.ndim != 2 or alphas.shape != (z.shape[0],):
        raise ValueError(
            f"Expected alphas as a scalar or one per code, shape ({z.shape[0]},). "
            f"Received: alphas.shape={alphas.shape} for z.shape={z.shape}. "
            "For a slider grid (every alpha on every face) use slider_latents."
        )
    return z + alphas[:, None] * direction


def slider_latents(z: Any, direction: Any, alphas: Any) -> np.ndarray:
    """Every face at every slider position.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        direction: ``(latent_dim,)`` unit vector.
        alphas: ``(m,)`` offsets in latent units.

    Returns:
        ``(n, m, latent_dim)`` with ``[i, j] = z[i] + alphas[j] * direction``.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"Expected z of shape (n, latent_dim). Received: z.shape={z.shape}")
    direction = as_direction(direction, z.shape[1])
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    return z[:, None, :] + alphas[None, :, None] * direction


## Images


def check_images(images: Any) -> np.ndarray:
    """``images`` as an array if it is ``(n >= 1, S, S, 3)`` floats, else a ValueError saying why."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(
            f"Expected images of shape (n, S, S, 3), floats in [0, 1]. Received: shape={images.shape}"
        )
    if images.dtype == np.uint8:
        raise ValueError(
            "Expected float images in [0, 1] for the model. Received uint8; divide by 255 first."
        )
    return images


def _decode(decode: Decode, z: np.ndarray, expected: int) -> np.ndarray:
    images = np.asarray(decode(z))
    if images.shape[0] != expected:
        raise ValueError(
            f"Expected decode to return {expected} images (one per code). "
            f"Received: shape={images.shape}"
        )
    return images


def edit_images(
    images: Any, encode: Encode, decode: Decode, direction: Any, alphas: Any
) -> np.ndarray:
    """Encodes faces once, moves them along ``direction``, decodes in one batch.

    Args:
        images: ``(n, S, S, 3)`` floats in [0, 1].
        encode: ``images -> z_mean (n, latent_dim)``.
        decode: ``z -> images (n, S, S, 3)`` in [0, 1].
        direction: ``(latent_dim,)`` unit vector.
        alphas: Scalar or ``(n,)`` offsets in latent units. ``alphas=0`` gives
            the plain reconstruction ``decode(encode(images))``.

    Returns:
        ``(n, S, S, 3)`` edited images, as ``decode`` returns them.
    """
    images = check_images(images)
    z = np.asarray(encode(images))
    return _decode(decode, apply_direction(z, direction, alphas), images.shape[0])


def slider_grid(
    images: Any, encode: Encode, decode: Decode, direction: Any, alphas: Any
) -> np.ndarray:
    """Every face at every slider position, decoded in a single batch.

    Args:
        images: ``(n, S, S, 3)`` floats in [0, 1].
        encode: ``images -> z_mean (n, latent_dim)``.
        decode: ``z -> images`` in [0, 1].
        direction: ``(latent_dim,)`` unit vector.
        alphas: ``(m,)`` offsets in latent units (include 0 for the reconstruction).

    Returns:
        ``(n, m, S, S, 3)``: row i is face i, column j is ``alphas[j]``.
    """
    images = check_images(images)
    z = np.asarray(encode(images))
    latents = slider_latents(z, direction, alphas)
    n, m, latent_dim = latents.shape
    decoded = _decode(decode, latents.reshape(n * m, latent_dim), n * m)
    return decoded.reshape(n, m, *decoded.shape[1:])


def decode_pair(
    images: Any, encode: Encode, decode: Decode, direction: Any, alphas: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(decode(z), decode(z + alpha v))`` for faces encoded once, decoded in one batch.

    Args:
        images: ``(n, S, S, 3)`` floats in [0, 1].
        encode: ``images -> z_mean (n, latent_dim)``.
        decode: ``z -> images`` in [0, 1].
        direction: ``(latent_dim,)`` unit vector.
        alphas: Scalar or ``(n,)`` offsets in latent units, or a function
            ``z -> (n,) offsets`` (auto alpha needs the codes; faces are still
            encoded once).

    Returns:
        Two float32 ``(n, S, S, 3)`` arrays in [0, 1]: plain and edited decodes.
    """
    images = check_images(images)
    n = images.shape[0]
    z = np.asarray(encode(images), dtype=np.float64)
    if callable(alphas):
        alphas = alphas(z)
    both = np.concatenate([z, apply_direction(z, direction, alphas)], axis=0)
    decoded = _decode(decode, both, 2 * n).astype(np.float32)
    return decoded[:n], decoded[n:]


def residual_edit(
    images: Any, encode: Encode, decode: Decode, direction: Any, alphas: Any
) -> np.ndarray:
    """What the edit changes, ``decode(z + alpha v) - decode(z)``, as signed floats.

    Adding this residual to a sharper original (a photo crop) transfers the
    sunglasses without the VAE's blur on the rest of the face. Both decodes
    share one batch (``decode_pair``, whose arguments these are).

    Returns:
        ``(n, S, S, 3)`` float32 in [-1, 1].
    """
    plain, edited = decode_pair(images, encode, decode, direction, alphas)
    return edited - plain


## The meme


class FrameSchedule(NamedTuple):
    """Per GIF frame: how far the shades have dropped (0..1) and whether the caption shows."""

    drop: np.ndarray  # (n_frames,) float: 0 = shades still above the frame, 1 = on the eyes
    caption: np.ndarray  # (n_frames,) bool


def smoothstep(edge0: float, edge1: float, x: Any) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, and the cubic ``3t^2 - 2t^3`` in between.

    Eases the GIF's fade-in (the glasses start and land gently) and feathers
    the photo masks in ``faces``.
    """
    t = np.clip((np.asarray(x, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def frame_schedule(n_frames: int = 24) -> FrameSchedule:
    """The timing of the meme: a plain face, the shades falling onto the eyes, then the caption.

    ~20 % of frames plain, ~30 % falling (accelerating, as things fall: the drop
    is ``(k / n) ** 2``), then landed; "DEAL WITH IT" on the last ~40 %. No fade.

    Args:
        n_frames: Total number of frames, at least 3.

    Returns:
        A ``FrameSchedule``; ``drop`` rises from 0 to exactly 1 and stays there;
        the caption shows on landed frames only.
    """
    if n_frames < 3:
        raise ValueError(f"Expected n_frames >= 3 (plain, landed, caption). Received: {n_frames}")
    n_plain = max(1, round(0.2 * n_frames))
    n_fall = max(1, min(round(0.3 * n_frames), n_frames - n_plain - 1))
    n_landed = n_frames - n_plain - n_fall
    fall = (np.arange(1, n_fall + 1) / n_fall) ** 2
    drop = np.concatenate([np.zeros(n_plain), fall, np.ones(n_landed)])
    n_caption = max(1, min(n_landed, round(0.4 * n_frames)))
    caption = np.arange(n_frames) >= n_frames - n_caption
    return FrameSchedule(drop=drop, caption=caption)


def _shifted(base: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, dy: int) -> np.ndarray:
    """``base`` with the layer ``(rgb, alpha)`` moved ``dy`` rows down (up if negative)."""
    out = base.astype(np.float32)
    height = base.shape[0]
    src = slice(max(0, -dy), min(height, height - dy))
    dst = slice(max(0, dy), min(height, height + dy))
    a = alpha[src, :, None]
    out[dst] = out[dst] * (1.0 - a) + rgb[src] * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def drop_frames(
    before: Any,
    after: Any,
    lens_rgb: Any,
    lens_alpha: Any,
    n_frames: int = 24,
    caption: str = "DEAL WITH IT",
    size: int | None = None,
    resample: str = "nearest",
) -> list[Image.Image]:
    """The meme's frames: the shades (a lens layer) fall from above the frame onto the eyes.

    Args:
        before: ``(H, W, 3)`` uint8, the face without the edit.
        after: ``(H, W, 3)`` uint8, the face with the edit landed (shades on).
        lens_rgb: ``(H, W, 3)`` colour of the shades in 0..255, where they sit on ``after``.
        lens_alpha: ``(H, W)`` their opacity in [0, 1].
        n_frames: Number of frames (>= 3), timed by ``frame_schedule``.
        caption: Text of the last frames.
        size: Longer side in pixels after resizing; None keeps the size.
        resample: "nearest", "bicubic" or "lanczos".

    Returns:
        ``n_frames`` RGB PIL images.
    """
    before, after = np.asarray(before, np.uint8), np.asarray(after, np.uint8)
    lens_rgb = np.asarray(lens_rgb, np.float32)
    lens_alpha = np.asarray(lens_alpha, np.float32)
    if not before.shape == after.shape == lens_rgb.shape or lens_alpha.shape != before.shape[:2]:
        raise ValueError(
            f"Expected before, after and lens_rgb of one (H, W, 3) shape and lens_alpha (H, W). "
            f"Received: {before.shape}, {after.shape}, {lens_rgb.shape}, {lens_alpha.shape}"
        )
    schedule = frame_schedule(n_frames)
    rows = np.flatnonzero(lens_alpha.max(axis=1) > 0)
    start = -(int(rows.max()) + 1) if rows.size else 0  # fully above the frame's top edge
    sequence = []
    for drop in schedule.drop:
        if drop <= 0:
            sequence.append(before)
        elif drop >= 1:
            sequence.append(after)
        else:
            sequence.append(_shifted(before, lens_rgb, lens_alpha, round(start * (1 - drop))))
    return frames_from_sequence(
        sequence, caption=caption, caption_on=schedule.caption, size=size, resample=resample
    )


def to_pil(image: Any) -> Image.Image:
    """``(H, W, 3)`` floats in [0, 1] (or uint8, or a PIL image) to an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an image of shape (H, W, 3). Received: shape={image.shape}")
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(image)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        # Pillow >= 10.1 ships a scalable default font; no font file needed.
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def add_caption(image: Image.Image, text: str = "DEAL WITH IT") -> Image.Image:
    """Writes ``text`` at the bottom in bold white letters with a black outline.

    The font is as tall as ~13% of the image, shrunk until the text fits 92%
    of the width. Boldness comes from a white stroke around white glyphs, the
    outline from a wider black stroke drawn first.

    Args:
        image: Any PIL image (a 256-pixel face or a full photo).
        text: The caption.

    Returns:
        A new RGB image; the input is untouched.
    """
    image = image.convert("RGB")  # always a copy
    if not text:
        return image
    width, height = image.size
    draw = ImageDraw.Draw(image)
    size = max(6, int(0.13 * height))
    while True:
        font = _font(size)
        outline = max(1, size // 9)
        bold = size // 24
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=outline)
        if right - left <= 0.92 * width or size <= 6:
            break
        size = max(6, int(size * 0.92 * width / (right - left)))
    x = (width - (right - left)) // 2 - left
    y = height - int(0.04 * height) - bottom
    draw.text((x, y), text, font=font, fill="black", stroke_width=outline, stroke_fill="black")
    draw.text((x, y), text, font=font, fill="white", stroke_width=bold, stroke_fill="white")
    return image


def _resize(image: Image.Image, size: int | None, resample: str) -> Image.Image:
    if size is None:
        return image
    if resample not in _RESAMPLE:
        raise ValueError(f"Expected resample in {sorted(_RESAMPLE)}. Received: {resample!r}")
    width, height = image.size
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image if new == image.size else image.resize(new, _RESAMPLE[resample])


def frames_from_sequence(
    images: Sequence[Any],
    caption: str = "DEAL WITH IT",
    caption_on: Sequence[bool] | None = None,
    size: int | None = None,
    resample: str = "nearest",
) -> list[Image.Image]:
    """Turns a sequence of images (model outputs or full photos) into GIF frames.

    Args:
        images: Frames as ``(H, W, 3)`` floats in [0, 1], uint8 arrays or PIL images.
        caption: Text for the captioned frames.
        caption_on: One bool per frame; None uses ``frame_schedule(len(images)).caption``.
        size: Longer side in pixels after resizing (aspect kept); None keeps the size.
        resample: "nearest", "bicubic" or "lanczos".

    Returns:
        A list of RGB PIL images, captioned where asked.
    """
    if len(images) == 0:
        raise ValueError("Expected at least one image. Received: an empty sequence.")
    if caption_on is None:
        if len(images) >= 3:
            caption_on = frame_schedule(len(images)).caption
        else:  # too short for a schedule: caption the last frame only
            caption_on = [i == len(images) - 1 for i in range(len(images))]
    if len(caption_on) != len(images):
        raise ValueError(
            f"Expected one caption flag per image ({len(images)}). Received: {len(caption_on)}"
        )
    frames = []
    for image, captioned in zip(images, caption_on, strict=True):
        frame = _resize(to_pil(image), size, resample)
        frames.append(add_caption(frame, caption) if captioned else frame)
    return frames


def dealwithit_frames(
    image: Any,
    encode: Encode,
    decode: Decode,
    direction: Any,
    alpha: float,
    n_frames: int = 24,
    size: int = 256,
    caption: str = "DEAL WITH IT",
    resample: str = "nearest",
) -> list[Image.Image]:
    """The meme for a model-sized face: its reconstruction, the shades falling on, "DEAL WITH IT".

    The face is encoded once and decoded twice (plain and edited, one batch).
    The lenses the edit draws (``eyewear.lens_mask``) become a layer of
    sunglasses (``eyewear.sunglasses_layer``) that falls from above the frame
    (``drop_frames``); on landing the frame shows the edited decode under the
    shades. Upscaling is nearest-neighbour by default: the 64-pixel decode is
    soft already and bicubic would only blur it further.

    Args:
        image: ``(S, S, 3)`` float in [0, 1].
        encode: ``images -> z_mean (n, latent_dim)``.
        decode: ``z -> images`` in [0, 1].
        direction: ``(latent_dim,)`` unit vector.
        alpha: Offset of the edit in latent units (e.g. from ``alpha_for_probability``).
        n_frames: Number of frames (>= 3).
        size: Output side in pixels.
        caption: Text of the last frames.
        resample: "nearest", "bicubic" or "lanczos" (for the faces).

    Returns:
        ``n_frames`` RGB PIL images of ``size x size`` pixels.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"Expected one image (S, S, 3). Received: shape={image.shape}")
    (plain,), (edited,) = decode_pair(image[None], encode, decode, direction, [float(alpha)])
    lens = eyewear.lens_mask(plain, edited)
    up = [np.asarray(_resize(to_pil(face), size, resample)) for face in (plain, edited)]
    lens_up = np.asarray(Image.fromarray(lens).resize((size, size), Image.Resampling.BILINEAR))
    rgb, alpha_layer = eyewear.sunglasses_layer(up[1].astype(np.float32) / 255.0, lens_up)
    after = _shifted(up[1], rgb * 255.0, alpha_layer, 0)
    return drop_frames(up[0], after, rgb * 255.0, alpha_layer, n_frames, caption)


def save_gif(
    frames: Sequence[Image.Image], path: str | Path, duration_ms: int = 80, loop: int = 0
) -> Path:
    """Writes frames as an animated GIF, atomically (temporary file, then rename).

    Pillow merges identical consecutive frames into one with the summed
    duration, so the file may hold fewer frames than given; the total running
    time is always ``len(frames) * duration_ms``.

    Args:
        frames: PIL images of equal size.
        path: Destination ``.gif`` (parent folders are created).
        duration_ms: Display time of each frame in milliseconds.
        loop: 0 loops forever; n plays n + 1 times.

    Returns:
        The path written.
    """
    if len(frames) == 0:
        raise ValueError("Expected at least one frame. Received: none.")
    sizes = {frame.size for frame in frames}
    if len(sizes) != 1:
        raise ValueError(f"Expected frames of one size. Received sizes: {sorted(sizes)}")
    path = Path(path)
    rgb = [frame.convert("RGB") for frame in frames]
    with atomic.atomic_path(path) as temporary:
        rgb[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=rgb[1:],
            duration=int(duration_ms),
            loop=int(loop),
        )
    return path

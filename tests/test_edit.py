"""Tests for dealwithit.edit with a linear fake VAE: exact edits, one decode batch, the GIF."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dealwithit import plots
from dealwithit.edit import (
    add_caption,
    apply_direction,
    dealwithit_frames,
    drop_frames,
    edit_images,
    frame_schedule,
    frames_from_sequence,
    residual_edit,
    save_gif,
    slider_grid,
    slider_latents,
)

SIZE, LATENT_DIM = 8, 6


class LinearVAE:
    """encode = a fixed projection, decode = its pseudo-inverse, clipped to [0, 1].

    Counts decode calls so tests can check that a grid is decoded in one batch.
    """

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.projection = rng.normal(size=(SIZE * SIZE * 3, LATENT_DIM)) / SIZE
        self.inverse = np.linalg.pinv(self.projection)
        self.decode_calls = 0
        self.decoded_codes = 0

    def encode(self, images):
        images = np.asarray(images, dtype=np.float64)
        return images.reshape(len(images), -1) @ self.projection

    def decode(self, z):
        self.decode_calls += 1
        self.decoded_codes += len(z)
        flat = np.asarray(z, dtype=np.float64) @ self.inverse
        return np.clip(flat, 0.0, 1.0).reshape(len(z), SIZE, SIZE, 3).astype(np.float32)


@pytest.fixture
def vae():
    return LinearVAE()


@pytest.fixture
def images():
    return np.random.default_rng(1).random((5, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture
def direction():
    v = np.random.default_rng(2).normal(size=LATENT_DIM)
    return v / np.linalg.norm(v)


def test_alpha_zero_edit_is_the_plain_reconstruction(vae, images, direction):
    """An alpha = 0 edit changes nothing: exactly decode(encode(images))."""
    edited = edit_images(images, vae.encode, vae.decode, direction, 0.0)
    np.testing.assert_array_equal(edited, vae.decode(vae.encode(images)))
    residual = residual_edit(images, vae.encode, vae.decode, direction, 0.0)
    assert residual.shape == images.shape and np.all(residual == 0.0)


def test_apply_direction_broadcasts_scalar_and_per_face_alphas(direction):
    """Scalar: every code moves the same; (n,): each its own; alpha is an offset along v."""
    z = np.arange(3 * LATENT_DIM, dtype=float).reshape(3, LATENT_DIM)
    np.testing.assert_allclose(
        apply_direction(z, direction, 2.0) - z, np.tile(2 * direction, (3, 1))
    )
    moved = apply_direction(z, direction, np.array([0.0, 1.0, -3.0]))
    np.testing.assert_allclose(np.linalg.norm(moved - z, axis=1), [0.0, 1.0, 3.0])
    np.testing.assert_allclose((moved - z) @ direction, [0.0, 1.0, -3.0])
    with pytest.raises(ValueError, match="slider_latents"):
        apply_direction(z, direction, np.ones(4))
    with pytest.raises(ValueError, match="unit-length"):
        apply_direction(z, 3 * direction, 1.0)


def test_slider_latents_shape_and_values(direction):
    """(n, d) codes and m alphas give (n, m, d) with [i, j] = z[i] + alphas[j] v."""
    z = np.random.default_rng(3).normal(size=(4, LATENT_DIM))
    alphas = np.array([-1.0, 0.0, 2.5])
    grid = slider_latents(z, direction, alphas)
    assert grid.shape == (4, 3, LATENT_DIM)
    np.testing.assert_allclose(grid[2, 2], z[2] + 2.5 * direction)
    np.testing.assert_array_equal(grid[:, 1], z)


def test_slider_grid_decodes_in_one_batch(vae, images, direction):
    """STYLE.md: never decode a slider grid one image at a time. One call, n * m codes."""
    alphas = np.linspace(-2, 2, 7)
    grid = slider_grid(images, vae.encode, vae.decode, direction, alphas)
    assert grid.shape == (5, 7, SIZE, SIZE, 3)
    assert (vae.decode_calls, vae.decoded_codes) == (1, 35)
    for j, alpha in enumerate(alphas):
        expected = edit_images(images, vae.encode, vae.decode, direction, alpha)
        np.testing.assert_allclose(grid[:, j], expected, atol=1e-6)


def test_slider_columns_are_headed_by_readable_alphas():
    """A linspace through zero, e.g. (-reach, 1.5 reach, 6), puts about 1e-16 in a column."""
    alphas = np.linspace(-5.29, 1.5 * 5.29, 6)
    assert 0 < abs(alphas[2]) < 1e-12
    figure = plots.slider_grid_figure(np.zeros((2, 6, 8, 8, 3)), alphas)
    titles = [axis.get_title() for axis in figure.axes[:6]]
    assert titles == ["α=-5.3", "α=-2.6", "α=0", "α=+2.6", "α=+5.3", "α=+7.9"], titles


def test_edit_images_per_face_alphas_and_residual(vae, images, direction):
    """Per-face alphas land each face at its own offset; the residual is edit minus reconstruction."""
    alphas = np.array([0.0, 0.5, 1.0, 2.0, -1.0])
    edited = edit_images(images, vae.encode, vae.decode, direction, alphas)
    z = vae.encode(images)
    np.testing.assert_allclose(edited, vae.decode(z + alphas[:, None] * direction), atol=1e-6)
    vae.decode_calls = 0
    residual = residual_edit(images, vae.encode, vae.decode, direction, alphas)
    assert vae.decode_calls == 1
    np.testing.assert_allclose(residual, edited - vae.decode(z), atol=1e-6)
    assert residual.min() < 0 < residual.max()  # signed, for pasting onto a sharper photo
    with pytest.raises(ValueError, match="uint8"):
        edit_images((images * 255).astype(np.uint8), vae.encode, vae.decode, direction, 0.0)


def test_frame_schedule_holds_drops_then_captions():
    """24 frames: 5 plain, 7 falling (accelerating) to exactly 1, caption on the last 10 only."""
    schedule = frame_schedule(24)
    drop, caption = schedule
    assert drop.shape == caption.shape == (24,)
    np.testing.assert_array_equal(drop[:5], 0.0)
    assert drop[5] > 0 and np.all(np.diff(drop) >= 0)
    np.testing.assert_array_equal(drop[12:], 1.0)
    assert np.all(np.diff(drop[5:12], 2) > 0)  # falling faster and faster
    np.testing.assert_array_equal(np.flatnonzero(caption), np.arange(14, 24))
    assert frame_schedule(3).caption.tolist() == [False, False, True]
    with pytest.raises(ValueError, match="n_frames >= 3"):
        frame_schedule(2)


def test_drop_frames_move_the_lens_layer_down_without_fading():
    """A dark bar falls from above the frame to rows 40-49; every frame is before or bar, never a mix."""
    before = np.full((100, 80, 3), 200, np.uint8)
    after = before.copy()
    after[40:50, 10:70] = 10
    rgb = np.zeros((100, 80, 3), np.float32) + 10
    alpha = np.zeros((100, 80), np.float32)
    alpha[40:50, 10:70] = 1
    frames = [np.asarray(f) for f in drop_frames(before, after, rgb, alpha, n_frames=24)]
    tops = []
    for frame in frames:
        dark = np.flatnonzero((frame[:75, :, 0] == 10).any(axis=1))  # above the caption
        tops.append(dark.max() if dark.size else None)  # the bar's bottom edge
        assert set(np.unique(frame[:75])) <= {10, 200}  # no fade: opaque bar or background
    assert tops[:5] == [None] * 5
    visible = [t for t in tops[5:11] if t is not None]
    assert visible and np.all(np.diff(visible) > 0) and visible[-1] < 49
    assert all(t == 49 for t in tops[11:])  # landed on the 7th falling frame
    np.testing.assert_array_equal(frames[11], after)


def test_dealwithit_gif_has_the_expected_frames_and_size(tmp_path, vae, images, direction):
    """24 frames of 256 px from one decode of two codes; the GIF loops with the full running time."""
    frames = dealwithit_frames(images[0], vae.encode, vae.decode, direction, 3.0, n_frames=24)
    assert vae.decode_calls == 1 and vae.decoded_codes == 2
    assert len(frames) == 24 and all(f.size == (256, 256) and f.mode == "RGB" for f in frames)
    # The first frame is the upscaled reconstruction (nearest: 32x32 pixel blocks).
    reconstruction = vae.decode(vae.encode(images[:1]))[0]
    first = np.asarray(frames[0])
    np.testing.assert_array_equal(
        first[::32, ::32], np.round(reconstruction * 255).astype(np.uint8)
    )
    path = save_gif(frames, tmp_path / "out" / "dealwithit.gif", duration_ms=80)
    assert [p.name for p in path.parent.iterdir()] == ["dealwithit.gif"]
    with Image.open(path) as gif:
        assert gif.size == (256, 256) and gif.info.get("loop") == 0
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert sum(durations) == 24 * 80


def test_caption_sits_at_the_bottom_in_white_with_black_outline():
    """Only the bottom of the frame changes; white and black text pixels; fits the width."""
    photo = Image.new("RGB", (640, 480), (120, 90, 200))
    captioned = add_caption(photo, "DEAL WITH IT")
    assert np.asarray(photo).max() == 200  # input untouched
    changed = np.any(np.asarray(captioned) != np.asarray(photo), axis=-1)
    rows, cols = np.nonzero(changed)
    assert rows.min() > 0.75 * 480 and rows.max() < 480
    assert cols.min() > 0 and cols.max() < 639
    assert cols.max() - cols.min() > 0.5 * 640  # big, readable
    pixels = np.asarray(captioned)[changed]
    assert np.any(np.all(pixels == 255, axis=-1)) and np.any(np.all(pixels == 0, axis=-1))
    # A long caption is shrunk to fit a narrow image.
    narrow = add_caption(Image.new("RGB", (100, 200), (120, 90, 200)), "DEAL WITH IT, REALLY")
    cols = np.nonzero(np.any(np.asarray(narrow) != (120, 90, 200), axis=(0, 2)))[0]
    assert cols.min() > 0 and cols.max() < 99


def test_frames_from_sequence_keeps_aspect_and_captions_where_asked():
    """Photo frames: longer side resized to `size`, caption only on flagged frames."""
    photos = [np.full((50, 100, 3), 0.5, dtype=np.float32) for _ in range(3)]
    frames = frames_from_sequence(photos, caption_on=[False, False, True], size=200)
    assert [f.size for f in frames] == [(200, 100)] * 3
    assert len(np.unique(np.asarray(frames[0]))) == 1  # plain grey, no caption
    assert len(np.unique(np.asarray(frames[2]))) > 1
    assert frames_from_sequence(photos)[2].size == (100, 50)
    with pytest.raises(ValueError, match="one caption flag per image"):
        frames_from_sequence(photos, caption_on=[True])

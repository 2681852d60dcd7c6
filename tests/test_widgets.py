"""The live sliders: they build and update headless, and a slider is an offset along its direction."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dealwithit.widgets import LatentSliders

LATENT_DIM = 4
SIZE = 8


def _linear_model(seed=0):
    """A fake encoder/decoder pair: ``decode`` is linear, so edits are easy to predict."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(LATENT_DIM, SIZE * SIZE * 3)) * 0.05

    def encode(images):
        return np.asarray(images).reshape(len(images), -1) @ weights.T

    def decode(z):
        return np.clip(0.5 + (np.asarray(z) @ weights).reshape(len(z), SIZE, SIZE, 3), 0, 1)

    return encode, decode


def _faces(n=3, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype("float32")


def test_builds_and_updates_without_a_frontend():
    """Building the widget and calling update once works headless and shows a PNG of input | edit."""
    encode, decode = _linear_model()
    sliders = LatentSliders(
        _faces(), encode, decode, {"Eyeglasses": np.eye(LATENT_DIM)[0]}, size=16
    )
    shown = sliders.update()
    assert shown.size == (32, 16)
    picture = Image.open(io.BytesIO(sliders.picture.value))
    assert picture.format == "PNG" and picture.size == (32, 16)
    assert "application/vnd.jupyter.widget-view+json" in sliders._repr_mimebundle_()


def test_all_sliders_at_zero_show_the_plain_reconstruction():
    """Slider value 0 means no edit: the right half is decode(z_mean) of the chosen face."""
    encode, decode = _linear_model()
    faces = _faces()
    sliders = LatentSliders(faces, encode, decode, {"a": np.eye(LATENT_DIM)[1]}, size=SIZE)
    sliders.face.value = 2
    np.testing.assert_allclose(sliders.latent(), encode(faces[2:3])[0])
    right = np.asarray(sliders.update())[:, SIZE:]
    expected = np.round(decode(encode(faces[2:3]))[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(right, expected)


def test_slider_values_are_offsets_along_unit_directions_and_add_up():
    """Moving sliders a and b gives z + a * v_a + b * v_b (offsets, not positions)."""
    encode, decode = _linear_model()
    faces = _faces()
    v_a = np.eye(LATENT_DIM)[0]
    v_b = np.array([0.6, 0.8, 0.0, 0.0])
    sliders = LatentSliders(faces, encode, decode, {"a": v_a, "b": v_b}, limits={"a": 2, "b": 3})
    start = sliders.latent()
    sliders.sliders["a"].value = 1.5
    sliders.sliders["b"].value = -2.0
    np.testing.assert_allclose(sliders.latent(), start + 1.5 * v_a - 2.0 * v_b)
    assert sliders.sliders["a"].min == -2 and sliders.sliders["b"].max == 3


def test_a_slider_change_updates_the_picture():
    """The callback is wired: changing a slider value replaces the shown PNG."""
    encode, decode = _linear_model()
    sliders = LatentSliders(_faces(), encode, decode, {"a": np.eye(LATENT_DIM)[0]}, limits=50.0)
    before = sliders.picture.value
    sliders.sliders["a"].value = 40.0
    assert sliders.picture.value != before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"directions": {"a": np.array([2.0, 0, 0, 0])}}, "unit-length"),
        ({"directions": {}}, "at least one direction"),
        ({"limits": {"other": 1.0}}, "a limit for every direction"),
        ({"limits": 0.0}, "every limit > 0"),
        ({"images": np.zeros((2, SIZE, SIZE, 3), np.uint8)}, "divide by 255"),
        ({"images": np.zeros((SIZE, SIZE, 3), np.float32)}, r"\(n, S, S, 3\)"),
    ],
)
def test_bad_arguments_raise_with_what_was_expected(kwargs, message):
    """Wrong directions, limits or images are refused with a message saying what was expected."""
    encode, decode = _linear_model()
    arguments = {
        "images": _faces(),
        "encode": encode,
        "decode": decode,
        "directions": {"a": np.eye(LATENT_DIM)[0]},
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        LatentSliders(**arguments)

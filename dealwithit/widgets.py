"""Interactive latent sliders, as in Goh's "Decoding the Thought Vector".

A face picker and one slider per latent direction; moving any of them decodes
the chosen face moved along every direction at once and shows it live next to
the input. Built from ipywidgets and two callables, so it runs headless too:
building it and calling ``update`` needs no browser (papermill and the tests do
exactly that). Reference: http://gabgoh.github.io/ThoughtVectors/
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import ipywidgets
import numpy as np
from PIL import Image

from dealwithit.edit import Decode, Encode, apply_direction, check_images, to_pil
from dealwithit.vectors import as_direction


class LatentSliders:
    """A face picker, one slider per direction, and the decoded face, updating live.

    The shown latent code is ``z = z_mean(face) + sum_k alpha_k * direction_k``;
    each slider value ``alpha_k`` is an OFFSET in latent units along a unit
    direction, never an absolute position, so every slider at 0 shows the
    plain reconstruction. Directions need not be orthogonal: two correlated
    sliders move partly the same way.

    Display the object itself (or ``.widget``) in a notebook.

    Args:
        images: ``(n, S, S, 3)`` faces to pick from, floats in [0, 1]. They
            are encoded once, here.
        encode: ``images -> z_mean (n, latent_dim)``, e.g. ``model.encoder_fn(vae)``.
        decode: ``z -> images (n, S, S, 3)`` in [0, 1], e.g. ``model.decoder_fn(vae)``.
        directions: ``{name: (latent_dim,) unit vector}``, one slider each, in order.
        limits: Each slider runs over ``[-limit, limit]``: one number for all,
            or ``{name: limit}`` for every name of ``directions``.
        size: Side of each shown face in pixels (nearest-neighbour upscaling,
            honest about the model's resolution).
        steps: Slider positions per side of zero.

    Attributes:
        face: The face picker (``ipywidgets.IntSlider`` over ``range(n)``).
        sliders: ``{name: ipywidgets.FloatSlider}``.
        picture: The ``ipywidgets.Image`` showing input | edit.
        widget: The whole box to display.
        z: ``(n, latent_dim)`` the faces' latent codes.
    """

    def __init__(
        self,
        images: Any,
        encode: Encode,
        decode: Decode,
        directions: Mapping[str, Any],
        limits: float | Mapping[str, float] = 3.0,
        size: int = 192,
        steps: int = 20,
    ):
        images = check_images(images)
        if not directions:
            raise ValueError("Expected at least one direction. Received: an empty mapping.")
        if isinstance(limits, Mapping):
            missing = [name for name in directions if name not in limits]
            if missing:
                raise ValueError(
                    f"Expected a limit for every direction. Received none for: {missing}"
                )
            limits = {name: float(limits[name]) for name in directions}
        else:
            limits = {name: float(limits) for name in directions}
        bad = {name: value for name, value in limits.items() if not value > 0}
        if bad:
            raise ValueError(f"Expected every limit > 0. Received: {bad}")
        if size < 1 or steps < 1:
            raise ValueError(
                f"Expected size >= 1 and steps >= 1. Received: size={size}, steps={steps}"
            )

        self.images = images
        self.z = np.asarray(encode(images), dtype=np.float64)
        if self.z.ndim != 2 or self.z.shape[0] != images.shape[0]:
            raise ValueError(
                f"Expected encode to return ({images.shape[0]}, latent_dim). "
                f"Received: shape={self.z.shape}"
            )
        self.decode = decode
        self.directions = {
            name: as_direction(direction, self.z.shape[1]) for name, direction in directions.items()
        }
        self.size = int(size)

        style = {"description_width": "140px"}
        layout = ipywidgets.Layout(width="420px")
        self.face = ipywidgets.IntSlider(
            value=0,
            min=0,
            max=images.shape[0] - 1,
            description="face",
            continuous_update=False,
            style=style,
            layout=layout,
        )
        self.sliders = {
            name: ipywidgets.FloatSlider(
                value=0.0,
                min=-limit,
                max=limit,
                step=limit / steps,
                description=f"{name} α",
                readout_format="+.2f",
                continuous_update=True,
                style=style,
                layout=layout,
            )
            for name, limit in limits.items()
        }
        self.picture = ipywidgets.Image(format="png")
        caption = ipywidgets.HTML("input | edit (α: offsets along unit directions, latent units)")
        self.widget = ipywidgets.VBox([self.face, *self.sliders.values(), caption, self.picture])
        for control in (self.face, *self.sliders.values()):
            control.observe(self.update, names="value")
        self.update()

    def latent(self) -> np.ndarray:
        """The current latent code ``(latent_dim,)``: the chosen face moved by every slider."""
        z = self.z[self.face.value]
        for name, slider in self.sliders.items():
            z = apply_direction(z, self.directions[name], slider.value)
        return z

    def update(self, change: Any = None) -> Image.Image:
        """Decodes the current code and shows input | edit; the widgets' callback.

        Args:
            change: The ipywidgets change event (unused; any value works).

        Returns:
            The shown RGB image, ``2 * size`` by ``size`` pixels.
        """
        edited = np.asarray(self.decode(self.latent()[None]))[0]
        pair = np.concatenate([np.clip(self.images[self.face.value], 0, 1), edited], axis=1)
        shown = to_pil(pair).resize((2 * self.size, self.size), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        shown.save(buffer, format="PNG")
        self.picture.value = buffer.getvalue()
        return shown

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

"""Layers shared by the VAE and the attribute classifiers.

``Sampling`` is the reparameterisation trick with its own seed generator; the
conv blocks are plain Keras layers so every model saves with ``safe_mode=True``.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="dealwithit")
class Sampling(layers.Layer):
    """Draws ``z = z_mean + exp(z_log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    The reparameterisation trick (Kingma & Welling, arXiv 1312.6114) keeps the
    sample differentiable in ``z_mean`` and ``z_log_var``.

    Args:
        seed: Integer seed of the layer's ``keras.random.SeedGenerator``, so a
            seeded model draws the same noise on every run.
        **kwargs: Base layer keyword arguments, such as ``name``.

    Call arguments:
        inputs: A list ``[z_mean, z_log_var]``, each of shape ``(batch, latent_dim)``.

    Returns:
        ``z`` of shape ``(batch, latent_dim)``.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"Expected seed to be an int or None. Received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs):
        z_mean, z_log_var = inputs
        # Same dtype as the mean, so the layer also runs under mixed_bfloat16.
        epsilon = keras.random.normal(
            keras.ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator
        )
        return z_mean + keras.ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        base_config = super().get_config()
        config = {"seed": self.seed}
        return {**base_config, **config}


def down_block(x, filters, *, batch_norm=False, dropout=0.0, name):
    """Halves the resolution: 4x4 strided conv, optional BatchNorm, LeakyReLU, optional dropout.

    Args:
        x: Tensor of shape ``(batch, h, w, c)``.
        filters: Output channels.
        batch_norm: Whether to normalise; off by default (it destabilised the seed's early training).
        dropout: Dropout rate after the activation; 0 disables it.
        name: Prefix of the block's layer names; the activation is called ``name``.

    Returns:
        Tensor of shape ``(batch, h / 2, w / 2, filters)``.
    """
    x = layers.Conv2D(filters, 4, strides=2, padding="same", name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.LeakyReLU(0.2, name=name)(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def up_block(x, filters, *, batch_norm=False, dropout=0.0, name):
    """Doubles the resolution with a 4x4 transposed conv; mirrors ``down_block``.

    Args:
        x: Tensor of shape ``(batch, h, w, c)``.
        filters: Output channels.
        batch_norm: Whether to normalise.
        dropout: Dropout rate after the activation; 0 disables it.
        name: Prefix of the block's layer names.

    Returns:
        Tensor of shape ``(batch, 2h, 2w, filters)``.
    """
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"{name}_deconv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.LeakyReLU(0.2, name=name)(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x

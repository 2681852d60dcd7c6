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


def down_block(x, filters, *, batch_norm=False, dropout=0.0, kernel_size=4, name):
    """Halves the resolution: strided conv, optional BatchNorm, LeakyReLU, optional dropout.

    Args:
        x: Tensor of shape ``(batch, h, w, c)``.
        filters: Output channels.
        batch_norm: Whether to normalise; off by default (it destabilised the seed's early training).
        kernel_size: 4 by default; 3 for a stage whose weights come from the attribute
            classifier (transfer learning), whose stages are 3x3.
        dropout: Dropout rate after the activation; 0 disables it.
        name: Prefix of the block's layer names; the activation is called ``name``.

    Returns:
        Tensor of shape ``(batch, h / 2, w / 2, filters)``.
    """
    x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", name=f"{name}_conv")(x)
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


def residual_block(x, filters, *, batch_norm=False, name):
    """Two 3x3 convs added back to their input: ``x + conv(act(conv(x)))``, then LeakyReLU.

    The skip path lets gradients reach the first stages of a deeper encoder
    (He et al., arXiv 1512.03385); the shape does not change.

    Args:
        x: Tensor of shape ``(batch, h, w, filters)``.
        filters: Channels of ``x`` and of the output.
        batch_norm: Whether to normalise after each conv.
        name: Prefix of the block's layer names; the output activation is called ``name``.

    Returns:
        Tensor of shape ``(batch, h, w, filters)``.
    """
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv_a")(x)
    if batch_norm:
        y = layers.BatchNormalization(name=f"{name}_bn_a")(y)
    y = layers.LeakyReLU(0.2, name=f"{name}_act_a")(y)
    # Zero-initialised last conv: each block starts as the identity, so a deep
    # stack trains like the shallow one it grows from.
    y = layers.Conv2D(
        filters, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv_b"
    )(y)
    if batch_norm:
        y = layers.BatchNormalization(name=f"{name}_bn_b")(y)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.LeakyReLU(0.2, name=name)(x)


def precision_weighted(mean_a, log_var_a, mean_b, log_var_b):
    """Combines two Gaussian estimates of the same variable by precision weighting.

    The ladder VAE's posterior (Sønderby et al., arXiv 1602.02282, eq. 18-19)
    merges the bottom-up estimate from the image with the top-down prior from
    the layer above; the more certain one weighs more.

    Formula:
    ```
    var = 1 / (1 / var_a + 1 / var_b)
    mean = (mean_a / var_a + mean_b / var_b) * var
    ```

    Args:
        mean_a, log_var_a: First estimate, each ``(batch, d)``.
        mean_b, log_var_b: Second estimate, each ``(batch, d)``.

    Returns:
        ``(mean, log_var)``, each ``(batch, d)``.
    """
    log_var = -keras.ops.logaddexp(-log_var_a, -log_var_b)
    # exp(log_var - log_var_a) is the weight of a, in (0, 1): no overflow.
    mean = mean_a * keras.ops.exp(log_var - log_var_a) + mean_b * keras.ops.exp(log_var - log_var_b)
    return mean, log_var

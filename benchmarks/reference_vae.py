"""The baseline for training speed: a VAE written the way keras-io writes one.

keras-io's ``examples/generative/vae.py`` subclasses ``keras.Model`` and writes
its own ``train_step`` with a ``tf.GradientTape``, a Bernoulli (binary
cross-entropy) reconstruction summed over pixels, and three loss trackers. This
copy keeps that training step and takes the encoder and decoder from
``dealwithit.model`` so both VAEs run the same conv stacks: the ratio of their
speeds is the cost of our own training step (``compute_loss``, five trackers,
learned pixel noise), not of a different network. It is a yardstick, not a
pattern: the package overrides ``compute_loss`` so the backend can change.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, as keras-io's example does."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class ReferenceVAE(keras.Model):
    """keras-io's VAE training step around ``[z_mean, z_log_var]`` encoder and a decoder.

    Args:
        encoder: Images ``(batch, S, S, 3)`` -> ``[z_mean, z_log_var]``.
        decoder: ``z`` -> images ``(batch, S, S, 3)`` in [0, 1].
    """

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.sampling = Sampling()
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
        ]

    def call(self, data):
        z_mean, z_log_var = self.encoder(data)
        return self.decoder(self.sampling([z_mean, z_log_var]))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(data)
            z = self.sampling([z_mean, z_log_var])
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(
                    keras.losses.binary_crossentropy(data, reconstruction),
                    axis=(1, 2),
                )
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }

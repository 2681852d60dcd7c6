"""The VAE's loss terms as pure functions, and the KL warm-up schedule.

Every term is summed over pixels, features or latent dimensions per example and
returned with shape ``(batch,)``; the model averages over the batch. Averaging
over dimensions instead would shrink the likelihood against the KL term and is
the classic cause of posterior collapse.
"""

from __future__ import annotations

import math

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def kl_divergence(z_mean, z_log_var):
    """KL divergence of ``N(z_mean, exp(z_log_var))`` from ``N(0, I)``, per example.

    Formula:
    ```
    kl = -0.5 * sum(1 + z_log_var - z_mean**2 - exp(z_log_var), axis=-1)
    ```

    Args:
        z_mean: Tensor of shape ``(batch, latent_dim)``.
        z_log_var: Tensor of shape ``(batch, latent_dim)``.

    Returns:
        Tensor of shape ``(batch,)`` in nats.
    """
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def gaussian_kl(mean_q, log_var_q, mean_p, log_var_p):
    """KL divergence of ``N(mean_q, exp(log_var_q))`` from ``N(mean_p, exp(log_var_p))``, per example.

    The ladder VAE's lower layers have a learned prior ``p(z_i | z_{i+1})``
    instead of ``N(0, I)``; with ``mean_p = 0`` and ``log_var_p = 0`` this is
    ``kl_divergence``.

    Formula:
    ```
    kl = 0.5 * sum(log_var_p - log_var_q
                   + (exp(log_var_q) + (mean_q - mean_p)**2) / exp(log_var_p) - 1, axis=-1)
    ```

    Args:
        mean_q, log_var_q: The posterior, each ``(batch, d)``.
        mean_p, log_var_p: The prior, each ``(batch, d)``.

    Returns:
        Tensor of shape ``(batch,)`` in nats.
    """
    ratio = (ops.exp(log_var_q) + ops.square(mean_q - mean_p)) * ops.exp(-log_var_p)
    return 0.5 * ops.sum(log_var_p - log_var_q + ratio - 1.0, axis=-1)


def gaussian_nll(x, mean, log_sigma):
    """Negative log-likelihood of ``x`` under ``N(mean, exp(log_sigma)**2)``, per example.

    Formula:
    ```
    nll = sum(0.5 * ((x - mean) / sigma)**2 + log_sigma + 0.5 * log(2 pi))
    ```

    Args:
        x: Tensor of shape ``(batch, ...)``.
        mean: Tensor of the same shape as ``x``.
        log_sigma: Tensor broadcastable to ``x`` (e.g. one value per pixel).

    Returns:
        Tensor of shape ``(batch,)`` in nats, summed over all non-batch axes.
    """
    log_sigma = ops.broadcast_to(log_sigma, ops.shape(x))
    nll = 0.5 * ops.square((x - mean) * ops.exp(-log_sigma)) + log_sigma + 0.5 * LOG_2PI
    return ops.sum(ops.reshape(nll, (ops.shape(x)[0], -1)), axis=-1)


def bernoulli_nll(x, mean, epsilon=1e-6):
    """Binary cross-entropy of ``x`` in [0, 1] against probabilities ``mean``, per example.

    Formula:
    ```
    nll = -sum(x * log(mean) + (1 - x) * log(1 - mean))
    ```

    Args:
        x: Tensor of shape ``(batch, ...)`` with values in [0, 1].
        mean: Tensor of the same shape, probabilities in (0, 1).
        epsilon: Clip to keep the logarithms finite.

    Returns:
        Tensor of shape ``(batch,)`` in nats.
    """
    mean = ops.clip(mean, epsilon, 1.0 - epsilon)
    nll = -(x * ops.log(mean) + (1.0 - x) * ops.log(1.0 - mean))
    return ops.sum(ops.reshape(nll, (ops.shape(x)[0], -1)), axis=-1)


def discriminative_loss(features, reconstructed_features, scales, weights):
    """Distance between a frozen classifier's hidden activations for x and for x̂, per example.

    Discriminative regularization (Lamb, Dumoulin & Courville, arXiv 1602.03220):
    the reconstruction must also match the input in the hidden layers of a
    classifier trained on face attributes, which cares about glasses, mouths
    and hair rather than about exact pixels. Each layer is a Gaussian
    log-likelihood with a fixed per-channel standard deviation (the channel's
    spread over the data), i.e. a squared distance of normalised activations.
    The paper learns those deviations; fixed ones keep the term at exactly 0
    for a perfect reconstruction and stop the model from buying it down by
    inflating sigma.

    Formula:
    ```
    loss = sum_l weight_l * sum_units 0.5 * ((f_l(x) - f_l(x_hat)) / scale_l)**2
    ```

    Args:
        features: List of tensors ``f_l(x)``, each ``(batch, h_l, w_l, c_l)``.
        reconstructed_features: List of ``f_l(x_hat)`` of the same shapes.
        scales: List of per-channel deviations, each ``(c_l,)``, positive.
        weights: One per layer: a float, or a ``(c_l,)`` vector weighting each channel.

    Returns:
        Tensor of shape ``(batch,)``.

    Raises:
        ValueError: if the four lists differ in length.
    """
    if not len(features) == len(reconstructed_features) == len(scales) == len(weights):
        raise ValueError(
            "Expected one scale and one weight per feature layer. Received: "
            f"{len(features)} features, {len(reconstructed_features)} reconstructed, "
            f"{len(scales)} scales, {len(weights)} weights."
        )
    total = 0.0
    for f, f_hat, scale, weight in zip(features, reconstructed_features, scales, weights):
        distance = 0.5 * ops.square((f - f_hat) / scale)
        weighted = weight * distance  # a vector weight broadcasts over the channel axis
        total = total + ops.sum(ops.reshape(weighted, (ops.shape(f)[0], -1)), axis=-1)
    return total


def kl_warmup(step, warmup_steps, start=0.0):
    """KL weight β after ``step`` optimizer steps: a linear ramp from ``start`` to 1.

    Warm-up (Sønderby et al., arXiv 1602.02282) lets the conv layers learn to
    reconstruct before the KL term pulls the posterior toward the prior; the
    ramp moves every batch, since a once-per-epoch jump spikes the loss.

    Formula:
    ```
    beta = start + (1 - start) * min(step / warmup_steps, 1)
    ```

    Args:
        step: Non-negative int (optimizer iterations so far).
        warmup_steps: Steps of the ramp; 0 means β = 1 from the start.
        start: β at step 0, in [0, 1].

    Returns:
        A Python float in [start, 1].
    """
    if warmup_steps < 0 or not 0.0 <= start <= 1.0:
        raise ValueError(
            "Expected warmup_steps >= 0 and 0 <= start <= 1. "
            f"Received: warmup_steps={warmup_steps}, start={start}"
        )
    if warmup_steps == 0:
        return 1.0
    return float(start + (1.0 - start) * min(max(step, 0) / warmup_steps, 1.0))

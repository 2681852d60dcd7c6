"""The VAE, the attribute classifier, and saving/loading both.

``VAE`` owns its loss (``compute_loss`` in ``keras.ops``, so the backend can
change); the frozen classifier used for discriminative regularization is passed
in, never built inside it. Both save as ``.keras`` files that load with
``safe_mode=True`` next to the ``config.json`` that rebuilds them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from dealwithit import atomic, losses
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.cpu import cpu_flags
from dealwithit.data import CELEBA_ATTRIBUTES
from dealwithit.layers import Sampling, down_block, precision_weighted, residual_block, up_block

# The pixel noise scale may not fall below exp(-4.5) ≈ 0.011 (about 3 grey levels):
# a vanishing sigma makes the likelihood, and its gradients, explode.
MIN_LOG_SIGMA = -4.5
VAE_FILE = "vae.keras"
CLASSIFIER_FILE = "classifier.keras"
CONFIG_FILE = "config.json"


# Keras dtype policy of each VAEConfig.precision: the mixed ones compute in 16 bits
# and keep variables in float32. bfloat16 suits CPUs with avx512_bf16/AMX (and
# TPUs); float16 suits GPUs, where compile() adds the loss scaling it needs.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def fastest_precision() -> str:
    """``"bfloat16"`` on a CPU with bfloat16 dot products (avx512_bf16 or AMX), else ``"float32"``.

    What ``--precision auto`` picks. bfloat16 trained the DR-VAE's epochs 1.22-1.38x faster on
    an AMD EPYC with avx512_bf16 and 1.79x on an Intel Xeon with AMX; its quality against
    float32, over seeds, is RESULTS.md section 7. GPUs were not measured here: there, pass
    ``"float16"`` (Keras' documented ``mixed_float16``).
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return "bfloat16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"


@contextlib.contextmanager
def precision_policy(precision: str):
    """Builds layers under the dtype policy of ``precision`` (``POLICIES``), then restores it.

    Layers keep the policy they were built with, and save it: a model trained
    in bfloat16 also loads and runs in bfloat16.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


class WeightsError(Exception):
    """Weights that are missing, damaged, or built for another configuration."""


def _encoder_stages(images, config: VAEConfig, flatten: bool = True):
    """The bottom-up conv stages shared by every architecture; returns the (flattened) features."""
    x = images
    for i, filters in enumerate(config.filters, start=1):
        x = down_block(
            x,
            filters,
            batch_norm=config.batch_norm,
            dropout=config.dropout,
            # Transferred stages take the classifier's 3x3 kernels as they are.
            kernel_size=3 if i <= config.transfer_stages else 4,
            name=f"encoder_{i}",
        )
        if config.architecture == "resnet":
            x = residual_block(x, filters, batch_norm=config.batch_norm, name=f"encoder_{i}_res")
    return layers.Flatten(name="flatten")(x) if flatten else x


def _gaussian_head(x, dim, name):
    """Dense mean and log variance; the log variance starts at 0 (unit variance)."""
    # The posterior heads stay float32 under mixed precision: the KL and the
    # sampling noise need its range, and they are a tiny share of the FLOPs.
    mean = layers.Dense(dim, dtype="float32", name=f"{name}mean")(x)
    log_var = layers.Dense(
        dim,
        kernel_initializer="zeros",
        bias_initializer="zeros",
        dtype="float32",
        name=f"{name}log_var",
    )(x)
    return mean, log_var


def build_encoder(config: VAEConfig) -> keras.Model:
    """Conv stack (residual blocks for ``"resnet"``) → dense → ``z_mean``, ``z_log_var``.

    For ``"spatial"`` the heads are 1x1 convs on the last stage's grid, flattened.

    For ``"ladder"`` use ``build_ladder_encoder``.

    Args:
        config: Image size, filters, latent size and regularisation switches.

    Returns:
        A functional model from ``(batch, S, S, 3)`` images in [0, 1] to
        ``[z_mean, z_log_var]``, each ``(batch, latent_dim)``.
    """
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    if config.architecture == "spatial":
        x = _encoder_stages(images, config, flatten=False)
        _, channels = config.spatial_grid()
        heads = []
        for part, init in (("mean", "glorot_uniform"), ("log_var", "zeros")):
            head = layers.Conv2D(
                channels, 1, kernel_initializer=init, dtype="float32", name=f"z_{part}_grid"
            )(x)
            heads.append(layers.Flatten(dtype="float32", name=f"z_{part}")(head))
        return keras.Model(images, heads, name="encoder")
    x = _encoder_stages(images, config)
    # Start with unit posterior variance (log var 0) so early samples stay near the prior's scale.
    z_mean, z_log_var = _gaussian_head(x, config.latent_dim, "z_")
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def ladder_dims(config: VAEConfig) -> tuple[int, ...]:
    """Latent sizes of the ladder's layers, bottom (layer 1) to top (``latent_dim``)."""
    return (*config.ladder_dims, config.latent_dim)


def build_ladder_encoder(config: VAEConfig) -> keras.Model:
    """The ladder VAE's bottom-up deterministic path (Sønderby et al., arXiv 1602.02282).

    The conv stages feed a chain of dense layers ``d_1 … d_L``; each gives the
    bottom-up estimate ``(mean_hat_i, log_var_hat_i)`` of latent layer ``i``.
    The top estimate is the top posterior; the lower ones are combined with
    the top-down prior in ``LadderVAE``.

    Args:
        config: A ``"ladder"`` config.

    Returns:
        A functional model from ``(batch, S, S, 3)`` to the list
        ``[mean_hat_1, log_var_hat_1, …, mean_hat_L, log_var_hat_L]``,
        layer ``i`` being ``(batch, ladder_dims(config)[i - 1])``.
    """
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    x = _encoder_stages(images, config)
    outputs = []
    for i, dim in enumerate(ladder_dims(config), start=1):
        x = layers.Dense(2 * dim, name=f"bottom_up_{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"bottom_up_{i}_act")(x)
        outputs.extend(_gaussian_head(x, dim, f"bottom_up_{i}_"))
    return keras.Model(images, outputs, name="encoder")


def build_ladder_prior(config: VAEConfig, layer: int) -> keras.Model:
    """The top-down prior ``p(z_layer | z_layer+1)`` of the ladder's generative chain.

    Args:
        config: A ``"ladder"`` config.
        layer: 1-based index of the layer whose prior this is (below the top).

    Returns:
        A functional model from ``(batch, dim_{layer+1})`` to ``[mean, log_var]``,
        each ``(batch, dim_layer)``.
    """
    dims = ladder_dims(config)
    z = keras.Input((dims[layer],), name=f"z_{layer + 1}")
    x = layers.Dense(2 * dims[layer - 1], name=f"top_down_{layer}")(z)
    x = layers.LeakyReLU(0.2, name=f"top_down_{layer}_act")(x)
    mean, log_var = _gaussian_head(x, dims[layer - 1], f"prior_{layer}_")
    return keras.Model(z, [mean, log_var], name=f"prior_{layer}")


def build_decoder(config: VAEConfig) -> keras.Model:
    """Dense (a 3x3 conv on the grid for ``"spatial"``) → transposed-conv stack → sigmoid image.

    Args:
        config: Same config as the encoder.

    Returns:
        A functional model from ``(batch, d)`` to ``(batch, S, S, 3)`` in [0, 1];
        ``d`` is ``latent_dim``, or the bottom layer's size for the ladder.
    """
    base = config.image_size // 2 ** len(config.filters)
    dim = ladder_dims(config)[0] if config.architecture == "ladder" else config.latent_dim
    z = keras.Input((dim,), name="z")
    if config.architecture == "spatial":
        x = layers.Reshape((base, base, config.spatial_grid()[1]), name="unflatten")(z)
        x = layers.Conv2D(config.filters[-1], 3, padding="same", name="project")(x)
        x = layers.LeakyReLU(0.2, name="project_act")(x)
    else:
        x = layers.Dense(base * base * config.filters[-1], name="project")(z)
        x = layers.LeakyReLU(0.2, name="project_act")(x)
        x = layers.Reshape((base, base, config.filters[-1]), name="unflatten")(x)
    if config.architecture == "resnet":
        x = residual_block(
            x, config.filters[-1], batch_norm=config.batch_norm, name="decoder_0_res"
        )
    for i, filters in enumerate(reversed(config.filters[:-1]), start=1):
        x = up_block(
            x, filters, batch_norm=config.batch_norm, dropout=config.dropout, name=f"decoder_{i}"
        )
        if config.architecture == "resnet":
            x = residual_block(x, filters, batch_norm=config.batch_norm, name=f"decoder_{i}_res")
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="to_rgb")(x)
    # float32 output: the Gaussian likelihood's sigma goes down to 0.011, finer than
    # bfloat16's steps near 1 (0.004).
    reconstruction = layers.Activation("sigmoid", dtype="float32", name="reconstruction")(x)
    return keras.Model(z, reconstruction, name="decoder")


def attribute_names(config: AttributeClassifierConfig) -> tuple[str, ...]:
    """The attributes a classifier built from ``config`` predicts, in output order."""
    return tuple(config.attribute_names) or tuple(CELEBA_ATTRIBUTES)


def augmentation(config: AttributeClassifierConfig) -> keras.Sequential:
    """Random flips, shifts, zooms and colour jitter; identity outside training.

    Keras' random preprocessing layers only act when called with
    ``training=True``, so the saved classifier scores faces unchanged. The
    ranges are small: the faces are aligned, and a shift of 6 % or a zoom of
    8 % keeps the eyes inside the eye band.

    Args:
        config: Its ``seed`` seeds every layer.

    Returns:
        A model from ``(batch, S, S, 3)`` in [0, 1] to the same shape and range.
    """
    seed = config.seed
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(0.06, 0.06, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom(0.08, fill_mode="reflect", seed=seed + 2),
            layers.RandomColorJitter(
                value_range=(0, 1),
                brightness_factor=0.15,
                contrast_factor=0.2,
                saturation_factor=(0.35, 0.65),  # Keras' scale: 0.5 leaves saturation unchanged
                seed=seed + 3,
            ),
        ],
        name="augmentation",
    )


def build_attribute_classifier(config: AttributeClassifierConfig) -> keras.Model:
    """A CNN giving one logit per attribute (multi-label): CelebA's 40, plus any extra columns.

    Stage ``i`` is a strided conv followed by ``convs_per_stage - 1`` unstrided
    ones; the last activation of the stage is named ``stage_i``: these are the
    hidden layers discriminative regularization compares.

    Args:
        config: Image size, filters, dense units, depth, batch norm, augmentation,
            and ``attribute_names`` (training fills them in from the cache, e.g.
            CelebA's 40 plus the derived ``Sunglasses``).

    Returns:
        A functional model from ``(batch, S, S, 3)`` in [0, 1] to logits
        ``(batch, len(attribute_names(config)))``.
    """
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    x = augmentation(config)(images) if config.augment else images
    for i, filters in enumerate(config.filters, start=1):
        for j in range(config.convs_per_stage):
            last = j == config.convs_per_stage - 1
            suffix = "" if j == 0 else f"_{j + 1}"
            x = layers.Conv2D(
                filters,
                3,
                strides=2 if j == 0 else 1,
                padding="same",
                use_bias=not config.batch_norm,
                name=f"stage_{i}_conv{suffix}",
            )(x)
            if config.batch_norm:
                x = layers.BatchNormalization(name=f"stage_{i}_norm{suffix}")(x)
            x = layers.LeakyReLU(0.2, name=f"stage_{i}" if last else f"stage_{i}_act{suffix}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(0.3, seed=config.seed, name="dropout")(x)
    logits = layers.Dense(len(attribute_names(config)), name="logits")(x)
    return keras.Model(images, logits, name="attribute_classifier")


def build_feature_extractor(
    classifier: keras.Model, num_layers: int, logits: bool = False
) -> keras.Model:
    """The frozen hidden layers ``stage_1 … stage_num_layers`` of an attribute classifier.

    Args:
        classifier: A model from ``build_attribute_classifier``.
        num_layers: How many stages to expose (one discriminative weight each).
        logits: Also expose the attribute logits, last.

    Returns:
        A non-trainable model from images to a list of activations.

    Raises:
        ValueError: if the classifier has fewer stages.
    """
    names = [f"stage_{i}" for i in range(1, num_layers + 1)]
    available = [layer.name for layer in classifier.layers if layer.name.startswith("stage_")]
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(
            f"Expected the classifier to have layers {names}. Missing: {missing}. "
            "Use fewer discriminative_weights or a deeper classifier."
        )
    outputs = [classifier.get_layer(name).output for name in names]
    if logits:
        outputs.append(classifier.outputs[0])
    extractor = keras.Model(classifier.inputs[0], outputs, name="feature_extractor")
    extractor.trainable = False
    return extractor


def _scale_for_replicas(loss):
    """Divides by the replica count under ``tf.distribute``, as Keras' own losses do.

    Gradients are summed over replicas, so each replica's mean must be divided
    by their number for the step to match a single-device step.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss * (1.0 / replicas)
    return loss


@keras.saving.register_keras_serializable(package="dealwithit")
class VAE(keras.Model):
    """A VAE with optional discriminative regularization and a warm-up KL weight.

    The loss per example is the reconstruction negative log-likelihood (sum over
    pixels) + ``kl_weight`` x KL (sum over latent dims) + the discriminative
    term (sum over the classifier's hidden units), averaged over the batch.

    Args:
        encoder: From ``build_encoder``.
        decoder: From ``build_decoder``.
        config: The ``VAEConfig`` that built them (saved with the model).
        feature_extractor: Frozen classifier layers (``build_feature_extractor``),
            required when ``config.discriminative`` is true.
        **kwargs: Base model keyword arguments.

    Call arguments:
        images: ``(batch, S, S, 3)`` floats in [0, 1].

    Returns:
        A dict with ``reconstruction`` ``(batch, S, S, 3)``, ``z_mean``,
        ``z_log_var`` and ``z`` ``(batch, latent_dim)``.
    """

    def __init__(self, encoder, decoder, config, feature_extractor=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = VAEConfig.from_dict(config)
        if config.discriminative and feature_extractor is None:
            raise ValueError(
                "Expected a feature_extractor when config.discriminative is True. "
                "Received: feature_extractor=None. Train the attribute classifier first, "
                "or set discriminative=False."
            )
        self.config = config
        self.encoder = encoder
        self.decoder = decoder
        self.sampling = Sampling(seed=config.seed, dtype="float32", name="sampling")
        self.feature_extractor = feature_extractor if config.discriminative else None
        size = config.image_size
        self.pixel_log_sigma = self.add_weight(
            shape=(size, size, 3),
            initializer=keras.initializers.Constant(-2.0),
            trainable=config.likelihood == "gaussian",
            name="pixel_log_sigma",
        )
        self.kl_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(config.warmup_start),
            trainable=False,
            name="kl_weight",
        )
        self.feature_scales = []
        if self.feature_extractor is not None:
            for i, output in enumerate(self.feature_extractor.outputs, start=1):
                self.feature_scales.append(
                    self.add_weight(
                        shape=(output.shape[-1],),
                        initializer="ones",
                        trainable=False,
                        name=f"feature_scale_{i}",
                    )
                )
        # Per-logit weights when config.logit_weights names some (filled in by build_vae);
        # only then, so models saved without them keep their variables.
        self.logit_unit_weights = None
        if self.feature_extractor is not None and config.logit_weights:
            self.logit_unit_weights = self.add_weight(
                shape=(self.feature_extractor.outputs[-1].shape[-1],),
                initializer=keras.initializers.Constant(config.logit_weight),
                trainable=False,
                name="logit_unit_weights",
            )
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        # One more tracker per latent layer for the ladder (kl_loss_1 is the bottom).
        self.kl_layer_trackers = (
            [keras.metrics.Mean(name=f"kl_loss_{i}") for i in range(1, self._num_layers() + 1)]
            if self._num_layers() > 1
            else []
        )
        self.discriminative_loss_tracker = keras.metrics.Mean(name="discriminative_loss")
        self.kl_weight_tracker = keras.metrics.Mean(name="kl_weight")
        self.mse_tracker = keras.metrics.Mean(name="mse")

    def _num_layers(self):
        return 1

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        z = self.sampling([z_mean, z_log_var])
        reconstruction = self.decoder(z, training=training)
        return {"reconstruction": reconstruction, "z_mean": z_mean, "z_log_var": z_log_var, "z": z}

    def encode(self, images):
        """Returns ``(z_mean, z_log_var)``, each ``(batch, latent_dim)``."""
        return self.encoder(images, training=False)

    def decode(self, z):
        """Returns the decoded images ``(batch, S, S, 3)`` in [0, 1]."""
        return self.decoder(z, training=False)

    def encode_all(self, images):
        """Posterior means of every latent layer, concatenated ``(batch, sum of dims)``.

        One layer here, so this is ``z_mean``; the ladder concatenates its layers.
        """
        return self.encode(images)[0]

    def reconstruct(self, images):
        """Decodes every layer's posterior mean ``(batch, S, S, 3)``; here ``decode(z_mean)``."""
        return self.decode(self.encode(images)[0])

    def kl_terms(self, y_pred):
        """Per-example KL of each latent layer, bottom first: a list of ``(batch,)`` tensors."""
        return [losses.kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])]

    def log_sigma(self):
        """Per-pixel log standard deviation ``(S, S, 3)`` of the Gaussian likelihood."""
        return ops.maximum(self.pixel_log_sigma, MIN_LOG_SIGMA)

    def reconstruction_nll(self, images, reconstruction):
        """Per-example reconstruction negative log-likelihood ``(batch,)``."""
        if self.config.likelihood == "gaussian":
            return losses.gaussian_nll(images, reconstruction, self.log_sigma())
        return losses.bernoulli_nll(images, reconstruction)

    def _features(self, images):
        """The extractor's activations as a list, even when it exposes a single stage."""
        features = self.feature_extractor(images, training=False)
        return list(features) if isinstance(features, (list, tuple)) else [features]

    def discriminative_term(self, images, reconstruction):
        """Per-example discriminative regularization ``(batch,)``; zeros when it is off."""
        if self.feature_extractor is None:
            return ops.zeros((ops.shape(images)[0],))
        # Compared in float32 whatever precision the classifier computes in.
        features = [ops.stop_gradient(ops.cast(f, "float32")) for f in self._features(images)]
        reconstructed = [ops.cast(f, "float32") for f in self._features(reconstruction)]
        return losses.discriminative_loss(
            features,
            reconstructed,
            self.feature_scales,
            self._feature_weights(),
        )

    def _feature_weights(self):
        """One weight per extractor output: the stages', then the logits' when they are compared."""
        weights = list(self.config.discriminative_weights)
        if not self.config.logit_weight:
            return weights
        if self.logit_unit_weights is not None:
            return weights + [ops.convert_to_tensor(self.logit_unit_weights)]
        return weights + [self.config.logit_weight]

    def _set_logit_weights(self, attribute_names) -> None:
        """Fills the per-logit weights from ``config.logit_weights``, given the logits' names.

        Raises:
            ValueError: A named attribute is not among the classifier's logits, or the
                names do not match them in number.
        """
        if self.logit_unit_weights is None:
            return
        names = list(attribute_names)
        if len(names) != self.logit_unit_weights.shape[0]:
            raise ValueError(
                f"Expected one name per classifier logit ({self.logit_unit_weights.shape[0]}). "
                f"Received {len(names)}. Retrain the classifier on this cache."
            )
        unknown = [name for name, _ in self.config.logit_weights if name not in names]
        if unknown:
            raise ValueError(
                f"Expected logit_weights to name the classifier's attributes. Unknown: {unknown}"
            )
        override = dict(self.config.logit_weights)
        values = [override.get(name, self.config.logit_weight) for name in names]
        self.logit_unit_weights.assign(np.asarray(values, dtype="float32"))

    def calibrate_feature_scales(self, images):
        """Sets each channel's scale to its spread over ``images`` (``(n, S, S, 3)`` in [0, 1]).

        Called once before training so the discriminative term compares
        normalised activations, as the paper does.
        """
        if self.feature_extractor is None:
            return
        for scale, feature in zip(self.feature_scales, self._features(images)):
            std = ops.std(feature, axis=tuple(range(len(feature.shape) - 1)))
            scale.assign(ops.maximum(std, 1e-3))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction = y_pred["reconstruction"]
        reconstruction_loss = self.reconstruction_nll(x, reconstruction)
        kl_terms = self.kl_terms(y_pred)
        kl_loss = sum(kl_terms[1:], kl_terms[0])
        discriminative_loss = self.discriminative_term(x, reconstruction)
        kl_weight = ops.convert_to_tensor(self.kl_weight)
        total = ops.mean(reconstruction_loss + kl_weight * kl_loss + discriminative_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        for tracker, term in zip(self.kl_layer_trackers, kl_terms):
            tracker.update_state(term)
        self.discriminative_loss_tracker.update_state(discriminative_loss)
        self.kl_weight_tracker.update_state(kl_weight)
        self.mse_tracker.update_state(ops.mean(ops.square(x - reconstruction)))
        return _scale_for_replicas(total)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "config": self.config.to_dict(),
            "feature_extractor": (
                keras.saving.serialize_keras_object(self.feature_extractor)
                if self.feature_extractor is not None
                else None
            ),
        }
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "feature_extractor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        extractor = config.get("feature_extractor")
        if extractor is not None:
            extractor.trainable = False
        return cls(**config)


@keras.saving.register_keras_serializable(package="dealwithit")
class LadderVAE(VAE):
    """The ladder VAE (LVAE, Sønderby et al., arXiv 1602.02282) with the ``VAE``'s interface.

    Generative chain ``z_L → … → z_1 → x``: the top ``z_L ~ N(0, I)`` is the
    ``latent_dim`` latent that edits move; each lower layer has a learned prior
    ``p(z_i | z_{i+1})``. Inference runs a deterministic bottom-up pass, then
    top-down: the posterior of layer ``i`` is the precision-weighted
    combination of its bottom-up estimate and the top-down prior given the
    sample of the layer above. Each layer pays its own KL (logged as
    ``kl_loss_i``, ``kl_loss`` is their sum), all under the same warm-up weight.

    ``encode`` returns the top posterior and ``decode(z)`` runs the top-down
    chain through each prior's mean, so vectors and edits work unchanged;
    ``reconstruct`` decodes every layer's posterior mean instead.

    Args:
        encoder: From ``build_ladder_encoder``.
        decoder: From ``build_decoder`` (reads the bottom layer).
        config: A ``"ladder"`` ``VAEConfig``.
        feature_extractor: As for ``VAE``.
        priors: ``build_ladder_prior(config, i)`` for ``i = 1 … L - 1``.
        **kwargs: Base model keyword arguments.

    Call arguments:
        images: ``(batch, S, S, 3)`` floats in [0, 1].

    Returns:
        The ``VAE``'s dict (``z_mean``, ``z_log_var``, ``z`` are the top layer's)
        plus, for each layer ``i`` (1 = bottom), ``z_mean_i``, ``z_log_var_i``,
        ``z_i`` and, below the top, ``prior_mean_i``, ``prior_log_var_i``.
    """

    def __init__(self, encoder, decoder, config, feature_extractor=None, priors=None, **kwargs):
        if isinstance(config, dict):
            config = VAEConfig.from_dict(config)
        self.priors = list(priors or [])
        if len(self.priors) != len(config.ladder_dims):
            raise ValueError(
                f"Expected one prior per layer below the top ({len(config.ladder_dims)}). "
                f"Received: {len(self.priors)} priors."
            )
        super().__init__(encoder, decoder, config, feature_extractor, **kwargs)
        # Own seeds per layer, so layers never share noise.
        self.layer_sampling = [
            Sampling(seed=config.seed + 1000 * i, name=f"sampling_{i}")
            for i in range(1, len(self.priors) + 1)
        ]

    def _num_layers(self):
        return len(self.priors) + 1

    def _top_down(self, estimates, z_top, sample, training=False):
        """Runs the chain below the top; returns per-layer ``(mean, log_var, prior mean, prior log var, z)``.

        ``estimates`` are the bottom-up ``(mean_hat, log_var_hat)`` of the lower
        layers, or None to follow the priors alone (decoding from the top).
        """
        layers_below = []
        z = z_top
        for i in reversed(range(len(self.priors))):
            prior_mean, prior_log_var = self.priors[i](z, training=training)
            if estimates is None:
                mean, log_var = prior_mean, prior_log_var
            else:
                mean, log_var = precision_weighted(*estimates[i], prior_mean, prior_log_var)
            z = self.layer_sampling[i]([mean, log_var]) if sample else mean
            layers_below.insert(0, (mean, log_var, prior_mean, prior_log_var, z))
        return layers_below

    def _bottom_up(self, images, training=False):
        outputs = self.encoder(images, training=training)
        return [(outputs[2 * i], outputs[2 * i + 1]) for i in range(self._num_layers())]

    def call(self, images, training=False):
        estimates = self._bottom_up(images, training)
        z_mean, z_log_var = estimates[-1]
        z = self.sampling([z_mean, z_log_var])
        below = self._top_down(estimates[:-1], z, sample=True, training=training)
        result = {"z_mean": z_mean, "z_log_var": z_log_var, "z": z}
        top = self._num_layers()
        result.update({f"z_mean_{top}": z_mean, f"z_log_var_{top}": z_log_var, f"z_{top}": z})
        for i, (mean, log_var, prior_mean, prior_log_var, z_i) in enumerate(below, start=1):
            result.update(
                {
                    f"z_mean_{i}": mean,
                    f"z_log_var_{i}": log_var,
                    f"prior_mean_{i}": prior_mean,
                    f"prior_log_var_{i}": prior_log_var,
                    f"z_{i}": z_i,
                }
            )
        result["reconstruction"] = self.decoder(below[0][4], training=training)
        return result

    def encode(self, images):
        """Returns the top layer's ``(z_mean, z_log_var)``, each ``(batch, latent_dim)``."""
        return self._bottom_up(images)[-1]

    def decode(self, z):
        """Decodes a top latent ``(batch, latent_dim)`` through each prior's mean."""
        below = self._top_down(None, z, sample=False)
        return self.decoder(below[0][4], training=False)

    def encode_all(self, images):
        """Every layer's posterior mean (top-down from the top mean), concatenated top first."""
        estimates = self._bottom_up(images)
        below = self._top_down(estimates[:-1], estimates[-1][0], sample=False)
        return ops.concatenate([estimates[-1][0], *[layer[0] for layer in reversed(below)]], -1)

    def reconstruct(self, images):
        """Decodes every layer's posterior mean ``(batch, S, S, 3)``: what the ladder can keep."""
        estimates = self._bottom_up(images)
        below = self._top_down(estimates[:-1], estimates[-1][0], sample=False)
        return self.decoder(below[0][4], training=False)

    def kl_terms(self, y_pred):
        """Each layer's own KL, bottom first: ``KL(q(z_i|·) || p(z_i|z_{i+1}))``, top vs N(0, I).

        Below the top the KL is analytic given the sampled ``z_{i+1}``: a
        one-sample estimate of the expected KL, as in the LVAE paper.
        """
        terms = [
            losses.gaussian_kl(
                y_pred[f"z_mean_{i}"],
                y_pred[f"z_log_var_{i}"],
                y_pred[f"prior_mean_{i}"],
                y_pred[f"prior_log_var_{i}"],
            )
            for i in range(1, self._num_layers())
        ]
        return [*terms, losses.kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])]

    def get_config(self):
        config = super().get_config()
        config["priors"] = [keras.saving.serialize_keras_object(p) for p in self.priors]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["priors"] = [keras.saving.deserialize_keras_object(p) for p in config["priors"]]
        return super().from_config(config)


def copy_classifier_stages(vae: VAE, classifier: keras.Model, stages: int) -> list[str]:
    """Starts the encoder's first ``stages`` convs from the classifier's trained ones.

    The seed author's "deep ResNet front-end built up by transfer learning":
    the classifier already detects eyes, glasses and hair, so the encoder need
    not relearn them from pixels.

    Args:
        vae: A freshly built VAE whose config has ``transfer_stages >= stages``.
        classifier: A trained attribute classifier with the same filters.
        stages: How many stages to copy.

    Returns:
        The names of the encoder layers that now hold the classifier's weights.

    Raises:
        ValueError: a stage is missing or shaped differently.
    """
    names = []
    for i in range(1, stages + 1):
        target = vae.encoder.get_layer(f"encoder_{i}_conv")
        try:
            source = classifier.get_layer(f"stage_{i}_conv")
        except ValueError as error:
            raise ValueError(
                f"Expected the classifier to have a stage_{i}_conv layer to transfer. "
                "Use fewer transfer_stages or a deeper classifier."
            ) from error
        weights = source.get_weights()
        expected = [tuple(w.shape) for w in target.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise ValueError(
                f"Expected classifier stage {i} shaped like encoder stage {i} {expected}. "
                f"Received: {[w.shape for w in weights]}. Give the VAE and the classifier the same filters."
            )
        target.set_weights(weights)
        names.append(target.name)
    return names


def build_vae(
    config: VAEConfig, classifier: keras.Model | None = None, attribute_names=None
) -> VAE:
    """Builds a fresh VAE; ``classifier`` is required when ``config.discriminative``.

    Args:
        config: The VAE's hyperparameters.
        classifier: A trained attribute classifier; its first
            ``len(config.discriminative_weights)`` stages are frozen and compared.
        attribute_names: The classifier's logits' names, in order; required when
            ``config.logit_weights`` names some, so a per-logit weight cannot land
            on the wrong logit or be skipped.

    Returns:
        An uncompiled ``VAE``.
    """
    keras.utils.set_random_seed(config.seed)
    extractor = None
    if config.discriminative:
        if classifier is None:
            raise ValueError(
                "Expected an attribute classifier for discriminative regularization. "
                "Received: classifier=None. Train one (python -m dealwithit train) or set "
                "discriminative=False."
            )
        input_size = classifier.inputs[0].shape[1]
        if input_size != config.image_size:
            raise ValueError(
                f"Expected a classifier for {config.image_size}x{config.image_size} images. "
                f"Received one for {input_size}x{input_size}."
            )
        extractor = build_feature_extractor(
            classifier, len(config.discriminative_weights), logits=config.logit_weight > 0
        )
    with precision_policy(config.precision):
        if config.architecture == "ladder":
            priors = [build_ladder_prior(config, i) for i in range(1, len(config.ladder_dims) + 1)]
            vae = LadderVAE(
                build_ladder_encoder(config),
                build_decoder(config),
                config,
                extractor,
                priors,
                name="vae",
            )
        else:
            vae = VAE(build_encoder(config), build_decoder(config), config, extractor, name="vae")
    dummy = np.zeros((1, config.image_size, config.image_size, 3), "float32")
    vae(dummy)
    if config.transfer_stages:
        if classifier is None:
            raise ValueError(
                "Expected an attribute classifier to copy encoder stages from "
                f"(transfer_stages={config.transfer_stages}). Received: classifier=None."
            )
        copy_classifier_stages(vae, classifier, config.transfer_stages)
    if vae.logit_unit_weights is not None:
        if attribute_names is None:
            raise ValueError(
                "Expected attribute_names (the classifier's logits, in order) with "
                f"logit_weights={config.logit_weights}. Received: attribute_names=None."
            )
        vae._set_logit_weights(attribute_names)
    return vae


def _save_atomically(model: keras.Model, path: Path) -> None:
    with atomic.atomic_path(path) as temporary:
        model.save(temporary)


def save_vae(vae: VAE, directory: str | Path) -> Path:
    """Writes ``vae.keras`` and ``config.json`` into ``directory`` atomically; returns the model path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / VAE_FILE
    _save_atomically(vae, path)
    vae.config.to_json(directory / CONFIG_FILE)
    return path


def save_classifier(
    classifier: keras.Model, config: AttributeClassifierConfig, directory: str | Path
) -> Path:
    """Writes ``classifier.keras`` and ``config.json`` into ``directory`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLASSIFIER_FILE
    _save_atomically(classifier, path)
    config.to_json(directory / CONFIG_FILE)
    return path


def _load(path: Path, what: str) -> keras.Model:
    if not path.is_file():
        raise WeightsError(
            f"Expected {what} weights at {path}, found nothing. "
            "Train them first with `python -m dealwithit train`, or pass the right --weights folder."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises several types for damaged or unsafe files.
        raise WeightsError(
            f"Could not load {what} weights from {path}: {type(error).__name__}: {error}. "
            "The file may be truncated, from another version, or contain unsafe code "
            "(Lambda layers are refused). Retrain or re-copy it."
        ) from error


def load_vae(directory: str | Path, image_size: int | None = None) -> VAE:
    """Loads a VAE saved by ``save_vae``.

    Args:
        directory: Folder holding ``vae.keras`` and ``config.json``.
        image_size: If given, the size the caller will feed; a mismatch is an error.

    Returns:
        The ``VAE`` (uncompiled, ready for ``encode``/``decode``).

    Raises:
        WeightsError: missing, damaged or unsafe file, or a config that does
            not match the saved weights or the requested image size.
    """
    directory = Path(directory)
    vae = _load(directory / VAE_FILE, "VAE")
    config = read_config(VAEConfig, directory)
    if config != vae.config:
        raise WeightsError(
            f"Expected {directory / CONFIG_FILE} to describe the weights beside it. "
            f"Received a config that differs: {config} vs {vae.config}."
        )
    if image_size is not None and image_size != config.image_size:
        raise WeightsError(
            f"Expected weights for {image_size}x{image_size} images. Received weights built for "
            f"{config.image_size}x{config.image_size} in {directory}. Re-run prepare with "
            f"--image-size {config.image_size} or train for this size."
        )
    return vae


def read_config(config_class, directory: str | Path):
    """The ``config.json`` in ``directory`` as ``config_class``, or a ``WeightsError`` saying why not."""
    path = Path(directory) / CONFIG_FILE
    try:
        return config_class.from_json(path)
    except (OSError, ValueError, TypeError) as error:  # missing, cut short, or from another version
        raise WeightsError(
            f"Could not read {path}: {error}. It must describe the weights beside it; "
            "retrain (python -m dealwithit train) or re-copy the whole folder."
        ) from error


def with_variable_dtype(model: keras.Model, dtype: str) -> keras.Model:
    """A copy of a functional model whose layers hold their weights in ``dtype``.

    ``pack`` stores the shipped classifiers in float16 (half the bytes);
    ``load_classifier`` turns them back into float32 models, so they compute
    exactly as trained models do, from weights rounded to float16.
    """

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights([np.asarray(w).astype(dtype) for w in model.get_weights()])
    return copy


def load_classifier(directory: str | Path) -> tuple[keras.Model, AttributeClassifierConfig]:
    """Loads an attribute classifier and its config saved by ``save_classifier``.

    One stored in float16 (``pack``) comes back as a float32 model.
    """
    directory = Path(directory)
    model = _load(directory / CLASSIFIER_FILE, "attribute classifier")
    if any(w.dtype == "float16" for w in model.weights):
        model = with_variable_dtype(model, "float32")
    return model, read_config(AttributeClassifierConfig, directory)


def predict_batches(function, images, batch_size=256):
    """Applies ``function`` to ``images`` in batches and concatenates NumPy results.

    Args:
        function: Maps a float32 batch to an array or a tuple of arrays.
        images: ``(n, ...)`` uint8 (scaled to [0, 1]) or float array.
        batch_size: Examples per call.

    Returns:
        An array (or tuple of arrays) with leading dimension ``n``.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size])
        if batch.dtype == np.uint8:
            batch = batch.astype("float32") / 255.0
        result = function(batch.astype("float32"))
        if isinstance(result, (tuple, list)):
            outputs.append(tuple(ops.convert_to_numpy(r) for r in result))
        else:
            outputs.append(ops.convert_to_numpy(result))
    if outputs and isinstance(outputs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outputs))
    return np.concatenate(outputs) if outputs else np.zeros((0,))


def encoder_fn(vae: VAE, batch_size: int = 256):
    """``encode(images) -> z_mean`` as a NumPy callable for vectors/edit/evaluate."""

    def encode(images):
        return predict_batches(lambda batch: vae.encode(batch)[0], images, batch_size)

    return encode


def decoder_fn(vae: VAE, batch_size: int = 256):
    """``decode(z) -> images (n, S, S, 3) in [0, 1]`` as a NumPy callable."""

    def decode(z):
        return predict_batches(vae.decode, np.asarray(z, "float32"), batch_size)

    return decode


def classifier_fn(classifier: keras.Model, batch_size: int = 256):
    """``predict(images) -> attribute probabilities (n, 40)`` as a NumPy callable."""

    def predict(images):
        return predict_batches(
            lambda b: ops.sigmoid(classifier(b, training=False)), images, batch_size
        )

    return predict

"""The VAE, the attribute classifier, and saving/loading both.

``VAE`` owns its loss (``compute_loss`` in ``keras.ops``, so the backend can
change); the frozen classifier used for discriminative regularization is passed
in, never built inside it. Both save as ``.keras`` files that load with
``safe_mode=True`` next to the ``config.json`` that rebuilds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from dealwithit import losses
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.data import CELEBA_ATTRIBUTES
from dealwithit.layers import Sampling, down_block, up_block

# The pixel noise scale may not fall below exp(-4.5) ≈ 0.011 (about 3 grey levels):
# a vanishing sigma makes the likelihood, and its gradients, explode.
MIN_LOG_SIGMA = -4.5
VAE_FILE = "vae.keras"
CLASSIFIER_FILE = "classifier.keras"
CONFIG_FILE = "config.json"


class WeightsError(Exception):
    """Weights that are missing, damaged, or built for another configuration."""


def build_encoder(config: VAEConfig) -> keras.Model:
    """Conv stack → dense → ``z_mean``, ``z_log_var``.

    Args:
        config: Image size, filters, latent size and regularisation switches.

    Returns:
        A functional model from ``(batch, S, S, 3)`` images in [0, 1] to
        ``[z_mean, z_log_var]``, each ``(batch, latent_dim)``.
    """
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    x = images
    for i, filters in enumerate(config.filters, start=1):
        x = down_block(
            x, filters, batch_norm=config.batch_norm, dropout=config.dropout, name=f"encoder_{i}"
        )
    x = layers.Flatten(name="flatten")(x)
    z_mean = layers.Dense(config.latent_dim, name="z_mean")(x)
    # Start with a small posterior variance so early samples stay near the mean.
    z_log_var = layers.Dense(
        config.latent_dim, kernel_initializer="zeros", bias_initializer="zeros", name="z_log_var"
    )(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(config: VAEConfig) -> keras.Model:
    """Dense → transposed-conv stack mirroring the encoder → sigmoid image.

    Args:
        config: Same config as the encoder.

    Returns:
        A functional model from ``(batch, latent_dim)`` to ``(batch, S, S, 3)`` in [0, 1].
    """
    base = config.image_size // 2 ** len(config.filters)
    z = keras.Input((config.latent_dim,), name="z")
    x = layers.Dense(base * base * config.filters[-1], name="project")(z)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((base, base, config.filters[-1]), name="unflatten")(x)
    for i, filters in enumerate(reversed(config.filters[:-1]), start=1):
        x = up_block(
            x, filters, batch_norm=config.batch_norm, dropout=config.dropout, name=f"decoder_{i}"
        )
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="to_rgb")(x)
    reconstruction = layers.Activation("sigmoid", name="reconstruction")(x)
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


def build_feature_extractor(classifier: keras.Model, num_layers: int) -> keras.Model:
    """The frozen hidden layers ``stage_1 … stage_num_layers`` of an attribute classifier.

    Args:
        classifier: A model from ``build_attribute_classifier``.
        num_layers: How many stages to expose (one discriminative weight each).

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
        self.sampling = Sampling(seed=config.seed, name="sampling")
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
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.discriminative_loss_tracker = keras.metrics.Mean(name="discriminative_loss")
        self.kl_weight_tracker = keras.metrics.Mean(name="kl_weight")
        self.mse_tracker = keras.metrics.Mean(name="mse")

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

    def log_sigma(self):
        """Per-pixel log standard deviation ``(S, S, 3)`` of the Gaussian likelihood."""
        return ops.maximum(self.pixel_log_sigma, MIN_LOG_SIGMA)

    def reconstruction_nll(self, images, reconstruction):
        """Per-example reconstruction negative log-likelihood ``(batch,)``."""
        if self.config.likelihood == "gaussian":
            return losses.gaussian_nll(images, reconstruction, self.log_sigma())
        return losses.bernoulli_nll(images, reconstruction)

    def discriminative_term(self, images, reconstruction):
        """Per-example discriminative regularization ``(batch,)``; zeros when it is off."""
        if self.feature_extractor is None:
            return ops.zeros((ops.shape(images)[0],))
        features = [ops.stop_gradient(f) for f in self.feature_extractor(images)]
        reconstructed = self.feature_extractor(reconstruction)
        return losses.discriminative_loss(
            features,
            reconstructed,
            self.feature_scales,
            list(self.config.discriminative_weights),
        )

    def calibrate_feature_scales(self, images):
        """Sets each channel's scale to its spread over ``images`` (``(n, S, S, 3)`` in [0, 1]).

        Called once before training so the discriminative term compares
        normalised activations, as the paper does.
        """
        if self.feature_extractor is None:
            return
        for scale, feature in zip(self.feature_scales, self.feature_extractor(images)):
            std = ops.std(feature, axis=(0, 1, 2))
            scale.assign(ops.maximum(std, 1e-3))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction = y_pred["reconstruction"]
        reconstruction_loss = self.reconstruction_nll(x, reconstruction)
        kl_loss = losses.kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])
        discriminative_loss = self.discriminative_term(x, reconstruction)
        kl_weight = ops.convert_to_tensor(self.kl_weight)
        total = ops.mean(reconstruction_loss + kl_weight * kl_loss + discriminative_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
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


def build_vae(config: VAEConfig, classifier: keras.Model | None = None) -> VAE:
    """Builds a fresh VAE; ``classifier`` is required when ``config.discriminative``.

    Args:
        config: The VAE's hyperparameters.
        classifier: A trained attribute classifier; its first
            ``len(config.discriminative_weights)`` stages are frozen and compared.

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
        extractor = build_feature_extractor(classifier, len(config.discriminative_weights))
    vae = VAE(build_encoder(config), build_decoder(config), config, extractor, name="vae")
    dummy = np.zeros((1, config.image_size, config.image_size, 3), "float32")
    vae(dummy)
    return vae


def _save_atomically(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    model.save(tmp)
    os.replace(tmp, path)


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


def load_classifier(directory: str | Path) -> tuple[keras.Model, AttributeClassifierConfig]:
    """Loads an attribute classifier and its config saved by ``save_classifier``."""
    directory = Path(directory)
    model = _load(directory / CLASSIFIER_FILE, "attribute classifier")
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

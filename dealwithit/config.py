"""Hyperparameters: one frozen dataclass per thing we train.

Defaults are the full-scale values. Each config is saved as ``config.json``
beside the weights it produced, and later steps load it instead of retyping.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from dealwithit import atomic

T = TypeVar("T", bound="_JsonConfig")

ARCHITECTURES = ("conv", "resnet", "ladder", "spatial")
# Where in the face an edit direction may act (VectorConfig.region).
REGIONS = ("auto", "face", "eyes")
EYEWEAR_ATTRIBUTES = ("Sunglasses", "Eyeglasses")  # what "auto" confines to the eyes


class _JsonConfig:
    """JSON round-trip shared by every config (tuples survive as tuples)."""

    # Old field name -> new, so configs saved before a rename still load.
    _renamed: dict[str, str] = {}
    # Field -> the value a config saved before the field existed was trained with, where
    # that is no longer the default (else a missing field reads as the default).
    _absent: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {cls._renamed.get(name, name): value for name, value in values.items()}
        values = {**cls._absent, **values}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"Expected fields of {cls.__name__}: {sorted(fields)}. Received unknown: {unknown}."
            )
        cleaned = {}
        for name, value in values.items():
            default = fields[name].default
            cleaned[name] = tuple(value) if isinstance(default, tuple) else value
        return cls(**cleaned)

    def to_json(self, path: str | Path) -> Path:
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def from_json(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Expected a {cls.__name__} JSON file at {path}, found nothing. "
                "Train first (python -m dealwithit train) or pass the right --weights folder."
            )
        return cls.from_dict(json.loads(path.read_text()))

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclasses.dataclass(frozen=True)
class AttributeClassifierConfig(_JsonConfig):
    """A pixel-space CNN on the 40 CelebA attributes.

    Two are trained from the same recipe with different seeds: the frozen
    feature extractor of discriminative regularization, and the independent
    judge that evaluates edits (never used in any loss).
    """

    image_size: int = 64  # pixels per side
    filters: tuple[int, ...] = (32, 64, 128, 256)  # one strided conv stage each
    dense_units: int = 256
    epochs: int = 3  # ~45 s an epoch on 20k faces at 64x64, 2 cores
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    convs_per_stage: int = 1  # stage i: a strided conv, then convs_per_stage - 1 unstrided ones
    batch_norm: bool = False  # after every conv of the stages
    augment: bool = False  # random flips, shifts, zooms and colour jitter, in training only
    cosine_decay: bool = False  # learning rate falls to 0 along a half cosine over the run
    # The outputs, in order; () means CelebA's 40 (configs saved before extra columns).
    # Training fills it in from the cache, e.g. the 40 plus a derived "Sunglasses".
    attribute_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.convs_per_stage < 1:
            raise ValueError(
                f"Expected convs_per_stage >= 1. Received: convs_per_stage={self.convs_per_stage}"
            )


@dataclasses.dataclass(frozen=True)
class JudgeConfig(AttributeClassifierConfig):
    """The independent judge: its own seed, a deeper network, longer training, augmentation.

    It only ever scores edits and is never used in a loss, so it can afford to be
    slower than the DR classifier. Saved as an ``AttributeClassifierConfig``
    (same fields), so ``model.load_classifier`` reads it back.
    """

    # Eyeglasses AUC 0.961 at 6 epochs, 0.971 at 10, 0.988 at 20, 0.990 at 30; ~50 s an epoch idle
    epochs: int = 30
    seed: int = 1
    convs_per_stage: int = 2
    batch_norm: bool = True
    augment: bool = True
    cosine_decay: bool = True


@dataclasses.dataclass(frozen=True)
class VAEConfig(_JsonConfig):
    """The discriminatively regularized VAE (arXiv 1602.03220) and its training."""

    # Configs saved before the logits term existed trained without it.
    _absent = {"logit_weight": 0.0}

    image_size: int = 64  # pixels per side
    # "spatial" (the latent is a grid at the last stage's resolution, 1x1 convs in place of the
    # dense layers), "conv" (one dense vector; the default until issue 11), "resnet" (a residual
    # block per stage) or "ladder" (LVAE). Spatial won issue 11's comparison on real faces:
    # +4.9 dB PSNR in equal minutes, and its eye-row edits stay on the eyes (RESULTS.md, 8c-8d).
    architecture: str = "spatial"
    # the top latent, where edits happen: 8x8 cells x 8 channels for spatial at 64 px (conv: 128;
    # Lamb et al.: 500)
    latent_dim: int = 512
    filters: tuple[int, ...] = (32, 64, 128)  # encoder stages; the decoder mirrors them
    ladder_dims: tuple[int, ...] = (256,)  # ladder only: latent sizes below the top, bottom first
    transfer_stages: int = 0  # encoder stages started from the attribute classifier's; 0 = off
    transfer_frozen_epochs: int = 2  # epochs those stages stay frozen before they train
    likelihood: str = "gaussian"  # "gaussian" (learned per-pixel log sigma) or "bernoulli"
    batch_norm: bool = False  # the seed found it destabilises early training
    dropout: float = 0.0  # same
    discriminative: bool = True  # add the frozen classifier's feature loss
    discriminative_weights: tuple[float, ...] = (1.0, 1.0, 1.0)  # per classifier stage used
    # Weight per attribute logit of the same classifier, compared like a stage (0 = off). The
    # stages' thousands of units outvote its 41 logits, so a worn pair of glasses can blur away;
    # x 100 keeps more of them on real faces (RESULTS.md, "Keeping the eyewear").
    logit_weight: float = 100.0
    # Per-attribute weights that replace logit_weight for those logits, e.g.
    # (("Eyeglasses", 1000.0),): a rare attribute's one logit can be outvoted by the other 40.
    logit_weights: tuple[tuple[str, float], ...] = ()
    warmup_epochs: float = 5.0  # KL weight ramps 0 -> 1 over this many epochs, per batch
    warmup_start: float = 0.0  # KL weight at step 0
    epochs: int = 10  # ~45 s an epoch on 20k faces at 64x64, 2 cores; more keeps improving
    batch_size: int = 64
    learning_rate: float = 1e-3
    cosine_decay: bool = False  # learning rate falls to 0 along a half cosine over the run
    mirror: bool = False  # flip a random half of the training faces left to right
    seed: int = 0
    precision: str = (
        "float32"  # "bfloat16" (CPU) or "float16" (GPU): 16-bit compute, float32 weights
    )
    # and losses

    def __post_init__(self) -> None:
        if self.precision not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                "Expected precision 'float32', 'bfloat16' or 'float16'. "
                f"Received: precision={self.precision!r}"
            )
        if self.likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"Expected likelihood 'gaussian' or 'bernoulli'. Received: likelihood={self.likelihood!r}"
            )
        if self.image_size % (2 ** len(self.filters)) != 0:
            raise ValueError(
                f"Expected image_size divisible by 2**len(filters)={2 ** len(self.filters)}. "
                f"Received: image_size={self.image_size}, filters={self.filters}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Expected 0 <= dropout < 1. Received: dropout={self.dropout}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"Expected architecture one of {ARCHITECTURES}. Received: architecture={self.architecture!r}"
            )
        if not 1 <= len(self.ladder_dims) <= 2 or min(self.ladder_dims) < 1:
            raise ValueError(
                "Expected ladder_dims to give 1 or 2 positive latent sizes below the top "
                f"(2-3 latent layers). Received: ladder_dims={self.ladder_dims}"
            )
        if not 0 <= self.transfer_stages <= len(self.filters) or self.transfer_frozen_epochs < 0:
            raise ValueError(
                f"Expected 0 <= transfer_stages <= len(filters)={len(self.filters)} and "
                f"transfer_frozen_epochs >= 0. Received: transfer_stages={self.transfer_stages}, "
                f"transfer_frozen_epochs={self.transfer_frozen_epochs}"
            )
        if self.logit_weight < 0:
            raise ValueError(
                f"Expected logit_weight >= 0. Received: logit_weight={self.logit_weight}"
            )
        # JSON gives [name, weight] lists; keep (name, weight) tuples so configs compare equal.
        pairs = tuple((str(name), float(weight)) for name, weight in self.logit_weights)
        object.__setattr__(self, "logit_weights", pairs)
        if pairs and (self.logit_weight <= 0 or min(w for _, w in pairs) < 0):
            raise ValueError(
                "Expected logit_weights >= 0 with logit_weight > 0 (the logits are compared only "
                f"then). Received: logit_weight={self.logit_weight}, logit_weights={pairs}"
            )
        if self.latent_dim < 1:
            raise ValueError(f"Expected latent_dim >= 1. Received: latent_dim={self.latent_dim}")
        side, _ = self.spatial_grid()
        if self.architecture == "spatial" and self.latent_dim % side**2:
            raise ValueError(
                f"Expected a spatial latent_dim divisible by its {side}x{side} grid ({side**2}). "
                f"Received: latent_dim={self.latent_dim}, image_size={self.image_size}, "
                f"filters={self.filters}"
            )

    def spatial_grid(self) -> tuple[int, int]:
        """``(side, channels)`` of a ``"spatial"`` latent: the last stage's grid, flattened into z.

        A dense layer squeezes the whole face into ``latent_dim`` numbers at once; a grid keeps
        each number about one region, so the edit direction is still one vector of z, but the
        decoder reads each part of the face from its own cells (fewer parameters, too).
        """
        side = self.image_size // 2 ** len(self.filters)
        return side, self.latent_dim // side**2


@dataclasses.dataclass(frozen=True)
class VectorConfig(_JsonConfig):
    """How the attribute direction in latent space is found and applied."""

    attribute: str = "Sunglasses"  # dark lenses (derived for CelebA, see eyewear.py);
    # "Eyeglasses" is CelebA's own column, clear glasses and sunglasses together
    conditions: tuple[str, ...] = ("Male", "Young")  # projected out of the conditional vector
    # which direction edits use by default: White's balanced mean difference, measured best for
    # Sunglasses (synthetic flip 1.00 vs 0.905 conditional; real 0.70 vs 0.62; RESULTS.md)
    kind: str = "balanced_mean_difference"
    # auto alpha: the latent classifier's score after the edit. 0.999, not 0.99: at 0.99 an edit
    # confined to the eyes flips 0.68 of real faces, at 0.999 0.95 +- 0.02 (conv at 0.99: 0.82;
    # RESULTS.md 8d)
    target_probability: float = 0.999
    inverse_l2: float = 0.001  # scikit-learn's C: SMALLER regularises MORE; this strong
    # penalty keeps the classifier calibrated and its normal on what the decoder renders (RESULTS.md)
    # "eyes" keeps only the numbers of a spatial latent's grid rows over the eye band, so the
    # edit cannot reach the mouth or hair (real faces, same target: change outside the eye band
    # 1.08 -> 0.18 of the reconstruction error, flips 0.906 -> 0.935; RESULTS.md 8d); "auto"
    # does that for EYEWEAR_ATTRIBUTES on a spatial latent, "face" never.
    region: str = "auto"
    seed: int = 0

    # Vectors saved before the rename wrote "l2" (the same C); they load unchanged.
    _renamed = {"l2": "inverse_l2"}

    def __post_init__(self) -> None:
        if not 0.0 < self.target_probability < 1.0:
            raise ValueError(
                "Expected 0 < target_probability < 1. "
                f"Received: target_probability={self.target_probability}"
            )
        if self.inverse_l2 <= 0:
            raise ValueError(
                f"Expected inverse_l2 (scikit-learn's C) > 0. Received: inverse_l2={self.inverse_l2}"
            )
        if self.region not in REGIONS:
            raise ValueError(f"Expected region one of {REGIONS}. Received: region={self.region!r}")

    def region_for(self, architecture: str) -> str:
        """``"face"`` or ``"eyes"``: what ``region`` means for a VAE of this architecture.

        Only a ``"spatial"`` latent has numbers that belong to one part of the face;
        a dense latent's every number reaches every pixel, so there is nothing to confine.
        """
        if self.region == "auto":
            eyewear = architecture == "spatial" and self.attribute in EYEWEAR_ATTRIBUTES
            return "eyes" if eyewear else "face"
        if self.region == "eyes" and architecture != "spatial":
            raise ValueError(
                "Expected a 'spatial' VAE for region='eyes': only its latent is a grid of "
                f"face regions. Received: architecture={architecture!r}; use region 'face'."
            )
        return self.region

"""Hyperparameters: one frozen dataclass per thing we train.

Defaults are the full-scale values. Each config is saved as ``config.json``
beside the weights it produced, and later steps load it instead of retyping.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="_JsonConfig")


class _JsonConfig:
    """JSON round-trip shared by every config (tuples survive as tuples)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

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

    epochs: int = 10  # ~4 min an epoch on 17.8k faces at 64x64, 2 busy cores
    seed: int = 1
    convs_per_stage: int = 2
    batch_norm: bool = True
    augment: bool = True
    cosine_decay: bool = True


@dataclasses.dataclass(frozen=True)
class VAEConfig(_JsonConfig):
    """The discriminatively regularized VAE (arXiv 1602.03220) and its training."""

    image_size: int = 64  # pixels per side
    latent_dim: int = 128  # paper: 500; keras examples: 128
    filters: tuple[int, ...] = (32, 64, 128, 256)  # encoder stages; the decoder mirrors them
    likelihood: str = "gaussian"  # "gaussian" (learned per-pixel log sigma) or "bernoulli"
    batch_norm: bool = False  # the seed found it destabilises early training
    dropout: float = 0.0  # same
    discriminative: bool = True  # add the frozen classifier's feature loss
    discriminative_weights: tuple[float, ...] = (1.0, 1.0, 1.0)  # per classifier stage used
    warmup_epochs: float = 5.0  # KL weight ramps 0 -> 1 over this many epochs, per batch
    warmup_start: float = 0.0  # KL weight at step 0
    epochs: int = 10  # ~45 s an epoch on 20k faces at 64x64, 2 cores; more keeps improving
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
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
        if self.latent_dim < 1:
            raise ValueError(f"Expected latent_dim >= 1. Received: latent_dim={self.latent_dim}")


@dataclasses.dataclass(frozen=True)
class VectorConfig(_JsonConfig):
    """How the attribute direction in latent space is found and applied."""

    attribute: str = "Sunglasses"  # dark lenses (derived for CelebA, see eyewear.py);
    # "Eyeglasses" is CelebA's own column, clear glasses and sunglasses together
    conditions: tuple[str, ...] = ("Male", "Young")  # projected out of the conditional vector
    kind: str = "conditional"  # which direction edits use by default
    target_probability: float = 0.99  # auto alpha: latent classifier's score after the edit
    l2: float = 0.001  # inverse L2 strength C of the logistic regression; strong, so the
    # classifier stays calibrated and its normal follows what the decoder renders (RESULTS.md)
    seed: int = 0

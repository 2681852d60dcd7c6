"""The latent-direction maths: latent classifier, attribute directions, auto alpha.

Finds the "sunglasses thought vector" (Goh 2016, "Decoding the Thought Vector";
Larsen et al. 2016, arXiv 1512.09300) in a VAE's latent space four ways, projects
out confounds as InterFaceGAN does (Shen et al. 2020, arXiv 2005.09635), and
solves for the step that makes a latent classifier sure of the edit. NumPy and
scikit-learn only; the model enters as arrays of ``z_mean``.

Invariants: every direction is a unit vector of shape ``(latent_dim,)`` whose
sign makes the attribute *more* present (adding it raises the latent
classifier's score). An ``alpha`` is an OFFSET along that unit direction in
latent units, ``z' = z + alpha * direction``, never an absolute position.

Typical use::

    classifier = fit_latent_classifier(z, labels)
    directions = compute_directions(z, attributes, CELEBA_ATTRIBUTES, classifier=classifier)
    alphas = alpha_for_probability(z, directions["conditional"], classifier, target=0.99)
    save_vectors("weights/vectors", directions, classifier, {"attribute": "Eyeglasses"})
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, logit
from tqdm.auto import tqdm

from dealwithit import atomic

# The four ways we read a direction off the latent codes, in the order tables show them.
DIRECTION_KINDS = (
    "mean_difference",
    "balanced_mean_difference",
    "classifier_normal",
    "conditional",
    "matched_mean_difference",
)

VECTORS_FORMAT_VERSION = 1

# The file that marks a complete folder of directions.
VECTORS_FILE = "vectors.json"

# Keys of vectors.json that save_vectors owns; metadata may not overwrite them.
_RESERVED_KEYS = ("format_version", "latent_dim", "kinds", "norms", "kind_cosines", "classifier")


class DegenerateDirectionError(ValueError):
    """A direction could not be formed: an empty class, a zero vector, or a flat classifier."""


class VectorsNotFoundError(FileNotFoundError):
    """A saved vectors folder is missing or incomplete."""


class LatentDimMismatchError(ValueError):
    """Saved vectors and the model (or each other) disagree on ``latent_dim``."""


## Inputs


def _as_latents(z: Any, name: str = "z") -> np.ndarray:
    """Returns ``z`` as float64 ``(n, latent_dim)``, or raises with the shape found."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(
            f"Expected {name} of shape (n, latent_dim) with n >= 1. Received: {name}.shape={z.shape}"
        )
    if not np.all(np.isfinite(z)):
        raise ValueError(
            f"Expected finite {name}. Received {int(np.sum(~np.isfinite(z)))} NaN/inf values; "
            "check the encoder's output (a diverged VAE gives NaN z_mean)."
        )
    return z


def as_bool_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Converts CelebA-style labels to booleans.

    Args:
        labels: Array of any shape holding booleans, CelebA's ``-1/+1`` or ``0/1``.
        name: What to call the array in error messages.

    Returns:
        A boolean array of the same shape, True where the attribute is present.

    Raises:
        ValueError: If the values are not one of the three encodings.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels
    values = set(np.unique(labels).tolist())
    if values <= {-1, 1}:
        return labels > 0
    if values <= {0, 1}:
        return labels == 1
    raise ValueError(
        f"Expected {name} as booleans, -1/+1 (CelebA) or 0/1. "
        f"Received values: {sorted(values)[:10]}"
    )


def _check_two_classes(labels: np.ndarray, n: int, what: str) -> None:
    if labels.shape != (n,):
        raise ValueError(
            f"Expected {what} of shape ({n},), one per latent code. Received: shape={labels.shape}"
        )
    positives = int(labels.sum())
    if positives == 0 or positives == n:
        raise DegenerateDirectionError(
            f"Expected both classes in {what}. Received: {positives} positives out of {n}. "
            "Use more faces (Eyeglasses is ~7% positive in CelebA) or another attribute."
        )


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    """Returns ``vector / |vector|``; raises if the vector is (numerically) zero."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-12:
        raise DegenerateDirectionError(
            f"Expected a non-zero, finite {what}. Received: norm={norm}. "
            "The two classes have the same mean (or the data is constant) in latent space."
        )
    return vector / norm


def as_direction(direction: Any, latent_dim: int | None = None) -> np.ndarray:
    """Validates a unit-length direction and returns it as float64 ``(latent_dim,)``.

    Every alpha in this package is an offset in latent units along a unit
    vector, so a non-unit direction would silently rescale every slider.

    Args:
        direction: Array of shape ``(latent_dim,)`` with norm 1 (to 1e-3).
        latent_dim: If given, the required length.

    Returns:
        The direction as a float64 array.

    Raises:
        ValueError: On a wrong shape, a length mismatch or a norm far from 1.
    """
    direction = np.asarray(direction, dtype=np.float64)
    if direction.ndim != 1:
        raise ValueError(
            f"Expected a direction of shape (latent_dim,). Received: shape={direction.shape}"
        )
    if latent_dim is not None and direction.shape[0] != latent_dim:
        raise LatentDimMismatchError(
            f"Expected a direction of length latent_dim={latent_dim}. "
            f"Received: length {direction.shape[0]}. Were the vectors found with another VAE?"
        )
    norm = float(np.linalg.norm(direction))
    if not abs(norm - 1.0) <= 1e-3:
        raise ValueError(
            f"Expected a unit-length direction (alphas are offsets in latent units). "
            f"Received: norm={norm:.6g}. Normalise it: direction / np.linalg.norm(direction)."
        )
    return direction


## Latent classifier


@dataclasses.dataclass(frozen=True, eq=False)
class LatentClassifier:
    """Logistic regression on raw latent codes: ``p = sigmoid(weights . z + bias)``.

    Attributes:
        weights: ``(latent_dim,)`` float64, in raw (unstandardized) z units.
        bias: The intercept, a float.
    """

    weights: np.ndarray
    bias: float

    def __post_init__(self) -> None:
        weights = np.array(self.weights, dtype=np.float64)
        if weights.ndim != 1 or weights.shape[0] == 0 or not np.all(np.isfinite(weights)):
            raise ValueError(
                f"Expected finite weights of shape (latent_dim,). Received: shape={weights.shape}"
            )
        weights.setflags(write=False)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", float(self.bias))

    @property
    def latent_dim(self) -> int:
        return int(self.weights.shape[0])

    def decision_function(self, z: Any) -> np.ndarray:
        """The logit ``weights . z + bias`` for ``z`` of shape ``(n, latent_dim)``; returns ``(n,)``."""
        z = _as_latents(z)
        if z.shape[1] != self.latent_dim:
            raise LatentDimMismatchError(
                f"Expected z with latent_dim={self.latent_dim}. Received: z.shape={z.shape}"
            )
        return z @ self.weights + self.bias

    def predict_proba(self, z: Any) -> np.ndarray:
        """Probability of the attribute for ``z`` of shape ``(n, latent_dim)``; returns ``(n,)``."""
        return expit(self.decision_function(z))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LatentClassifier:
        missing = sorted({"weights", "bias"} - set(values))
        if missing:
            raise ValueError(
                f"Expected a LatentClassifier dict with 'weights' and 'bias'. Missing: {missing}"
            )
        return cls(weights=np.asarray(values["weights"], dtype=np.float64), bias=values["bias"])


def fit_latent_classifier(
    z: Any, labels: Any, inverse_l2: float = 1.0, seed: int = 0
) -> LatentClassifier:
    """Fits a logistic regression of an attribute on latent codes.

    The features are standardized for the solver, then the scaling is folded
    back so the returned classifier works on raw ``z``:
    ``w_raw = w_std / s`` and ``b_raw = b_std - sum(w_std * m / s)`` for
    per-dimension mean ``m`` and std ``s``. Classes are weighted "balanced"
    because Eyeglasses is only ~7% positive in CelebA; otherwise the boundary
    drifts towards the majority class and auto alpha overshoots.

    Args:
        z: Latent codes ``(n, latent_dim)``, usually ``z_mean``.
        labels: ``(n,)`` booleans, -1/+1 or 0/1.
        inverse_l2: Inverse regularisation strength ``C`` of scikit-learn's L2 penalty
            (larger = weaker penalty), as ``VectorConfig.inverse_l2``.
        seed: Seed for the solver, for reproducibility.

    Returns:
        A ``LatentClassifier`` in raw latent units.

    Raises:
        DegenerateDirectionError: If a class is empty.
    """
    from sklearn.linear_model import LogisticRegression

    z = _as_latents(z)
    labels = as_bool_labels(labels)
    _check_two_classes(labels, z.shape[0], "labels")
    if not inverse_l2 > 0:
        raise ValueError(
            f"Expected inverse_l2 (scikit-learn's C) > 0. Received: inverse_l2={inverse_l2}"
        )
    model = LogisticRegression(
        C=inverse_l2, class_weight="balanced", max_iter=2000, random_state=seed
    )
    return _fit_standardized(model, z, labels)


def _fit_standardized(model: Any, z: np.ndarray, labels: np.ndarray) -> LatentClassifier:
    """Fits a scikit-learn linear classifier on standardized ``z``; returns it in raw units."""
    mean = z.mean(axis=0)
    std = z.std(axis=0)
    std[std < 1e-12] = 1.0  # a constant dimension carries no signal; keep it finite
    model.fit((z - mean) / std, labels)
    coef = model.coef_.reshape(-1)
    weights = coef / std
    bias = float(model.intercept_[0] - np.sum(coef * mean / std))
    return LatentClassifier(weights=weights, bias=bias)


# Inverse penalties C the reporting classifier chooses from by cross-validation.
REPORTING_CS = tuple(float(c) for c in np.logspace(-4, 2, 13))


def latent_auc_report(
    z_train: Any,
    labels_train: Any,
    z_held: Any,
    labels_held: Any,
    seed: int = 0,
    folds: int = 5,
    cs: Sequence[float] = REPORTING_CS,
) -> tuple[LatentClassifier, dict[str, Any]]:
    """How well the attribute can be read off ``z``: a classifier of its own, scored on held-out codes.

    Auto alpha needs a calibrated, strongly regularised classifier
    (``VectorConfig.inverse_l2``); its AUC understates what ``z`` holds. This one
    picks ``C`` by ``folds``-fold cross-validated AUC on the training codes
    only (scikit-learn's ``LogisticRegressionCV``), refits on all of them, and
    is scored on the held-out codes it never saw.

    Args:
        z_train: ``(n_train, latent_dim)`` training codes.
        labels_train: ``(n_train,)`` their labels.
        z_held: ``(n_held, latent_dim)`` held-out codes.
        labels_held: ``(n_held,)`` their labels.
        seed: Seed of the fold split and the solver.
        folds: Cross-validation folds.
        cs: Candidate inverse penalties.

    Returns:
        ``(classifier, report)``: the ``LatentClassifier`` in raw units, and
        ``classification_report`` of the held-out codes plus ``C`` (chosen),
        ``n_train`` and ``cv_roc_auc`` (mean over folds at that ``C``).
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    z_train = _as_latents(z_train, "z_train")
    labels_train = as_bool_labels(labels_train, "labels_train")
    _check_two_classes(labels_train, z_train.shape[0], "labels_train")
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    model = LogisticRegressionCV(
        Cs=list(cs),
        cv=split,
        scoring="roc_auc",
        l1_ratios=(0.0,),  # plain L2
        use_legacy_attributes=True,  # scores_ as {class: (folds, Cs, l1_ratios)}
        class_weight="balanced",
        max_iter=2000,
        random_state=seed,
    )
    classifier = _fit_standardized(model, z_train, labels_train)
    chosen = int(np.flatnonzero(np.isclose(model.Cs_, model.C_[0]))[0])
    report = classification_report(labels_held, classifier.predict_proba(z_held))
    report["C"] = float(model.C_[0])
    scores = np.asarray(list(model.scores_.values())[0]).reshape(folds, len(model.Cs_), -1)
    report["cv_roc_auc"] = float(scores[:, chosen].mean())
    report["n_train"] = int(z_train.shape[0])
    return classifier, report


def classification_report(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy numbers for probabilities against true labels.

    Args:
        labels: ``(n,)`` true labels (booleans, -1/+1 or 0/1).
        scores: ``(n,)`` predicted probabilities; positive when ``>= threshold``.
        threshold: Decision threshold on the probabilities.

    Returns:
        ``{"accuracy", "balanced_accuracy", "roc_auc", "positives", "n"}``; ``roc_auc``
        is None when only one class is present.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    labels = as_bool_labels(labels)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"Expected labels and scores of the same shape (n,). "
            f"Received: labels.shape={labels.shape}, scores.shape={scores.shape}"
        )
    predicted = scores >= threshold
    both = 0 < labels.sum() < labels.size
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)) if both else None,
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "positives": int(labels.sum()),
        "n": int(labels.size),
    }


## Directions


def mean_difference(z: Any, labels: Any) -> np.ndarray:
    """Unit vector from the mean of negatives to the mean of positives.

    The classic attribute vector (Larsen et al. 2016, arXiv 1512.09300; Goh 2016).
    It inherits every correlation of the labels: in CelebA, Eyeglasses faces are
    older and more often male, so this vector also ages and masculinises.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        labels: ``(n,)`` booleans, -1/+1 or 0/1.

    Returns:
        ``(latent_dim,)`` unit vector.

    Raises:
        DegenerateDirectionError: If a class is empty or the means coincide.
    """
    z = _as_latents(z)
    labels = as_bool_labels(labels)
    _check_two_classes(labels, z.shape[0], "labels")
    return _unit(z[labels].mean(axis=0) - z[~labels].mean(axis=0), "mean difference")


def paired_direction(z_with: Any, z_without: Any) -> np.ndarray:
    """Unit mean of ``z(face with) - z(face without)`` over pairs of one face.

    Only the synthetic renderer can draw the same face with and without
    sunglasses, so only there does this exist. Every other factor is the same
    within a pair, so no confound survives the difference: it is the direction
    a linear edit should find, and the kind every unpaired recipe is compared
    with (``paired_cosines``).

    Args:
        z_with: ``(n, latent_dim)`` codes of the faces with the attribute.
        z_without: ``(n, latent_dim)`` codes of the same faces without it, row for row.

    Returns:
        ``(latent_dim,)`` unit vector.

    Raises:
        DegenerateDirectionError: If there are no pairs or the differences cancel.
    """
    z_with = _as_latents(z_with, "z_with")
    z_without = _as_latents(z_without, "z_without")
    if z_with.shape != z_without.shape:
        raise ValueError(
            "Expected z_with and z_without of one shape (n, latent_dim), row i the same face. "
            f"Received: {z_with.shape} and {z_without.shape}"
        )
    return _unit((z_with - z_without).mean(axis=0), "paired direction")


def paired_cosines(directions: Mapping[str, Any], reference: str = "paired") -> dict[str, float]:
    """Cosine of every other kind with the ``reference`` kind: 1 means the truth was found."""
    truth = as_direction(directions[reference])
    return {
        kind: float(as_direction(vector) @ truth)
        for kind, vector in directions.items()
        if kind != reference
    }


def balanced_mean_difference(
    z: Any, labels: Any, conditions: Any, min_count: int = 1
) -> np.ndarray:
    """Mean difference with the condition attributes balanced out (White 2016).

    White ("Sampling Generative Networks", arXiv 1609.04468) corrects the bias of
    attribute vectors by balancing the condition attributes between the two
    groups. We do it by stratification: the faces are split into strata, one per
    combination of condition values (e.g. young woman, old man); within each
    stratum the mean difference ``mean(z | positive) - mean(z | negative)``
    compares faces that agree on the conditions, so the conditions cannot leak
    into it. The stratum differences are averaged with EQUAL weight per stratum,
    so a rare combination counts as much as a common one, just as if the data
    had been resampled to a balanced design. Strata with fewer than
    ``min_count`` faces in either class are skipped.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        labels: ``(n,)`` attribute labels (booleans, -1/+1 or 0/1).
        conditions: ``(n, k)`` (or ``(n,)``) condition labels in the same encodings.
        min_count: Least number of faces of each class for a stratum to count.

    Returns:
        ``(latent_dim,)`` unit vector.

    Raises:
        DegenerateDirectionError: If no stratum holds both classes, or the result is zero.
    """
    z = _as_latents(z)
    labels = as_bool_labels(labels)
    _check_two_classes(labels, z.shape[0], "labels")
    conditions = as_bool_labels(conditions, "conditions")
    if conditions.ndim == 1:
        conditions = conditions[:, None]
    if conditions.ndim != 2 or conditions.shape[0] != z.shape[0]:
        raise ValueError(
            f"Expected conditions of shape (n={z.shape[0]}, k). Received: shape={conditions.shape}"
        )
    strata, stratum_of = np.unique(conditions, axis=0, return_inverse=True)
    stratum_of = stratum_of.reshape(-1)
    differences = []
    for s in range(strata.shape[0]):
        positive = (stratum_of == s) & labels
        negative = (stratum_of == s) & ~labels
        if positive.sum() >= min_count and negative.sum() >= min_count:
            differences.append(z[positive].mean(axis=0) - z[negative].mean(axis=0))
    if not differences:
        raise DegenerateDirectionError(
            f"Expected at least one stratum of the conditions with >= {min_count} faces of each "
            f"class. Received: {strata.shape[0]} strata, none with both. Use more faces or fewer "
            "conditions."
        )
    return _unit(np.mean(differences, axis=0), "balanced mean difference")


def matched_mean_difference(
    z: Any, labels: Any, others: Any, implied: float = 0.95, chunk: int = 512
) -> np.ndarray:
    """Mean of ``z(positive) - z(its attribute-matched negatives)``: pairs without a renderer.

    Each positive face is paired with the negatives that agree with it on the
    most other attributes (least Hamming distance over ``others``; every tie is
    averaged), so whatever the other labels describe (sex, make-up, age, hair)
    cancels within a pair, as in a matched case-control study. What the labels
    do not describe still leaks. Attributes that the positives almost all have
    (share above ``implied``, e.g. Eyeglasses for Sunglasses) are not matched
    on: matching on them would pair sunglasses with clear glasses, not with
    bare eyes.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        labels: ``(n,)`` attribute labels.
        others: ``(n, k)`` labels of the other attributes.
        implied: Share of positives above which an attribute is left out of the match.
        chunk: Positives matched per step (bounds memory at ``chunk x n``).

    Returns:
        ``(latent_dim,)`` unit vector.
    """
    z = _as_latents(z)
    labels = as_bool_labels(labels)
    _check_two_classes(labels, z.shape[0], "labels")
    others = as_bool_labels(others, "others")
    if others.ndim != 2 or others.shape[0] != z.shape[0]:
        raise ValueError(
            f"Expected others of shape (n={z.shape[0]}, k). Received: shape={others.shape}"
        )
    others = others[:, others[labels].mean(axis=0) <= implied].astype(np.float32)
    positives, negatives = others[labels], others[~labels]
    z_negatives = z[~labels]
    matched = np.empty((positives.shape[0], z.shape[1]))
    for start in range(0, positives.shape[0], chunk):
        block = positives[start : start + chunk]
        # Hamming distance of 0/1 rows: a + b - 2 a.b, for every positive-negative pair at once.
        distance = block.sum(1)[:, None] + negatives.sum(1)[None] - 2 * block @ negatives.T
        nearest = distance == distance.min(axis=1, keepdims=True)
        matched[start : start + chunk] = (nearest @ z_negatives) / nearest.sum(1, keepdims=True)
    return _unit((z[labels] - matched).mean(axis=0), "matched mean difference")


def classifier_normal(classifier: LatentClassifier) -> np.ndarray:
    """Unit normal of the latent classifier's boundary, pointing to the positives.

    InterFaceGAN's boundary normal (arXiv 2005.09635). Because the classifier's
    weights are in raw z units, moving along it changes the logit fastest per
    unit of latent distance.

    Returns:
        ``(latent_dim,)`` unit vector ``weights / |weights|``.
    """
    return _unit(classifier.weights, "classifier weight vector")


def project_out(direction: Any, condition_directions: Any) -> np.ndarray:
    """Removes the span of the condition directions from a direction.

    InterFaceGAN's conditional manipulation (arXiv 2005.09635, Sec. 2.2), for
    any number of conditions: the component of ``direction`` in the span of the
    conditions is found by least squares and subtracted (a second pass removes
    round-off, "twice is enough" Gram-Schmidt), then the rest is renormalised.
    Moving along the result leaves every condition classifier's logit unchanged.

    Args:
        direction: ``(latent_dim,)`` vector (any norm).
        condition_directions: ``(k, latent_dim)`` array or a sequence of
            ``(latent_dim,)`` vectors; may be empty.

    Returns:
        ``(latent_dim,)`` unit vector orthogonal to every condition direction,
        with positive dot product with ``direction``.

    Raises:
        DegenerateDirectionError: If a condition is zero or ``direction`` lies in their span.
    """
    direction = np.asarray(direction, dtype=np.float64)
    if direction.ndim != 1:
        raise ValueError(f"Expected direction of shape (latent_dim,). Received: {direction.shape}")
    conditions = np.asarray(condition_directions, dtype=np.float64)
    if conditions.size == 0:
        return _unit(direction, "direction")
    conditions = np.atleast_2d(conditions)
    if conditions.ndim != 2 or conditions.shape[1] != direction.shape[0]:
        raise ValueError(
            f"Expected condition_directions of shape (k, {direction.shape[0]}). "
            f"Received: shape={conditions.shape}"
        )
    for i, condition in enumerate(conditions):
        _unit(condition, f"condition direction #{i}")
    basis = conditions.T  # (latent_dim, k)
    residual = direction
    for _ in range(2):
        coefficients = np.linalg.lstsq(basis, residual, rcond=None)[0]
        residual = residual - basis @ coefficients
    if np.linalg.norm(residual) < 1e-8 * max(np.linalg.norm(direction), 1e-300):
        raise DegenerateDirectionError(
            "Expected a direction with a part outside the span of the condition directions. "
            "Received one inside it: projecting out the conditions leaves nothing. "
            "Drop a condition or use the unconditioned direction."
        )
    return _unit(residual, "projected direction")


def rows_mask(image_size: int, side: int, channels: int, rows: slice) -> np.ndarray:
    """Which numbers of a flattened ``(side, side, channels)`` grid latent lie over image ``rows``.

    A spatial VAE's z is its last stage's grid, flattened row by row (``VAEConfig.spatial_grid``);
    cell row ``r`` covers image rows ``r * cell`` to ``(r + 1) * cell``. A cell row counts when
    its centre lies in ``rows``: at 64 px the eye band (rows 26-40) keeps cell rows 3 and 4.
    Keeping row 5 too, which the band touches by one pixel, moved the cheeks: on real faces
    the change outside the band rose from 0.22 to 0.35 of the reconstruction error at the
    same flip rate (RESULTS.md). A band with no centre in it (thinner than a cell) keeps the
    rows it touches.

    Returns:
        ``(side * side * channels,)`` booleans.
    """
    cell = image_size // side
    over = [r for r in range(side) if rows.start <= (r + 0.5) * cell < rows.stop]
    if not over:  # a band thinner than a cell, between two centres: the rows it touches
        over = [r for r in range(side) if r * cell < rows.stop and (r + 1) * cell > rows.start]
    if not over:
        raise ValueError(
            f"Expected rows inside the {image_size}-pixel image. Received: rows={rows}"
        )
    mask = np.zeros((side, side, channels), dtype=bool)
    mask[over] = True
    return mask.reshape(-1)


def confine(direction: Any, mask: Any) -> np.ndarray:
    """The unit vector of ``direction``'s part on ``mask``: an edit that moves only those numbers.

    Raises:
        DegenerateDirectionError: If nothing of ``direction`` lies on ``mask``.
    """
    direction = as_direction(direction)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != direction.shape:
        raise ValueError(
            f"Expected a mask of shape {direction.shape}, like the direction. Received: {mask.shape}"
        )
    return _unit(np.where(mask, direction, 0.0), "direction on the mask")


def conditional_direction(
    z: Any,
    labels: Any,
    conditions: Any,
    inverse_l2: float = 1.0,
    seed: int = 0,
    classifier: LatentClassifier | None = None,
) -> np.ndarray:
    """The attribute's classifier normal with the conditions' normals projected out.

    One latent classifier is fitted per condition attribute (same ``inverse_l2`` and
    ``seed``); their unit normals are removed from the attribute's normal with
    ``project_out``, so an edit along the result leaves each condition
    classifier's score exactly unchanged (InterFaceGAN, arXiv 2005.09635).

    Args:
        z: ``(n, latent_dim)`` latent codes.
        labels: ``(n,)`` attribute labels.
        conditions: ``(n, k)`` condition labels (booleans, -1/+1 or 0/1).
        inverse_l2: Inverse penalty C of every logistic regression.
        seed: Solver seed.
        classifier: The attribute's already fitted classifier, to avoid refitting.

    Returns:
        ``(latent_dim,)`` unit vector orthogonal to every condition normal.
    """
    z = _as_latents(z)
    conditions = as_bool_labels(conditions, "conditions")
    if conditions.ndim == 1:
        conditions = conditions[:, None]
    if classifier is None:
        classifier = fit_latent_classifier(z, labels, inverse_l2=inverse_l2, seed=seed)
    normals = [
        classifier_normal(
            fit_latent_classifier(z, conditions[:, j], inverse_l2=inverse_l2, seed=seed)
        )
        for j in range(conditions.shape[1])
    ]
    return project_out(classifier_normal(classifier), np.array(normals).reshape(-1, z.shape[1]))


def _column(attributes: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    if name not in names:
        raise ValueError(
            f"Expected an attribute among the {len(names)} names (CelebA spelling, e.g. "
            f"'Eyeglasses'). Received: {name!r}"
        )
    return attributes[:, list(names).index(name)]


def compute_directions(
    z: Any,
    attributes: Any,
    names: Sequence[str],
    attribute: str = "Eyeglasses",
    conditions: Sequence[str] = ("Male", "Young"),
    inverse_l2: float = 1.0,
    seed: int = 0,
    classifier: LatentClassifier | None = None,
) -> dict[str, np.ndarray]:
    """Every direction of one attribute, keyed by ``DIRECTION_KINDS``.

    Args:
        z: ``(n, latent_dim)`` latent codes (``z_mean`` of the training faces).
        attributes: ``(n, n_attributes)`` labels, -1/+1 (CelebA) or booleans.
        names: The attribute names of the columns, e.g. ``CELEBA_ATTRIBUTES``.
        attribute: The attribute to find, CelebA spelling.
        conditions: Attributes to balance ("balanced_mean_difference") and
            project out ("conditional").
        inverse_l2: Inverse penalty C of the logistic regressions.
        seed: Solver seed.
        classifier: The attribute's fitted latent classifier, if already at hand.

    Returns:
        ``{kind: (latent_dim,) unit vector}`` for every kind in ``DIRECTION_KINDS``.
    """
    z = _as_latents(z)
    attributes = as_bool_labels(attributes, "attributes")
    if attributes.ndim != 2 or attributes.shape != (z.shape[0], len(names)):
        raise ValueError(
            f"Expected attributes of shape (n={z.shape[0]}, len(names)={len(names)}). "
            f"Received: attributes.shape={attributes.shape}"
        )
    labels = _column(attributes, names, attribute)
    condition_labels = np.zeros((z.shape[0], len(conditions)), dtype=bool)
    for j, condition in enumerate(conditions):
        condition_labels[:, j] = _column(attributes, names, condition)
    if classifier is None:
        classifier = fit_latent_classifier(z, labels, inverse_l2=inverse_l2, seed=seed)
    return {
        "mean_difference": mean_difference(z, labels),
        "balanced_mean_difference": balanced_mean_difference(z, labels, condition_labels),
        "classifier_normal": classifier_normal(classifier),
        "conditional": conditional_direction(
            z, labels, condition_labels, inverse_l2=inverse_l2, seed=seed, classifier=classifier
        ),
        "matched_mean_difference": matched_mean_difference(
            z, labels, np.delete(attributes, list(names).index(attribute), axis=1)
        ),
    }


def cosine_table(directions: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """Pairwise cosines of directions.

    Args:
        directions: ``{kind: (latent_dim,) vector}``.

    Returns:
        ``(kinds, matrix)`` with ``matrix[i, j] = cos(directions[kinds[i]], directions[kinds[j]])``,
        shape ``(k, k)``, ones on the diagonal.
    """
    kinds = list(directions)
    vectors = np.array([_unit(directions[k], f"direction {k!r}") for k in kinds])
    return kinds, vectors @ vectors.T


def attribute_directions(
    z: Any,
    attributes: Any,
    names: Sequence[str],
    method: str = "mean_difference",
    inverse_l2: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """One unit direction per attribute column, to see what else a direction encodes.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        attributes: ``(n, len(names))`` labels, -1/+1 or booleans.
        names: Column names.
        method: "mean_difference" (fast) or "classifier_normal" (one logistic
            regression per attribute; slower, closer to what edits use).
        inverse_l2: Inverse penalty C for "classifier_normal".
        seed: Solver seed.
        progress: Show a tqdm bar.

    Returns:
        ``{name: (latent_dim,) unit vector}``; attributes with an empty class in
        ``attributes`` are left out.
    """
    if method not in ("mean_difference", "classifier_normal"):
        raise ValueError(
            f"Expected method 'mean_difference' or 'classifier_normal'. Received: {method!r}"
        )
    z = _as_latents(z)
    attributes = as_bool_labels(attributes, "attributes")
    if attributes.shape != (z.shape[0], len(names)):
        raise ValueError(
            f"Expected attributes of shape ({z.shape[0]}, {len(names)}). "
            f"Received: {attributes.shape}"
        )
    vectors = {}
    for j, name in enumerate(tqdm(names, desc="attribute directions", disable=not progress)):
        column = attributes[:, j]
        if not 0 < column.sum() < column.size:
            continue
        if method == "mean_difference":
            vectors[name] = mean_difference(z, column)
        else:
            vectors[name] = classifier_normal(
                fit_latent_classifier(z, column, inverse_l2=inverse_l2, seed=seed)
            )
    return vectors


def attribute_cosines(direction: Any, attribute_vectors: Mapping[str, Any]) -> dict[str, float]:
    """Cosine of one direction with every attribute's direction.

    Args:
        direction: ``(latent_dim,)`` vector.
        attribute_vectors: ``{name: (latent_dim,) vector}``, e.g. from ``attribute_directions``.

    Returns:
        ``{name: cosine}`` in the order of ``attribute_vectors``.
    """
    direction = _unit(direction, "direction")
    return {
        name: float(direction @ _unit(vector, f"direction of {name}"))
        for name, vector in attribute_vectors.items()
    }


## Saving


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_vectors(
    directory: str | Path,
    directions: Mapping[str, Any],
    classifier: LatentClassifier,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes directions, the latent classifier and metadata to a folder.

    Layout: one ``<kind>.npy`` (float64, ``(latent_dim,)``) per direction and
    ``vectors.json`` holding ``latent_dim``, ``kinds``, ``norms``,
    ``kind_cosines`` (``{"kinds", "matrix"}``), ``classifier`` (weights and bias)
    and every metadata key (e.g. ``attribute``, ``conditions``, ``report``,
    ``attribute_cosines``). Each file is written to a temporary name and renamed;
    ``vectors.json`` goes last, so a folder with it is complete.

    Args:
        directory: Folder to write (created if needed).
        directions: ``{kind: (latent_dim,) unit vector}``.
        classifier: The attribute's latent classifier (used for auto alpha).
        metadata: JSON-serialisable extras; must not use the reserved keys.

    Returns:
        Path of ``vectors.json``.
    """
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_RESERVED_KEYS))
    if clash:
        raise ValueError(
            f"Expected metadata without the keys save_vectors writes itself {_RESERVED_KEYS}. "
            f"Received: {clash}"
        )
    if not directions:
        raise ValueError("Expected at least one direction to save. Received: an empty mapping.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for kind, vector in directions.items():
        if not kind or "/" in kind or kind.startswith("."):
            raise ValueError(f"Expected a plain file-name kind. Received: {kind!r}")
        arrays[kind] = as_direction(vector, classifier.latent_dim)
    for kind, vector in arrays.items():
        with atomic.atomic_path(directory / f"{kind}.npy") as temporary:
            np.save(temporary, vector)
    kinds, matrix = cosine_table(arrays)
    record = {
        "format_version": VECTORS_FORMAT_VERSION,
        "latent_dim": classifier.latent_dim,
        "kinds": kinds,
        "norms": {k: float(np.linalg.norm(v)) for k, v in arrays.items()},
        "kind_cosines": {"kinds": kinds, "matrix": matrix.tolist()},
        "classifier": classifier.to_dict(),
        **_jsonable(metadata),
    }
    return atomic.write_json(directory / VECTORS_FILE, record)


def load_vectors(
    directory: str | Path, latent_dim: int | None = None
) -> tuple[dict[str, np.ndarray], LatentClassifier, dict[str, Any]]:
    """Reads what ``save_vectors`` wrote.

    Args:
        directory: The folder holding ``vectors.json`` and the ``<kind>.npy`` files.
        latent_dim: The current VAE's latent size, to catch vectors from another model.

    Returns:
        ``(directions, classifier, metadata)``: unit vectors by kind, the latent
        classifier, and every other key of ``vectors.json``.

    Raises:
        VectorsNotFoundError: If the folder, ``vectors.json`` or a listed ``.npy`` is missing.
        LatentDimMismatchError: If the sizes disagree with each other or with ``latent_dim``.
    """
    directory = Path(directory)
    path = directory / "vectors.json"
    if not path.is_file():
        raise VectorsNotFoundError(
            f"Expected saved vectors at {path}, found nothing. "
            "Find them first (python -m dealwithit vector, or notebook 03) or pass the right folder."
        )
    record = json.loads(path.read_text())
    classifier = LatentClassifier.from_dict(record.pop("classifier"))
    saved_dim = int(record["latent_dim"])
    if latent_dim is not None and saved_dim != latent_dim:
        raise LatentDimMismatchError(
            f"Expected vectors for latent_dim={latent_dim} (the loaded VAE). Received vectors "
            f"with latent_dim={saved_dim} from {directory}. Recompute them with this VAE."
        )
    if classifier.latent_dim != saved_dim:
        raise LatentDimMismatchError(
            f"Expected classifier weights of length {saved_dim} in {path}. "
            f"Received: {classifier.latent_dim}. The file is corrupt; recompute the vectors."
        )
    directions = {}
    for kind in record["kinds"]:
        npy = directory / f"{kind}.npy"
        if not npy.is_file():
            raise VectorsNotFoundError(
                f"Expected {npy}, listed in {path}, found nothing. Recompute the vectors."
            )
        vector = np.load(npy)
        if vector.shape != (saved_dim,):
            raise LatentDimMismatchError(
                f"Expected {npy} of shape ({saved_dim},) as vectors.json says. "
                f"Received: {vector.shape}. Recompute the vectors."
            )
        directions[kind] = as_direction(vector, saved_dim)
    return directions, classifier, record


CODES_FILE = "codes.npz"


def save_codes(directory: str | Path, **codes: Any) -> Path:
    """Saves the latent codes the vectors were fitted on (``codes.npz``), atomically.

    Later steps (notebook 04, other attributes' directions) load them instead
    of encoding the data again.

    Args:
        directory: The vectors folder.
        **codes: ``name=(n, latent_dim)`` arrays, e.g. ``z_train``, ``z_held``.

    Returns:
        The path written.
    """
    with atomic.atomic_path(Path(directory) / CODES_FILE) as temporary:
        np.savez(temporary, **{name: np.asarray(value) for name, value in codes.items()})
    return Path(directory) / CODES_FILE


def load_codes(directory: str | Path) -> dict[str, np.ndarray]:
    """The codes ``save_codes`` wrote, by name.

    Raises:
        VectorsNotFoundError: No ``codes.npz`` in ``directory``.
    """
    path = Path(directory) / CODES_FILE
    if not path.is_file():
        raise VectorsNotFoundError(
            f"Expected saved latent codes at {path}, found nothing. "
            "Run `python -m dealwithit vector` (or notebook 03) to write them."
        )
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def format_report(
    attribute: str,
    split: str,
    n: int,
    latent_report: Mapping[str, Any],
    pixel_report: Mapping[str, Any],
    kinds: Sequence[str],
    kind_cosines: Any,
    attribute_cosines: Mapping[str, float],
    kind: str,
    top: int = 6,
) -> str:
    """The plain-text report of a ``vector`` run: AUCs, cosines between kinds, leaks of ``kind``.

    Args:
        attribute: The attribute, CelebA spelling.
        split: The held-out split the reports use.
        n: Held-out faces.
        latent_report: ``classification_report`` of the latent classifier.
        pixel_report: ``classification_report`` of the pixel judge.
        kinds: Direction kinds, in ``cosine_table`` order.
        kind_cosines: ``(len(kinds), len(kinds))`` cosines.
        attribute_cosines: ``{name: cosine}`` of ``kind``'s direction with each attribute's.
        kind: The direction edits use.
        top: How many attribute cosines to list, largest first.

    Returns:
        A multi-line string.
    """

    def number(value: Any) -> str:  # AUC is None when the held-out faces have one class
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{attribute} on Z ({split}, n={n}): AUC {number(latent_report['roc_auc'])}, "
        f"balanced accuracy {number(latent_report['balanced_accuracy'])}; pixel judge AUC "
        f"{number(pixel_report['roc_auc']) if pixel_report else 'n/a (the judge never learned it)'}",
        "Cosines between directions:",
        "  " + " ".join(f"{k[:12]:>12}" for k in kinds),
    ]
    for name, row in zip(kinds, np.asarray(kind_cosines)):
        lines.append(f"  {name[:24]:<24}" + " ".join(f"{v:12.3f}" for v in row))
    largest = sorted(attribute_cosines.items(), key=lambda kv: -abs(kv[1]))[:top]
    lines.append(f"  {kind} vs other attributes: " + ", ".join(f"{k} {v:+.2f}" for k, v in largest))
    return "\n".join(lines)


## Auto alpha


def _exact_alpha(
    z: Any, direction: Any, classifier: LatentClassifier, target: float
) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < target < 1.0:
        raise ValueError(f"Expected 0 < target < 1. Received: target={target}")
    direction = as_direction(direction, classifier.latent_dim)
    slope = float(classifier.weights @ direction)
    if abs(slope) < 1e-6 * np.linalg.norm(classifier.weights):
        raise DegenerateDirectionError(
            f"Expected a direction that moves the latent classifier. Received one orthogonal to "
            f"its weights (w . v = {slope:.3g}): no step along it changes the score. "
            "Use another kind of direction."
        )
    logits = classifier.decision_function(z)
    return (logit(target) - logits) / slope, logits


def alpha_for_probability(
    z: Any, direction: Any, classifier: LatentClassifier, target: float = 0.99
) -> np.ndarray:
    """Per face, the smallest offset that makes the latent classifier reach ``target``.

    Closed form, since the logit is linear in alpha:
    ``alpha = (logit(target) - (w . z + b)) / (w . v)``, so that
    ``sigmoid(w . (z + alpha v) + b) = target``. Faces already at or above the
    target get 0 (no edit). ``alpha`` is an OFFSET in latent units along the
    unit ``direction``: the edit is ``z' = z + alpha * direction``.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        direction: ``(latent_dim,)`` unit vector.
        classifier: The attribute's latent classifier.
        target: Probability to reach, in (0, 1).

    Returns:
        ``(n,)`` float64 offsets (>= 0 when ``w . v > 0``, as for our directions).

    Raises:
        DegenerateDirectionError: If ``w . v`` is ~0 (the direction can't move the score).
    """
    alphas, logits = _exact_alpha(z, direction, classifier, target)
    return np.where(logits >= logit(target), 0.0, alphas)


def alpha_for_removal(
    z: Any, direction: Any, classifier: LatentClassifier, target: float = 0.01
) -> np.ndarray:
    """Per face, the smallest offset that brings the latent classifier down to ``target``.

    The removal counterpart of ``alpha_for_probability``: same closed form,
    giving NEGATIVE offsets along the (attribute-raising) unit direction; faces
    already at or below the target get 0. ``z' = z + alpha * direction``.

    Args:
        z: ``(n, latent_dim)`` latent codes.
        direction: ``(latent_dim,)`` unit vector.
        classifier: The attribute's latent classifier.
        target: Probability to reach, in (0, 1), e.g. 0.01.

    Returns:
        ``(n,)`` float64 offsets (<= 0 when ``w . v > 0``).
    """
    alphas, logits = _exact_alpha(z, direction, classifier, target)
    return np.where(logits <= logit(target), 0.0, alphas)

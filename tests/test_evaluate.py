"""Tests for dealwithit.evaluate on hand-made cases and a banded fake VAE with a fake judge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from dealwithit.data import CELEBA_ATTRIBUTES
from dealwithit.evaluate import (
    attribute_leakage,
    best_of_k_mse,
    best_of_k_ratio,
    counterfactual_ratio,
    dose_response,
    evaluate_edits,
    flip_rate,
    format_table,
    locality,
    oracle_ratio,
)
from dealwithit.vectors import compute_directions, fit_latent_classifier

SIZE = 16
BANDS = [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16)]  # hair, EYES, cheeks, chin
EYES = BANDS[1]
EYEGLASSES = CELEBA_ATTRIBUTES.index("Eyeglasses")
MALE = CELEBA_ATTRIBUTES.index("Male")
YOUNG = CELEBA_ATTRIBUTES.index("Young")


def encode(images):
    """A linear projection: the mean brightness of each of the four row bands, (n, 4)."""
    images = np.asarray(images, dtype=np.float64)
    return np.stack([images[:, band].mean(axis=(1, 2, 3)) for band in BANDS], axis=1)


def decode(z):
    """The projection's pseudo-inverse (each band filled with its value), clipped to [0, 1]."""
    z = np.asarray(z, dtype=np.float64)
    images = np.empty((len(z), SIZE, SIZE, 3))
    for j, band in enumerate(BANDS):
        images[:, band] = z[:, j, None, None, None]
    return np.clip(images, 0.0, 1.0)


def judge(images):
    """Fake pixel-space judge: dark eyes = Eyeglasses, bright hair = Male, bright chin = Young."""
    z = encode(images)
    probs = np.full((len(z), len(CELEBA_ATTRIBUTES)), 0.3)
    probs[:, EYEGLASSES] = expit(30 * (0.45 - z[:, 1]))
    probs[:, MALE] = expit(30 * (z[:, 0] - 0.5))
    probs[:, YOUNG] = expit(30 * (z[:, 3] - 0.5))
    return probs


def banded_faces(n=400, seed=0):
    """Faces with Eyeglasses correlated with Male, their labels and true counterfactuals."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    young = rng.random(n) < 0.5
    eyeglasses = rng.random(n) < np.where(male, 0.45, 0.15)
    values = np.stack(
        [
            0.3 + 0.4 * male,
            np.where(eyeglasses, 0.15, 0.6),
            np.full(n, 0.5),
            0.3 + 0.4 * young,
        ],
        axis=1,
    ) + rng.normal(0, 0.04, size=(n, 4))
    noise = rng.normal(0, 0.02, size=(n, SIZE, SIZE, 3))
    images = np.clip(decode(values) + noise, 0, 1)
    with_glasses = values.copy()
    with_glasses[:, 1] = 0.15 + rng.normal(0, 0.04, size=n)
    counterfactuals = np.clip(decode(with_glasses) + noise, 0, 1)
    attributes = -np.ones((n, len(CELEBA_ATTRIBUTES)), dtype=int)
    for column, index in ((eyeglasses, EYEGLASSES), (male, MALE), (young, YOUNG)):
        attributes[:, index] = np.where(column, 1, -1)
    return images, attributes, counterfactuals


@pytest.fixture(scope="module")
def setup():
    images, attributes, counterfactuals = banded_faces()
    z = encode(images)
    labels = attributes[:, EYEGLASSES]
    classifier = fit_latent_classifier(z, labels)
    directions = compute_directions(z, attributes, CELEBA_ATTRIBUTES, classifier=classifier)
    return images, labels, counterfactuals, directions, classifier


def test_flip_rate_counts_judge_positives_at_threshold():
    """3 of 5 probabilities are >= 0.5 in the chosen column."""
    probs = np.zeros((5, 3))
    probs[:, 1] = [0.1, 0.5, 0.9, 0.49, 0.7]
    assert flip_rate(probs, 1) == pytest.approx(0.6)
    assert flip_rate(probs, 1, threshold=0.8) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="attribute_index"):
        flip_rate(probs, 3)


def test_identity_edit_changes_nothing_outside_or_inside():
    """edited == reconstruction: zero change, ratio 0, and no share to attribute."""
    rng = np.random.default_rng(0)
    original = rng.random((3, SIZE, SIZE, 3))
    reconstruction = original + 0.05
    result = locality(original, reconstruction, reconstruction.copy(), EYES)
    assert result["outside_change"] == 0.0
    assert result["outside_change_ratio"] == 0.0
    assert result["eye_band_share"] is None
    assert result["reconstruction_error"] == pytest.approx(0.05)


def test_eye_band_share_is_one_when_only_eye_rows_change():
    """Darkening only rows 4..7 puts all of the change in the band, none outside."""
    original = np.full((2, SIZE, SIZE, 3), 0.5)
    reconstruction = original + 0.1
    edited = reconstruction.copy()
    edited[:, EYES] -= 0.4
    result = locality(original, reconstruction, edited, EYES)
    assert result["eye_band_share"] == pytest.approx(1.0)
    assert result["outside_change"] == 0.0 and result["outside_change_ratio"] == 0.0
    assert result["eye_band_change"] == pytest.approx(0.4)
    # A uniform change everywhere: the band holds 4 of the 16 rows, outside change / 0.1 = 2.
    result = locality(original, reconstruction, reconstruction + 0.2, EYES)
    assert result["eye_band_share"] == pytest.approx(0.25)
    assert result["outside_change_ratio"] == pytest.approx(2.0)


def test_counterfactual_ratio_on_a_constructed_example():
    """Edit off by 0.1 (MSE 0.01), reconstruction off by 0.2 (MSE 0.04): ratio 0.25."""
    original = np.full((2, 4, 4, 3), 0.5)
    counterfactual = original.copy()
    counterfactual[:, 1:2] = 0.0
    assert counterfactual_ratio(counterfactual + 0.1, counterfactual, original + 0.2, original) == (
        pytest.approx(0.25)
    )
    assert counterfactual_ratio(original, counterfactual, original, original) is None


def test_best_of_k_ratio_scores_each_face_against_its_closest_style():
    """Face 0 matches its second style exactly, face 1 is 0.1 off its closest: mean 0.005 / 0.04."""
    original = np.full((2, 4, 4, 3), 0.5)
    styles = np.stack([np.full((2, 4, 4, 3), 0.0), np.full((2, 4, 4, 3), 0.3)], axis=1)
    edited = np.stack([np.full((4, 4, 3), 0.3), np.full((4, 4, 3), 0.4)])
    ratio = best_of_k_ratio(edited, styles, original + 0.2, original)
    assert ratio == pytest.approx((0.0 + 0.01) / 2 / 0.04)
    with pytest.raises(ValueError, match="Expected styles of shape"):
        best_of_k_ratio(edited, styles[:1], original + 0.2, original)


def test_best_of_k_mse_is_absolute_so_a_blurrier_model_cannot_score_better():
    """The same edits: the ratio halves when the reconstruction error doubles; the MSE does not move."""
    original = np.full((2, 4, 4, 3), 0.5)
    styles = np.stack([np.full((2, 4, 4, 3), 0.0), np.full((2, 4, 4, 3), 0.3)], axis=1)
    edited = np.stack([np.full((4, 4, 3), 0.3), np.full((4, 4, 3), 0.4)])
    assert best_of_k_mse(edited, styles) == pytest.approx(0.005)
    sharp = best_of_k_ratio(edited, styles, original + 0.1, original)
    blurry = best_of_k_ratio(edited, styles, original + 0.1 * np.sqrt(2), original)
    assert blurry == pytest.approx(sharp / 2)
    with pytest.raises(ValueError, match="Expected styles of shape"):
        best_of_k_mse(edited, styles[:1])


def test_oracle_ratio_is_the_vaes_own_reconstruction_of_the_closest_style():
    """A VAE that adds 0.1 to every pixel rebuilds every style 0.01 off: the floor is 0.01 / 0.04.

    A perfect VAE has floor 0, and the floor never exceeds the best-of-K ratio of
    an edit that this same VAE decodes to one of the styles.
    """
    original = np.full((2, 4, 4, 3), 0.5)
    styles = np.stack([np.full((2, 4, 4, 3), 0.2), np.full((2, 4, 4, 3), 0.6)], axis=1)
    identity = lambda x: np.asarray(x)  # noqa: E731
    shifted = lambda x: np.asarray(x) + 0.1  # noqa: E731
    reconstruction = original + 0.2
    assert oracle_ratio(styles, identity, identity, reconstruction, original) == 0.0
    floor = oracle_ratio(styles, identity, shifted, reconstruction, original)
    assert floor == pytest.approx(0.01 / 0.04)
    edited = shifted(styles[:, 0])  # the shifted VAE drawing the first style
    assert floor <= best_of_k_ratio(edited, styles, reconstruction, original) * (1 + 1e-6)
    assert oracle_ratio(styles, identity, identity, original, original) is None


def test_attribute_leakage_is_the_signed_mean_change_without_the_edited_attribute():
    """Two faces, three attributes: mean(after - before) per column, Eyeglasses left out."""
    before = np.array([[0.1, 0.5, 0.2], [0.3, 0.5, 0.2]])
    after = np.array([[0.9, 0.7, 0.2], [0.9, 0.3, 0.0]])
    leakage = attribute_leakage(before, after, ("Eyeglasses", "Male", "Young"))
    assert leakage == pytest.approx({"Male": 0.0, "Young": -0.1})


def test_flip_rate_of_unedited_faces_is_the_base_rate(setup):
    """At alpha = 0 the dose-response curve equals the judge's rate on plain reconstructions."""
    images, labels, _, directions, _ = setup
    negatives = images[labels < 0]
    curve = dose_response(
        negatives,
        encode,
        decode,
        judge,
        directions["conditional"],
        [0.0, 1.0],
        EYEGLASSES,
        progress=False,
    )
    base_rate = flip_rate(judge(decode(encode(negatives))), EYEGLASSES)
    assert curve["positive_rate"][0] == base_rate
    assert base_rate < 0.05 and curve["positive_rate"][1] > 0.9
    assert curve["alphas"] == [0.0, 1.0]


def test_evaluate_edits_on_the_banded_fake(setup):
    """The conditional edit flips the judge, stays in the eye band and leaves Male alone."""
    images, labels, counterfactuals, directions, classifier = setup
    metrics = evaluate_edits(
        images,
        labels,
        encode,
        decode,
        judge,
        directions,
        classifier,
        counterfactuals=counterfactuals,
        eye_rows=EYES,
        progress=False,
    )
    required = {
        "latent_auc",
        "flip_rate",
        "removal_flip_rate",
        "eye_band_share",
        "outside_change_ratio",
        "counterfactual_ratio",
        "counterfactual_ratio_oracle",
        "counterfactual_mse_best_of_k",
        "alpha_curve",
        "removal_curve",
        "leakage",
        "base_rate",
    }
    assert required <= set(metrics)
    assert metrics["latent_auc"] > 0.99
    assert metrics["base_rate"] == metrics["alpha_curve"][0]["flip_rate"]
    assert metrics["alpha_curve"][0]["alpha"] == 0.0 and len(metrics["alpha_curve"]) == 9
    assert metrics["base_rate"] < 0.05
    assert metrics["flip_rate"] > 0.95 and metrics["removal_flip_rate"] > 0.95
    # Nothing clips, and each band is a quarter of the image: the share is |v_eyes| / sum |v|.
    direction = directions["conditional"]
    assert metrics["eye_band_share"] == pytest.approx(abs(direction[1]) / np.abs(direction).sum())
    assert metrics["eye_band_share"] > 0.8
    assert metrics["mean_alpha"] > 0 > metrics["mean_removal_alpha"]
    assert 0 < metrics["counterfactual_ratio"] < 100
    assert metrics["counterfactual_ratio_oracle"] <= metrics["counterfactual_ratio_best_of_k"]
    assert all(p["alpha"] <= 0 for p in metrics["removal_curve"])
    assert metrics["removal_curve"][-1]["flip_rate"] > 0.9
    assert set(metrics["leakage"]) == set(directions)
    assert set(metrics["leakage"]["conditional"]) == set(CELEBA_ATTRIBUTES) - {"Eyeglasses"}
    # The Male normal is projected out, so the conditional edit can't change the judge's Male.
    assert abs(metrics["leakage"]["conditional"]["Male"]) < 0.02
    table = format_table(metrics)
    assert "flip rate at auto alpha" in table and "conditional" in table


def test_evaluate_edits_explicit_alphas_and_no_counterfactuals(setup):
    """Given alphas are used as is (removal: their negatives); no counterfactuals gives None."""
    images, labels, _, directions, classifier = setup
    metrics = evaluate_edits(
        images,
        labels,
        encode,
        decode,
        judge,
        directions,
        classifier,
        kind="mean_difference",
        alphas=[0.0, 0.2],
        eye_rows=EYES,
        progress=False,
    )
    assert metrics["counterfactual_ratio"] is None
    assert [p["alpha"] for p in metrics["alpha_curve"]] == [0.0, 0.2]
    assert [p["alpha"] for p in metrics["removal_curve"]] == [0.0, -0.2]
    assert "n/a" in format_table(metrics)
    with pytest.raises(ValueError, match="without Eyeglasses"):
        evaluate_edits(
            images[labels > 0], labels[labels > 0], encode, decode, judge, directions, classifier
        )


def test_eyewear_kept_rate_counts_only_wearers():
    from dealwithit.evaluate import eyewear_kept_rate

    probs = np.zeros((5, 40))
    probs[:, 15] = [0.9, 0.2, 0.7, 0.95, 0.1]  # column 15 is Eyeglasses
    wearers = np.array([1, 1, 1, -1, -1])
    assert eyewear_kept_rate(probs, wearers, 15) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least one wearer"):
        eyewear_kept_rate(probs, -np.ones(5, int), 15)


def test_eyewear_kept_of_seen_leaves_out_wearers_the_judge_misses_on_the_original():
    from dealwithit.evaluate import eyewear_kept_of_seen_rate

    original = np.zeros((5, 40))
    original[:, 15] = [0.9, 0.3, 0.8, 0.9, 0.6]  # wearer 2 is missed on the sharp original
    reconstructed = np.zeros((5, 40))
    reconstructed[:, 15] = [0.7, 0.9, 0.1, 0.9, 0.9]
    wearers = np.array([1, 1, 1, -1, -1])
    kept, seen = eyewear_kept_of_seen_rate(original, reconstructed, wearers, 15)
    assert seen == pytest.approx(2 / 3)  # the cap on the plain kept rate
    assert kept == pytest.approx(1 / 2)  # wearers 1 and 3 are seen; only 1 is kept
    kept, _ = eyewear_kept_of_seen_rate(original * 0, reconstructed, wearers, 15)
    assert np.isnan(kept)
    with pytest.raises(ValueError, match="one shape"):
        eyewear_kept_of_seen_rate(original[:4], reconstructed, wearers, 15)


def test_judge_auc_and_intervals_are_reported(setup):
    """judge_auc is the judge's AUC on the original faces; each interval brackets its number."""
    from sklearn.metrics import roc_auc_score

    images, labels, counterfactuals, directions, classifier = setup
    metrics = evaluate_edits(
        images,
        labels,
        encode,
        decode,
        judge,
        directions,
        classifier,
        counterfactuals=counterfactuals,
        eye_rows=EYES,
        progress=False,
        n_resamples=200,
    )
    expected = roc_auc_score(labels > 0, judge(images)[:, EYEGLASSES])
    assert metrics["judge_auc"] == pytest.approx(expected, abs=1e-12)
    for name in ("flip_rate", "base_rate", "removal_flip_rate", "latent_auc", "judge_auc"):
        low, high = metrics["intervals"][name]
        assert low <= metrics[name] <= high, name
    low, high = metrics["intervals"]["eye_band_share"]
    assert low <= metrics["eye_band_share"] <= high
    low, high = metrics["intervals"]["counterfactual_ratio"]
    assert low <= metrics["counterfactual_ratio"] <= high
    assert "judge AUC" in format_table(metrics)


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    """400 coin flips with p = 0.3: the 95 % interval is about 0.3 ± 1.96 sqrt(0.21 / 400)."""
    from dealwithit.evaluate import bootstrap_interval

    flips = np.zeros(400, dtype=bool)
    flips[:120] = True
    low, high = bootstrap_interval(np.mean, (flips,), n_resamples=2000)
    half = 1.96 * np.sqrt(0.3 * 0.7 / 400)
    assert low == pytest.approx(0.3 - half, abs=0.01)
    assert high == pytest.approx(0.3 + half, abs=0.01)
    assert bootstrap_interval(np.mean, (flips,), n_resamples=50, seed=1) == bootstrap_interval(
        np.mean, (flips,), n_resamples=50, seed=1
    )

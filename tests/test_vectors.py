"""Tests for dealwithit.vectors: directions recover planted ones, auto alpha is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit

from dealwithit.frame import eye_band_rows
from dealwithit.vectors import (
    DIRECTION_KINDS,
    DegenerateDirectionError,
    LatentClassifier,
    LatentDimMismatchError,
    VectorsNotFoundError,
    alpha_for_probability,
    alpha_for_removal,
    as_bool_labels,
    attribute_cosines,
    attribute_directions,
    balanced_mean_difference,
    classification_report,
    classifier_normal,
    compute_directions,
    conditional_direction,
    confine,
    cosine_table,
    fit_latent_classifier,
    load_vectors,
    matched_mean_difference,
    mean_difference,
    project_out,
    rows_mask,
    save_vectors,
)

NAMES = ("Eyeglasses", "Male", "Young", "Smiling")


def _unit(v):
    return v / np.linalg.norm(v)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def planted_faces(n=3000, latent_dim=12, seed=0):
    """Latent codes where each attribute shifts z along its own planted orthonormal vector.

    Eyeglasses is rare (~20%) and more common among men, the confound of CelebA.
    Returns z (n, d), attributes (n, 4) in CelebA's -1/+1, and the planted vectors.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(latent_dim, len(NAMES))))[0].T  # orthonormal rows
    planted = dict(zip(NAMES, basis, strict=True))
    male = rng.random(n) < 0.5
    young = rng.random(n) < 0.6
    smiling = rng.random(n) < 0.5
    eyeglasses = rng.random(n) < np.where(male, 0.3, 0.08)
    z = rng.normal(size=(n, latent_dim))
    for name, column in zip(NAMES, (eyeglasses, male, young, smiling), strict=True):
        z += 2.0 * column[:, None] * planted[name]
    attributes = np.where(np.stack([eyeglasses, male, young, smiling], axis=1), 1, -1)
    return z, attributes, planted


@pytest.fixture(scope="module")
def faces():
    return planted_faces()


@pytest.fixture(scope="module")
def classifier(faces):
    z, attributes, _ = faces
    return fit_latent_classifier(z, attributes[:, 0])


def test_labels_accept_celeba_and_boolean_encodings():
    """-1/+1, 0/1 and bool give the same booleans; anything else is refused."""
    expected = np.array([True, False, True])
    np.testing.assert_array_equal(as_bool_labels(np.array([1, -1, 1])), expected)
    np.testing.assert_array_equal(as_bool_labels(np.array([1, 0, 1])), expected)
    np.testing.assert_array_equal(as_bool_labels(expected), expected)
    with pytest.raises(ValueError, match="-1/\\+1"):
        as_bool_labels(np.array([0, 2, 1]))


def test_classifier_normal_and_mean_difference_recover_planted_direction():
    """On isotropic Gaussians split by a planted hyperplane both estimates find its normal."""
    rng = np.random.default_rng(1)
    latent_dim = 16
    planted = _unit(rng.normal(size=latent_dim))
    z = rng.normal(size=(4000, latent_dim))
    labels = z @ planted + 0.3 * rng.normal(size=4000) > 1.0  # ~16% positive
    classifier = fit_latent_classifier(z, labels)
    assert _cos(classifier_normal(classifier), planted) > 0.95
    assert _cos(mean_difference(z, labels), planted) > 0.95
    report = classification_report(labels, classifier.predict_proba(z))
    assert report["roc_auc"] > 0.97
    assert report["n"] == 4000 and report["positives"] == int(labels.sum())


def test_classifier_weights_are_in_raw_latent_units():
    """Folding the standardization back gives the same probabilities as scaler + regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 5)) * np.array([0.1, 1.0, 5.0, 2.0, 0.5]) + np.array([3, -1, 0, 2, 7])
    labels = z[:, 0] * 10 + z[:, 2] * 0.3 + rng.normal(size=500) > 30
    ours = fit_latent_classifier(z, labels, inverse_l2=0.5)
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
    ).fit(z, labels)
    np.testing.assert_allclose(ours.predict_proba(z), reference.predict_proba(z)[:, 1], atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(z), expit(z @ ours.weights + ours.bias))


def test_classification_report_on_hand_example():
    """Threshold 0.5 and AUC counted by hand: 3 of 4 positive-negative pairs ordered."""
    report = classification_report(np.array([1, 1, -1, -1]), np.array([0.9, 0.4, 0.6, 0.1]))
    assert report == {
        "accuracy": 0.5,
        "balanced_accuracy": 0.5,
        "roc_auc": 0.75,
        "positives": 2,
        "n": 4,
    }
    assert classification_report(np.array([1, 1]), np.array([0.9, 0.2]))["roc_auc"] is None


def test_every_direction_raises_the_attribute(faces, classifier):
    """Adding any kind of direction raises the latent classifier's logit, subtracting lowers it."""
    z, attributes, _ = faces
    directions = compute_directions(z, attributes, NAMES, classifier=classifier)
    assert tuple(directions) == DIRECTION_KINDS
    logits = classifier.decision_function(z)
    for kind, direction in directions.items():
        assert direction.shape == (z.shape[1],)
        assert abs(np.linalg.norm(direction) - 1.0) < 1e-12, kind
        assert np.all(classifier.decision_function(z + direction) > logits), kind
        assert np.all(classifier.decision_function(z - direction) < logits), kind


def test_conditional_direction_is_orthogonal_to_condition_normals(faces, classifier):
    """InterFaceGAN's conditional edit leaves the Male and Young classifiers' logits unchanged."""
    z, attributes, planted = faces
    conditions = attributes[:, 1:3]
    direction = conditional_direction(z, attributes[:, 0], conditions, classifier=classifier)
    for j in range(2):
        normal = classifier_normal(fit_latent_classifier(z, conditions[:, j]))
        assert abs(_cos(direction, normal)) < 1e-8
    assert _cos(direction, classifier_normal(classifier)) > 0.5
    assert _cos(direction, planted["Eyeglasses"]) > 0.7


def test_project_out_handles_many_conditions_and_refuses_a_direction_in_their_span():
    """Orthogonal to all k=3 conditions, same side as the input; a vector in the span fails."""
    rng = np.random.default_rng(3)
    conditions = rng.normal(size=(3, 8))
    direction = rng.normal(size=8)
    projected = project_out(direction, conditions)
    assert abs(np.linalg.norm(projected) - 1.0) < 1e-12
    assert np.max(np.abs([_cos(projected, c) for c in conditions])) < 1e-12
    assert projected @ direction > 0
    np.testing.assert_allclose(project_out(direction, []), _unit(direction))
    with pytest.raises(DegenerateDirectionError, match="span"):
        project_out(conditions.T @ np.array([1.0, -2.0, 0.5]), conditions)


def test_balanced_mean_difference_removes_a_planted_confound():
    """Eyeglasses correlated with Male: plain mean difference points partly along Male, balanced
    does not (White 2016, arXiv 1609.04468)."""
    rng = np.random.default_rng(4)
    n, latent_dim = 6000, 10
    u, w = np.eye(latent_dim)[0], np.eye(latent_dim)[1]  # attribute, confound
    male = rng.random(n) < 0.5
    eyeglasses = rng.random(n) < np.where(male, 0.8, 0.2)
    z = rng.normal(size=(n, latent_dim)) + 3 * eyeglasses[:, None] * u + 3 * male[:, None] * w
    plain = mean_difference(z, eyeglasses)
    balanced = balanced_mean_difference(z, eyeglasses, male[:, None])
    assert _cos(plain, w) > 0.4  # 0.6 of the Male shift leaks in: cos ~ 0.51
    assert abs(_cos(balanced, w)) < 0.05
    assert _cos(balanced, u) > 0.99


def test_matched_mean_difference_cancels_every_labelled_confound():
    """Six labelled confounds, each tied to the attribute: matching on them all removes them, while
    an attribute every positive has (Eyeglasses for Sunglasses) is left out of the match."""
    rng = np.random.default_rng(5)
    n, latent_dim, k = 8000, 12, 6
    sunglasses = rng.random(n) < 0.1
    confounds = rng.random((n, k)) < np.where(sunglasses[:, None], 0.75, 0.25)
    eyeglasses = sunglasses | (rng.random(n) < 0.05)
    basis = np.eye(latent_dim)
    z = rng.normal(size=(n, latent_dim)) + 3 * sunglasses[:, None] * basis[0]
    z += 3 * confounds @ basis[1 : k + 1] + 3 * eyeglasses[:, None] * basis[k + 1]
    others = np.column_stack([confounds, eyeglasses])
    plain = mean_difference(z, sunglasses)
    matched = matched_mean_difference(z, sunglasses, others)
    leak = np.linalg.norm(matched[1 : k + 1])
    assert np.linalg.norm(plain[1 : k + 1]) > 0.5  # the plain difference leans on the confounds
    assert leak < 0.1, leak
    # Eyeglasses is implied by Sunglasses, so it is not matched on: the direction is the
    # sunglasses shift plus the glasses shift (3 and about 2.85 units), nothing else.
    assert _cos(matched, basis[0]) > 0.65 and _cos(matched, basis[k + 1]) > 0.6
    assert np.hypot(matched[0], matched[k + 1]) > 0.99


def test_degenerate_inputs_raise_clear_errors(faces, classifier):
    """An empty class, a zero vector, and a direction the classifier can't see."""
    z = faces[0]
    with pytest.raises(DegenerateDirectionError, match="both classes"):
        mean_difference(z, np.zeros(len(z), bool))
    with pytest.raises(DegenerateDirectionError, match="both classes"):
        fit_latent_classifier(z, np.ones(len(z), bool))
    with pytest.raises(DegenerateDirectionError, match="non-zero"):
        project_out(np.zeros(z.shape[1]), [])
    with pytest.raises(DegenerateDirectionError, match="stratum"):
        labels = np.arange(len(z)) % 2 == 0
        balanced_mean_difference(z, labels, labels)  # each stratum holds one class only
    orthogonal = project_out(np.random.default_rng(5).normal(size=z.shape[1]), [classifier.weights])
    with pytest.raises(DegenerateDirectionError, match="orthogonal"):
        alpha_for_probability(z, orthogonal, classifier)
    with pytest.raises(ValueError, match="unit-length"):
        alpha_for_probability(z, 2 * classifier_normal(classifier), classifier)


def test_auto_alpha_hits_the_target_probability(faces, classifier):
    """z + alpha v scores exactly 0.99; faces already above it are left alone (alpha 0)."""
    z = faces[0]
    direction = compute_directions(z, faces[1], NAMES, classifier=classifier)["conditional"]
    before = classifier.predict_proba(z)
    alphas = alpha_for_probability(z, direction, classifier, target=0.99)
    after = classifier.predict_proba(z + alphas[:, None] * direction)
    below = before < 0.99
    assert 0 < below.sum() < len(z)
    assert np.max(np.abs(after[below] - 0.99)) < 1e-6
    assert np.all(alphas[below] > 0)
    np.testing.assert_array_equal(alphas[~below], 0.0)


def test_removal_alpha_hits_the_low_target_with_negative_steps(faces, classifier):
    """The removal counterpart: negative offsets down to 0.01, zero for faces already below."""
    z = faces[0]
    direction = classifier_normal(classifier)
    before = classifier.predict_proba(z)
    alphas = alpha_for_removal(z, direction, classifier, target=0.01)
    after = classifier.predict_proba(z + alphas[:, None] * direction)
    above = before > 0.01
    assert 0 < above.sum() < len(z)
    assert np.max(np.abs(after[above] - 0.01)) < 1e-6
    assert np.all(alphas[above] < 0)
    np.testing.assert_array_equal(alphas[~above], 0.0)


def test_cosine_table_and_attribute_cosines(faces, classifier):
    """Diagonal of ones, symmetric; a mean difference has cosine 1 with its own attribute."""
    z, attributes, _ = faces
    directions = compute_directions(z, attributes, NAMES, classifier=classifier)
    kinds, matrix = cosine_table(directions)
    assert kinds == list(DIRECTION_KINDS)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    vectors = attribute_directions(z, attributes, NAMES, progress=False)
    cosines = attribute_cosines(directions["mean_difference"], vectors)
    assert list(cosines) == list(NAMES)
    assert cosines["Eyeglasses"] == pytest.approx(1.0)
    assert abs(cosines["Smiling"]) < 0.2  # planted independently of Eyeglasses


def test_save_load_round_trip(tmp_path, faces, classifier):
    """Vectors, classifier and metadata come back exactly; no temporary files stay behind."""
    z, attributes, _ = faces
    directions = compute_directions(z, attributes, NAMES, classifier=classifier)
    report = classification_report(attributes[:, 0], classifier.predict_proba(z))
    save_vectors(
        tmp_path / "v", directions, classifier, {"attribute": "Eyeglasses", "report": report}
    )
    loaded, loaded_classifier, metadata = load_vectors(tmp_path / "v", latent_dim=z.shape[1])
    assert list(loaded) == list(directions)
    for kind in directions:
        np.testing.assert_array_equal(loaded[kind], directions[kind])
    np.testing.assert_array_equal(loaded_classifier.weights, classifier.weights)
    assert loaded_classifier.bias == classifier.bias
    assert metadata["report"] == report and metadata["attribute"] == "Eyeglasses"
    assert metadata["latent_dim"] == z.shape[1]
    np.testing.assert_allclose(metadata["kind_cosines"]["matrix"], cosine_table(directions)[1])
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == sorted(
        [f"{k}.npy" for k in DIRECTION_KINDS] + ["vectors.json"]
    )
    assert LatentClassifier.from_dict(classifier.to_dict()).bias == classifier.bias


def test_load_vectors_explains_missing_files_and_latent_dim_mismatch(tmp_path, classifier):
    """A missing folder or .npy and vectors from a different VAE fail with a clear message."""
    with pytest.raises(VectorsNotFoundError, match="vectors.json"):
        load_vectors(tmp_path / "nothing")
    direction = classifier_normal(classifier)
    save_vectors(tmp_path, {"classifier_normal": direction}, classifier)
    with pytest.raises(LatentDimMismatchError, match="latent_dim=64"):
        load_vectors(tmp_path, latent_dim=64)
    record = json.loads((tmp_path / "vectors.json").read_text())
    record["latent_dim"] = 5
    (tmp_path / "vectors.json").write_text(json.dumps(record))
    with pytest.raises(LatentDimMismatchError):
        load_vectors(tmp_path)
    (tmp_path / "classifier_normal.npy").unlink()
    record["latent_dim"] = classifier.latent_dim
    (tmp_path / "vectors.json").write_text(json.dumps(record))
    with pytest.raises(VectorsNotFoundError, match="classifier_normal.npy"):
        load_vectors(tmp_path)
    with pytest.raises(ValueError, match="reserved|writes itself"):
        save_vectors(tmp_path, {"classifier_normal": direction}, classifier, {"kinds": []})


def test_reporting_classifier_is_fitted_on_train_codes_and_scored_on_held_out_ones():
    """Train labels follow +z0, held-out labels follow -z0: an honest report scores AUC ~0.

    A classifier fitted on the held-out codes, or scored on the training codes,
    would report an AUC near 1 instead.
    """
    from dealwithit.vectors import REPORTING_CS, latent_auc_report

    rng = np.random.default_rng(0)
    z_train, z_held = rng.normal(size=(600, 6)), rng.normal(size=(300, 6))
    labels_train = z_train[:, 0] + 0.3 * rng.normal(size=600) > 0.8
    labels_held = -z_held[:, 0] + 0.3 * rng.normal(size=300) > 0.8
    classifier, report = latent_auc_report(z_train, labels_train, z_held, labels_held)
    assert report["roc_auc"] < 0.05
    assert report["cv_roc_auc"] > 0.95, "cross-validation sees only the training codes"
    assert report["n"] == 300 and report["n_train"] == 600
    assert report["C"] in REPORTING_CS
    assert classifier.weights[0] > 0, "the normal follows the training labels"


def test_reporting_classifier_chooses_weak_regularisation_when_it_pays():
    """A clean linear signal in 40 dims: cross-validation picks C above the auto-alpha 0.001."""
    from dealwithit.vectors import latent_auc_report

    rng = np.random.default_rng(1)
    w = rng.normal(size=40)
    z = rng.normal(size=(1500, 40))
    labels = z @ w + 0.5 * rng.normal(size=1500) > 2.0
    _, report = latent_auc_report(z[:1000], labels[:1000], z[1000:], labels[1000:])
    strong = fit_latent_classifier(z[:1000], labels[:1000], inverse_l2=0.001)
    assert report["C"] > 0.001
    assert report["roc_auc"] > 0.98
    assert (
        report["roc_auc"]
        >= classification_report(labels[1000:], strong.predict_proba(z[1000:]))["roc_auc"]
    )


def test_paired_direction_recovers_a_planted_direction_that_unpaired_recipes_miss():
    """Pairs differ by 0.8 d + noise; faces with the attribute are also older (+z1).

    The paired mean difference finds d; the unpaired mean difference mixes in
    the age confound, so its cosine with the paired direction stays well below 1.
    """
    from dealwithit.vectors import paired_cosines, paired_direction

    rng = np.random.default_rng(0)
    latent_dim, n = 16, 400
    d = rng.normal(size=latent_dim)
    d /= np.linalg.norm(d)
    without = rng.normal(size=(n, latent_dim))
    with_ = without + 0.8 * d + 0.3 * rng.normal(size=(n, latent_dim))
    paired = paired_direction(with_, without)
    assert paired @ d > 0.99
    # An unpaired sample: half the faces with the attribute, and those are older.
    labels = np.arange(n) < n // 2
    z = np.where(labels[:, None], with_, without)
    z[labels, 1] += 1.5
    directions = {"paired": paired, "mean_difference": mean_difference(z, labels)}
    cosines = paired_cosines(directions)
    assert set(cosines) == {"mean_difference"}
    assert cosines["mean_difference"] < 0.6
    with pytest.raises(ValueError, match="one shape"):
        paired_direction(with_, without[:10])


def test_rows_mask_keeps_the_grid_rows_over_the_band_and_confine_moves_only_them():
    # 16 px over a 4x4 grid of 2 channels: cell rows are 4 px; rows 6..10 touch cell rows 1 and 2.
    mask = rows_mask(16, 4, 2, slice(6, 11))
    grid = mask.reshape(4, 4, 2)
    assert grid[1:3].all() and not grid[[0, 3]].any()
    # A row counts by its centre: at 64 px the eye band (26-40) keeps cell rows 3 and 4, not 5,
    # which the band touches by one pixel.
    rows = rows_mask(64, 8, 1, eye_band_rows(64)).reshape(8, 8).any(axis=1)
    assert list(np.flatnonzero(rows)) == [3, 4]
    # A band between two centres (rows 11-12 of 16 px; centres at 10 and 14) keeps both rows it
    # touches.
    thin = rows_mask(16, 4, 1, slice(11, 13)).reshape(4, 4).any(axis=1)
    assert list(np.flatnonzero(thin)) == [2, 3]
    direction = np.ones(32) / np.sqrt(32)
    confined = confine(direction, mask)
    assert np.linalg.norm(confined) == pytest.approx(1.0)
    assert (confined[~mask] == 0).all() and (confined[mask] > 0).all()
    with pytest.raises(DegenerateDirectionError):
        confine(np.where(mask, 0.0, direction) / np.linalg.norm(direction[~mask]), mask)
    with pytest.raises(ValueError, match="inside the 16-pixel image"):
        rows_mask(16, 4, 2, slice(20, 24))

"""The steps: default weights come from what is on disk, and the saved config drives auto alpha."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_VAE, write_judge
from scipy.special import logit

from dealwithit import model, pipeline, vectors
from dealwithit.config import VectorConfig

DIRECTION = np.array([1.0, 0.0, 0.0, 0.0])  # the tiny weights' direction (conftest)


@pytest.fixture(scope="module")
def save_weights(make_weights):
    """Tiny weights whose latent classifier has logit ``2 z_0 - 1`` (so ``w . v = 2``)."""

    def save(folder: Path, vector_config: dict | None = None, judge: bool = False) -> Path:
        classifier = vectors.LatentClassifier(weights=2.0 * DIRECTION, bias=-1.0)
        return make_weights(folder, vector_config, judge, classifier)

    return save


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory, make_weights) -> Path:
    return make_weights(tmp_path_factory.mktemp("weights") / "tiny")


def _copy(source: Path, target: Path, age: float = 0.0) -> Path:
    """Copies a weights folder; ``age`` seconds in the past sets when its VAE was 'trained'."""
    shutil.copytree(source, target)
    stamp = (target / "vae" / model.VAE_FILE).stat().st_mtime - age
    os.utime(target / "vae" / model.VAE_FILE, (stamp, stamp))
    return target


# ## Default weights


def test_default_weights_prefer_the_default_data_folder(tiny_weights, workdir):
    _copy(tiny_weights, workdir / "weights" / "synthetic", age=100)
    _copy(tiny_weights, workdir / "weights" / "newer")
    assert pipeline.default_weights() == Path("weights/synthetic")


def test_default_weights_for_photos_prefer_pretrained(tiny_weights, workdir):
    _copy(tiny_weights, workdir / "weights" / "synthetic")
    _copy(tiny_weights, workdir / "weights" / "pretrained", age=100)
    assert pipeline.default_weights(for_photos=True) == Path("weights/pretrained")
    assert pipeline.default_weights(for_photos=False) == Path("weights/synthetic")


def test_deleting_the_last_trained_folder_falls_back_with_a_note(tiny_weights, workdir, caplog):
    """No pointer to go stale: the newest trained folder is the default until it is deleted."""
    _copy(tiny_weights, workdir / "weights" / "older", age=100)
    _copy(tiny_weights, workdir / "weights" / "newest")
    (workdir / "weights" / "half").mkdir()  # a folder without a VAE never counts
    with caplog.at_level("INFO", logger="dealwithit"):
        assert pipeline.default_weights() == Path("weights/newest")
    assert "weights/newest" in caplog.text and "weights/older" in caplog.text
    shutil.rmtree(workdir / "weights" / "newest")
    assert pipeline.default_weights() == Path("weights/older")
    shutil.rmtree(workdir / "weights" / "older")
    with pytest.raises(pipeline.PipelineError, match="python -m dealwithit train"):
        pipeline.default_weights()


# ## The saved VectorConfig drives auto alpha


@pytest.mark.parametrize("target", [0.6, 0.99])
def test_editor_auto_alpha_follows_the_saved_target_probability(tmp_path, target, save_weights):
    """Auto alpha reaches the target saved with the vectors, adding and removing."""
    config = VectorConfig(target_probability=target).to_dict()
    editor = pipeline.Editor(save_weights(tmp_path / "w", config))
    assert editor.target_probability == target
    z = np.zeros((3, 4))  # logit w.z + b = -1 everywhere; w.v = 2
    np.testing.assert_allclose(editor.alphas(z), (logit(target) + 1.0) / 2.0)
    np.testing.assert_allclose(editor.alphas(z + 5.0, remove=True), (logit(1 - target) - 9.0) / 2.0)


def test_target_probability_reaches_evaluate_end_to_end(
    tmp_path, tiny_celeba, workdir, save_weights
):
    """Two saved targets, same faces and models: evaluate's mean auto alpha follows the target."""
    mean_alphas = {}
    for target in (0.6, 0.99):
        weights = save_weights(
            tmp_path / f"w{target}", VectorConfig(target_probability=target).to_dict(), judge=True
        )
        workspace = pipeline.Workspace(tiny_celeba, 16, weights=weights)
        metrics = pipeline.evaluate(workspace, progress=False).metrics
        assert metrics["target_probability"] == target
        mean_alphas[target] = metrics["mean_alpha"]
    # alpha = (logit(target) - logit(face)) / (w . v): the gap is exactly the logit gap / 2.
    assert mean_alphas[0.99] - mean_alphas[0.6] == pytest.approx(
        (logit(0.99) - logit(0.6)) / 2.0, rel=1e-5
    )


def test_vectors_saved_with_the_old_l2_name_still_edit(tmp_path, save_weights):
    """Vectors written before the rename hold ``l2`` in their config; they load as inverse_l2."""
    old = {**VectorConfig(target_probability=0.7).to_dict(), "l2": 0.5}
    del old["inverse_l2"]
    editor = pipeline.Editor(save_weights(tmp_path / "w", old))
    assert editor.vector_config.inverse_l2 == 0.5
    assert editor.target_probability == 0.7


def test_counterfactuals_stack_each_face_twin_then_its_styles_in_order(tmp_path):
    """Grey levels name the files: twin i is 10 * (i + 1), style k of face i is 10 * (i + 1) + k + 1;
    a face rendered with no styles (it wore sunglasses already) repeats its twin."""
    from PIL import Image

    folder = tmp_path / "counterfactual"
    (folder / "styles").mkdir(parents=True)
    files = ["000001.jpg", "000002.jpg", "000003.jpg"]

    def frame(path, grey):
        Image.new("RGB", (178, 218), (grey,) * 3).save(path, quality=100)

    for i, name in enumerate(files):
        frame(folder / name, 10 * (i + 1))
        if i != 1:
            for k in (1, 0):  # written out of order: the listing is sorted
                frame(folder / "styles" / f"{Path(name).stem}_{k}.jpg", 10 * (i + 1) + k + 1)
    (folder / "list_counterfactual.txt").write_text("".join(f"{n} 1\n" for n in files))
    stacked = pipeline._counterfactuals(tmp_path, files, 16)
    assert stacked.shape == (3, 3, 16, 16, 3)
    greys = np.round(stacked.mean(axis=(2, 3, 4)) * 255)
    np.testing.assert_allclose(greys, [[10, 11, 12], [20, 20, 20], [30, 31, 32]], atol=1)


@pytest.mark.parametrize("region", ["auto", "face"])
def test_a_spatial_vae_confines_eyewear_directions_to_the_eye_rows(
    region, synthetic_folder, tmp_path, monkeypatch
):
    """region 'auto' (eyewear on a spatial latent) zeroes every number off the eye rows; 'face' not."""
    monkeypatch.chdir(tmp_path)
    config = TINY_VAE.replace(latent_dim=32, architecture="spatial")
    weights = tmp_path / "weights"
    model.save_vae(model.build_vae(config), weights / "vae")
    write_judge(weights)
    workspace = pipeline.Workspace(synthetic_folder, 16, weights=weights)
    result = pipeline.vector(workspace, VectorConfig(region=region), progress=False)
    directions, _, metadata = vectors.load_vectors(weights / "vectors" / "Sunglasses", 32)
    # 16 px, two stages: a 4x4 grid of 2 channels; the eye band (rows 6..10) is cell rows 1-2.
    off_eyes = np.ones((4, 4, 2), dtype=bool)
    off_eyes[1:3] = False
    expected = "eyes" if region == "auto" else "face"
    assert metadata["region"] == result.region == expected
    for kind, direction in directions.items():
        outside = np.abs(direction[off_eyes.reshape(-1)]).max()
        assert (outside == 0) == (expected == "eyes"), kind
        assert np.linalg.norm(direction) == pytest.approx(1.0)


def test_region_eyes_on_a_dense_latent_is_refused_with_what_to_use():
    config = VectorConfig(region="eyes")
    assert VectorConfig().region_for("conv") == "face"
    assert VectorConfig(attribute="Smiling").region_for("spatial") == "face"
    with pytest.raises(ValueError, match="use region 'face'"):
        config.region_for("conv")

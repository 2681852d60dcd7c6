"""128 px end to end: cache, classifier and judge, a ladder VAE, vector, evaluate, apply (tiny set)."""

import numpy as np
import pytest
from PIL import Image

from dealwithit import data, faces, model, pipeline
from dealwithit.config import AttributeClassifierConfig, VAEConfig, VectorConfig


@pytest.mark.slow
def test_128_pixels_through_the_whole_pipeline(synthetic_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workspace = pipeline.Workspace(synthetic_folder, 128, weights=tmp_path / "weights")
    vae_config = VAEConfig(
        image_size=128,
        architecture="ladder",
        latent_dim=8,
        ladder_dims=(8,),
        filters=(8, 16, 16),
        discriminative_weights=(1.0,),
        epochs=1,
        batch_size=16,
        transfer_stages=1,
    )
    classifier_config = AttributeClassifierConfig(
        image_size=128, filters=(8, 16, 16), dense_units=16, epochs=1, batch_size=16
    )
    quality = pipeline.train(workspace, vae_config, classifier_config, progress=False).quality
    with data.CelebACache(workspace.cache) as cache:
        assert cache.image_size == 128
        held_out = len(cache.indices(pipeline.held_out_split(cache)))
    assert quality["n"] == held_out and np.isfinite(quality["psnr"])
    vae = model.load_vae(workspace.vae_dir, 128)
    assert tuple(vae.decode(np.zeros((1, 8), "float32")).shape) == (1, 128, 128, 3)
    judge, judge_config = model.load_classifier(workspace.judge_dir)
    assert judge_config.image_size == 128 and judge.inputs[0].shape[1] == 128

    pipeline.vector(workspace, VectorConfig(conditions=()), progress=False)
    metrics = pipeline.evaluate(workspace, tmp_path / "metrics.json", progress=False).metrics
    assert 0.0 <= metrics["flip_rate"] <= 1.0
    quality = metrics["reconstruction"]
    for key in (
        "eyewear_kept_rate",
        "eyewear_seen_in_originals",
        "dark_lens_wearers_reconstructed",
    ):
        assert 0.0 <= quality[key] <= 1.0
    written = pipeline.apply_dataset_face(workspace, 1, tmp_path / "face.png", alpha=2.0)
    # before | reconstruction | edit, 128 px faces shown 4x larger
    assert Image.open(written.output).size == (3 * 128 * 4, 128 * 4)

    face = faces.Face(
        box=(100.0, 80.0, 180.0, 220.0), landmarks=faces.TEMPLATE + (110.0, 20.0), confidence=1.0
    )
    monkeypatch.setattr(faces, "detect_faces", lambda photo: [face])  # MTCNN finds no blank face
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((300, 400, 3), 180, np.uint8)).save(photo)
    (edited,) = pipeline.apply_photos(
        workspace.weights, [photo], tmp_path / "out.jpg", alpha=2.0
    ).edits
    assert np.asarray(Image.open(edited.output)).shape == (300, 400, 3)
    crops = []
    original = pipeline.Editor.decodes

    def recording(self, crops_in, *args, **kwargs):
        crops.append(np.asarray(crops_in).shape)
        return original(self, crops_in, *args, **kwargs)

    monkeypatch.setattr(pipeline.Editor, "decodes", recording)
    pipeline.apply_photos(workspace.weights, [photo], tmp_path / "again.jpg", alpha=2.0)
    assert crops == [(1, 128, 128, 3)], "the photo's face is aligned at the model's 128 px"

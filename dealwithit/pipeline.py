"""The steps end to end, as the CLI and ``make demo`` run them.

Each step reads and writes files in one ``Workspace`` (the cache, ``weights/<name>/``,
``outputs/<name>/``), so the CLI, the notebooks and a resumed run share results
only through the disk.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

DEFAULT_SYNTHETIC = Path("data/synthetic")
DEFAULT_CELEBA = Path("data/celeba")
LAST_WEIGHTS = Path("weights/LAST")


def default_data() -> Path:
    """``data/celeba`` when the user has put CelebA there, else the synthetic set."""
    if (DEFAULT_CELEBA / "list_attr_celeba.txt").exists():
        return DEFAULT_CELEBA
    return DEFAULT_SYNTHETIC


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Where one data set's cache, weights and pictures live.

    Args:
        data: The CelebA-layout folder.
        image_size: Pixels per side of the cache and the models.
        weights: Folder of this data set's models (default ``weights/<folder name>``).
        outputs: Folder of its pictures and metrics (default ``outputs/<weights folder name>``).
    """

    data: Path
    image_size: int = 64
    weights: Path | None = None
    outputs: Path | None = None

    def __post_init__(self) -> None:
        name = Path(self.data).resolve().name
        object.__setattr__(self, "data", Path(self.data))
        if self.weights is None:
            object.__setattr__(self, "weights", Path("weights") / name)
        if self.outputs is None:
            # Pictures follow the weights: a plain-VAE run in weights/x_plain draws to outputs/x_plain.
            object.__setattr__(self, "outputs", Path("outputs") / Path(self.weights).name)
        object.__setattr__(self, "weights", Path(self.weights))
        object.__setattr__(self, "outputs", Path(self.outputs))

    @property
    def cache(self) -> Path:
        from dealwithit import data

        return data.default_cache_path(self.data, self.image_size)

    @property
    def classifier_dir(self) -> Path:
        """The attribute classifier whose features discriminative regularization compares."""
        return self.weights / "classifier"

    @property
    def judge_dir(self) -> Path:
        """The independent attribute classifier that only ever judges edits."""
        return self.weights / "judge"

    @property
    def vae_dir(self) -> Path:
        return self.weights / "vae"

    @property
    def vectors_dir(self) -> Path:
        return self.weights / "vectors"


def remember_weights(weights: Path) -> None:
    """Records ``weights`` as the last trained folder (the default for apply/evaluate)."""
    LAST_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    LAST_WEIGHTS.write_text(str(weights) + "\n")


def last_weights() -> Path:
    """The folder ``remember_weights`` recorded, or ``weights/synthetic``."""
    if LAST_WEIGHTS.is_file():
        return Path(LAST_WEIGHTS.read_text().strip())
    return Path("weights") / DEFAULT_SYNTHETIC.name


def write_json(path: Path, values: dict) -> Path:
    """Writes ``values`` as indented JSON atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(values, indent=2) + "\n")
    tmp.replace(path)
    return path


def save_figure(figure, path: Path) -> Path:
    """Saves a Figure as PNG (creating the folder) and returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


class PipelineError(Exception):
    """A step that cannot run yet: say which earlier step to run."""


# ---------------------------------------------------------------- data


def synth(out: Path, n: int = 20000, seed: int = 0, workers=None, overwrite=False) -> Path:
    """Renders the synthetic set in the CelebA layout (see ``synthetic``)."""
    from dealwithit import synthetic

    try:
        folder = synthetic.write_synthetic_celeba(
            out, n, seed=seed, workers=workers, overwrite=overwrite
        )
    except synthetic.SyntheticDataExistsError as error:
        raise PipelineError(str(error)) from error
    print(f"Wrote {n} synthetic faces to {folder} (contact sheet: {folder / 'contact_sheet.png'})")
    return folder


def prepare(workspace: Workspace, overwrite: bool = False, progress: bool = True) -> Path:
    """Builds (or reuses) the HDF5 cache of cropped faces for ``workspace.data``."""
    from dealwithit import data

    cache = data.prepare_cache(
        workspace.data,
        workspace.cache,
        workspace.image_size,
        progress=progress,
        overwrite=overwrite,
    )
    with data.CelebACache(cache) as opened:
        counts = {split: len(opened.indices(split)) for split in ("train", "valid", "test")}
    print(f"Cache {cache}: {counts}")
    return cache


def _require(path: Path, step: str) -> Path:
    if not path.exists():
        raise PipelineError(
            f"Expected {path}, found nothing. Run `python -m dealwithit {step}` first."
        )
    return path


def held_out_split(cache) -> str:
    """``test`` when the set has one (the synthetic set), else ``valid`` (the shared CelebA subset)."""
    return "test" if len(cache.indices("test")) else "valid"


# ---------------------------------------------------------------- training


def train(
    workspace: Workspace,
    vae_config=None,
    classifier_config=None,
    *,
    resume: bool = False,
    limit: int | None = None,
    progress: bool = True,
    retrain: bool = True,
    judge_config=None,
) -> dict:
    """Trains the DR classifier, the independent judge and the VAE; saves pictures and quality.

    A classifier already trained with the same config is reused, so re-running
    ``train`` to try VAE settings does not retrain it. With ``retrain=False``
    (``make demo``) the VAE is reused too when its saved config is the same.

    Returns:
        The VAE's held-out reconstruction quality (see ``evaluate.reconstruction_quality``).
    """
    from dealwithit import model, training
    from dealwithit.config import AttributeClassifierConfig, JudgeConfig, VAEConfig

    vae_config = vae_config or VAEConfig(image_size=workspace.image_size)
    classifier_config = classifier_config or AttributeClassifierConfig(
        image_size=workspace.image_size
    )
    cache = prepare(workspace, progress=progress)
    classifier = None
    if vae_config.discriminative:
        classifier = attribute_classifier(
            workspace.classifier_dir, classifier_config, cache, resume, limit, progress
        )
    judge_config = judge_config or JudgeConfig(image_size=workspace.image_size)
    attribute_classifier(workspace.judge_dir, judge_config, cache, resume, limit, progress)
    saved = workspace.vae_dir / model.CONFIG_FILE
    if (
        not retrain
        and not resume
        and (workspace.vae_dir / model.VAE_FILE).is_file()
        and saved.is_file()
        and model.read_config(VAEConfig, workspace.vae_dir) == vae_config
    ):
        print(f"Reusing the VAE in {workspace.vae_dir} (same config); delete it to retrain.")
        remember_weights(workspace.weights)
        return vae_report(workspace)
    print(f"Training the VAE ({vae_config.epochs} epochs) -> {workspace.vae_dir}")
    vae, _ = training.train_vae(
        cache,
        vae_config,
        workspace.vae_dir,
        classifier=classifier,
        resume=resume,
        progress=progress,
        limit=limit,
    )
    remember_weights(workspace.weights)
    quality = vae_report(workspace, vae)
    print("Held-out reconstruction:", json.dumps(quality))
    return quality


def attribute_classifier(directory, config, cache, resume=False, limit=None, progress=True):
    """Trains an attribute classifier into ``directory``, or reuses the one there with the same config."""
    from dealwithit import model, training

    # Saved configs name the cache's attribute columns; compare like with like.
    config = training.with_cache_attributes(config, cache)
    if (directory / model.CLASSIFIER_FILE).is_file() and (directory / model.CONFIG_FILE).is_file():
        # Compare the small config first; load the model only when it will be reused.
        if model.read_config(type(config), directory) == config:
            print(f"Reusing the attribute classifier in {directory}")
            return model.load_classifier(directory)[0]
    print(f"Training an attribute classifier ({config.epochs} epochs) -> {directory}")
    classifier, report = training.train_attribute_classifier(
        cache, config, directory, resume=resume, progress=progress, limit=limit
    )
    print(
        f"  held-out accuracy {report['mean_accuracy']:.3f} over {len(report) - 3} attributes "
        f"(majority baseline {report['majority_accuracy']:.3f}); Eyeglasses {report['Eyeglasses']:.3f}"
    )
    return classifier


def encode_split(
    vae,
    cache,
    split: str,
    limit: int | None = None,
    batch_size: int = 256,
    progress=True,
    keep_images: bool = True,
):
    """Posterior means and log variances of a split, streamed from the cache with a progress bar.

    Args:
        vae: A trained ``VAE``.
        cache: An open ``data.CelebACache``.
        split: "train", "valid", "test" or "all".
        limit: Only the first ``limit`` faces.
        batch_size: Faces per encoder call.
        progress: Show a bar.
        keep_images: Also return the faces; False keeps memory flat on big splits.

    Returns:
        ``(images uint8 (n, S, S, 3) or None, z_mean (n, d), z_log_var (n, d))``.
    """
    import math

    import numpy as np
    from tqdm.auto import tqdm

    total = len(cache.indices(split)) if limit is None else min(limit, len(cache.indices(split)))
    images, means, log_vars = [], [], []
    batches = cache.iter_images(split, batch_size, limit)
    for batch in tqdm(
        batches, total=math.ceil(total / batch_size), desc=f"encode {split}", disable=not progress
    ):
        z_mean, z_log_var = vae.encode(batch.astype("float32") / 255.0)
        means.append(np.asarray(z_mean))
        log_vars.append(np.asarray(z_log_var))
        if keep_images:
            images.append(batch)
    return (
        (np.concatenate(images) if keep_images else None),
        np.concatenate(means),
        np.concatenate(log_vars),
    )


def vae_report(workspace: Workspace, vae=None, n_faces: int = 10) -> dict:
    """Held-out quality numbers, a reconstruction grid and the training curves."""
    from dealwithit import data, evaluate, model, plots, training

    vae = vae or model.load_vae(_require(workspace.vae_dir, "train"), workspace.image_size)
    with data.CelebACache(workspace.cache) as cache:
        split = held_out_split(cache)
        images, z_mean, z_log_var = encode_split(vae, cache, split, limit=1000, progress=False)
    reconstructions = model.decoder_fn(vae)(z_mean)
    floats = images.astype("float32") / 255.0
    quality = evaluate.reconstruction_quality(floats, z_mean, z_log_var, reconstructions)
    quality["split"] = split
    write_json(workspace.outputs / "vae_quality.json", quality)
    save_figure(
        plots.reconstruction_figure(floats[:n_faces], reconstructions[:n_faces]),
        workspace.outputs / "reconstructions.png",
    )
    save_figure(
        plots.training_curves_figure(training.read_history(workspace.vae_dir)),
        workspace.outputs / "training_curves.png",
    )
    return quality


# ---------------------------------------------------------------- vectors


def vector(workspace: Workspace, config=None, progress: bool = True) -> dict:
    """Encodes the data, fits the latent classifier and saves every direction kind.

    The latent classifier and the directions are fitted on the training split
    and reported on the held-out split, next to the pixel-space judge's score
    of the same faces.

    Returns:
        ``{"latent_report", "pixel_report", "kind_cosines", "attribute_cosines"}``.
    """
    import numpy as np

    from dealwithit import data, model, plots, vectors
    from dealwithit.config import VectorConfig

    config = config or VectorConfig()
    vae = model.load_vae(_require(workspace.vae_dir, "train"), workspace.image_size)
    judge, _ = model.load_classifier(_require(workspace.judge_dir, "train"))
    cache_path = prepare(workspace, progress=progress)
    with data.CelebACache(cache_path) as cache:
        names = list(cache.attribute_names)
        if config.attribute not in names:
            cache.attribute(config.attribute)  # raises with close matches
        split = held_out_split(cache)
        _, z_train, _ = encode_split(vae, cache, "train", progress=progress, keep_images=False)
        held_images, z_held, _ = encode_split(vae, cache, split, progress=progress)
        attributes_train = cache.attributes("train")
        labels_held = cache.attribute(config.attribute, split)
        held_files = cache.files(split)
    index = names.index(config.attribute)
    labels_train = attributes_train[:, index] > 0
    classifier = vectors.fit_latent_classifier(
        z_train, labels_train, l2=config.l2, seed=config.seed
    )
    reporting, latent_report = vectors.latent_auc_report(
        z_train, labels_train, z_held, labels_held, seed=config.seed
    )
    latent_scores = reporting.predict_proba(z_held)
    pixel_scores = model.classifier_fn(judge)(held_images)[:, index]
    auto_alpha_report = vectors.classification_report(labels_held, classifier.predict_proba(z_held))
    pixel_report = vectors.classification_report(labels_held, pixel_scores)
    directions = vectors.compute_directions(
        z_train,
        attributes_train,
        names,
        config.attribute,
        config.conditions,
        config.l2,
        config.seed,
        classifier=classifier,
    )
    pairs = _counterfactual_pairs(workspace.data, held_files, workspace.image_size)
    paired_cosines = None
    if pairs is not None:
        # Synthetic only: the renderer's own pairs (the held-out faces and their twins)
        # give the true direction, an upper bound every unpaired recipe is measured against.
        sunglasses_after, twins = pairs
        z_twins = model.encoder_fn(vae)(twins)
        z_with = np.where(sunglasses_after[:, None], z_twins, z_held)
        z_without = np.where(sunglasses_after[:, None], z_held, z_twins)
        directions["paired"] = vectors.paired_direction(z_with, z_without)
        paired_cosines = vectors.paired_cosines(directions)
    kinds, matrix = vectors.cosine_table(directions)
    others = vectors.attribute_directions(z_train, attributes_train, names, progress=False)
    attribute_cosines = {
        kind: vectors.attribute_cosines(direction, others) for kind, direction in directions.items()
    }
    metadata = {
        "attribute": config.attribute,
        "conditions": list(config.conditions),
        "kind": config.kind,
        "held_out_split": split,
        "latent_report": latent_report,
        "auto_alpha_report": auto_alpha_report,
        "reporting_classifier": {**reporting.to_dict(), "C": latent_report["C"]},
        "pixel_report": pixel_report,
        "attribute_cosines": attribute_cosines,
        "paired_cosines": paired_cosines,
        "config": config.to_dict(),
    }
    vectors.save_vectors(workspace.vectors_dir, directions, classifier, metadata)
    save_figure(
        plots.roc_figure(
            labels_held,
            {"latent classifier (Z)": latent_scores, "pixel judge": pixel_scores},
            title=f"{config.attribute}: held-out ROC",
        ),
        workspace.outputs / "roc.png",
    )
    save_figure(
        plots.cosine_heatmap_figure(kinds, matrix), workspace.outputs / "direction_cosines.png"
    )
    print(
        f"{config.attribute} on Z ({split}, n={len(labels_held)}): AUC {latent_report['roc_auc']:.3f}, "
        f"balanced accuracy {latent_report['balanced_accuracy']:.3f}; pixel judge AUC "
        f"{pixel_report['roc_auc']:.3f} (the auto-alpha classifier, C={config.l2}: AUC "
        f"{auto_alpha_report['roc_auc']:.3f}; this one, C={latent_report['C']:g} by cross-validation)"
    )
    print("Cosines between directions:")
    print("  " + " ".join(f"{k[:12]:>12}" for k in kinds))
    for kind, row in zip(kinds, matrix):
        print(f"  {kind[:24]:<24}" + " ".join(f"{v:12.3f}" for v in row))
    if paired_cosines is not None:
        print(
            "  cosine with the paired (true) direction: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in paired_cosines.items())
        )
    top = sorted(attribute_cosines[config.kind].items(), key=lambda kv: -abs(kv[1]))[:6]
    print(f"  {config.kind} vs other attributes: " + ", ".join(f"{k} {v:+.2f}" for k, v in top))
    return {
        "latent_report": latent_report,
        "pixel_report": pixel_report,
        "kind_cosines": dict(zip(kinds, np.asarray(matrix).tolist())),
        "attribute_cosines": attribute_cosines,
        "paired_cosines": paired_cosines,
    }


def _counterfactual_pairs(data_dir: Path, files, image_size: int):
    """``(sunglasses_after (n,) bool, twins (n, S, S, 3))`` for ``files``, or None without them."""
    import numpy as np

    listing = data_dir / "counterfactual" / "list_counterfactual.txt"
    twins = _counterfactuals(data_dir, files, image_size)
    if twins is None or not listing.is_file():
        return None
    after = dict(line.split() for line in listing.read_text().splitlines() if line.strip())
    if not all(name in after for name in files):
        return None
    if twins.ndim == 5:  # (n, 1 + K, S, S, 3): the strict twin comes first
        twins = twins[:, 0]
    return np.array([after[name] == "1" for name in files]), twins


# ---------------------------------------------------------------- evaluation


class Editor:
    """A trained VAE, its directions and latent classifier, ready to edit faces.

    Args:
        weights: A data set's weights folder (``weights/<name>``).
        image_size: The size the caller feeds; must match the weights.
        kind: Direction kind; default: the one saved with the vectors.
    """

    def __init__(self, weights: Path, image_size: int | None = None, kind: str | None = None):
        from dealwithit import model, vectors

        weights = Path(weights)
        self.vae = model.load_vae(_require(weights / "vae", "train"), image_size)
        self.image_size = self.vae.config.image_size
        self.directions, self.classifier, self.metadata = vectors.load_vectors(
            _require(weights / "vectors", "vector"), self.vae.config.latent_dim
        )
        self.kind = kind or self.metadata.get("kind", "conditional")
        self.direction = self.directions[self.kind]
        self.attribute = self.metadata.get("attribute", "Eyeglasses")
        self.encode = model.encoder_fn(self.vae)
        self.decode = model.decoder_fn(self.vae)

    def alphas(self, z, alpha: float | None = None, remove: bool = False, target: float = 0.99):
        """The offset per face: ``alpha`` as given (sign flipped to remove), else auto."""
        import numpy as np

        from dealwithit import vectors

        if alpha is not None:
            return np.full(len(z), -abs(alpha) if remove else alpha)
        if remove:
            return vectors.alpha_for_removal(z, self.direction, self.classifier, 1.0 - target)
        return vectors.alpha_for_probability(z, self.direction, self.classifier, target)

    def residuals(self, crops, alpha=None, remove=False, scale: float = 1.0):
        """``decode(z + a v) - decode(z)`` for aligned crops ``(n, S, S, 3)`` in [0, 1]."""
        from dealwithit import edit

        z = self.encode(crops)
        alphas = self.alphas(z, alpha, remove) * scale
        plain = self.decode(z)
        edited = self.decode(edit.apply_direction(z, self.direction, alphas))
        return edited - plain


def _counterfactuals(data_dir: Path, files, image_size: int):
    """The renderer's flipped-eyewear images of ``files``, or None when the folder has none."""
    import numpy as np

    from dealwithit import data

    folder = data_dir / "counterfactual"
    if not (folder / "list_counterfactual.txt").is_file():
        return None
    paths = [folder / name for name in files]
    if not all(path.is_file() for path in paths):
        return None
    twins = np.stack([data.load_face(path, image_size) for path in paths]).astype("float32") / 255.0
    styles = [sorted((folder / "styles").glob(f"{Path(name).stem}_*.jpg")) for name in files]
    count = min((len(found) for found, path in zip(styles, paths) if found), default=0)
    if not count:
        return twins
    # (n, 1 + K, S, S, 3): the strict twin first, then other sunglasses styles. Faces that get
    # no sunglasses (they had them) repeat their twin.
    stacked = np.repeat(twins[:, None], 1 + count, axis=1)
    for i, found in enumerate(styles):
        for k, path in enumerate(found[:count]):
            stacked[i, 1 + k] = data.load_face(path, image_size).astype("float32") / 255.0
    return stacked


def evaluate(
    workspace: Workspace,
    json_path: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    record: Path | None = None,
) -> dict:
    """Flip rates, locality, leakage and (synthetic) counterfactual error on held-out faces.

    Works on any CelebA-layout folder, including faces the model never saw:
    ``workspace.data`` is the folder to judge, ``workspace.weights`` the models.

    Every held-out face is scored unless ``limit`` says otherwise. With
    ``record``, the metrics are also written there as a ``results`` record
    (with this command line and machine) for ``make results``.

    Returns:
        The metrics dict also written to ``json_path`` (default ``outputs/<name>/metrics.json``).
    """
    from dealwithit import data, evaluate, model, plots, vectors

    editor = Editor(workspace.weights, workspace.image_size)
    judge, judge_config = model.load_classifier(_require(workspace.judge_dir, "train"))
    cache_path = prepare(workspace, progress=progress)
    with data.CelebACache(cache_path) as cache:
        split = held_out_split(cache)
        images, z_mean, z_log_var = encode_split(editor.vae, cache, split, limit, progress=progress)
        labels = cache.attribute(editor.attribute, split)[: len(images)]
        files = cache.files(split)[: len(images)]
    floats = images.astype("float32") / 255.0
    metrics = evaluate.evaluate_edits(
        floats,
        labels,
        editor.encode,
        editor.decode,
        model.classifier_fn(judge),
        editor.directions,
        editor.classifier,
        reporting_classifier=(
            vectors.LatentClassifier.from_dict(editor.metadata["reporting_classifier"])
            if "reporting_classifier" in editor.metadata
            else None
        ),
        kind=editor.kind,
        attribute=editor.attribute,
        names=model.attribute_names(judge_config),
        counterfactuals=_counterfactuals(workspace.data, files, editor.image_size),
        progress=progress,
    )
    metrics["reconstruction"] = evaluate.reconstruction_quality(
        floats, z_mean, z_log_var, editor.decode(z_mean)
    )
    metrics["data"] = str(workspace.data)
    metrics["split"] = split
    metrics["weights"] = str(workspace.weights)
    json_path = json_path or workspace.outputs / "metrics.json"
    write_json(json_path, metrics)
    if record is not None:
        from dealwithit import results

        results.write_record(results.make_record("edits", metrics, results.command_line()), record)
        print(f"Record written to {record}")
    save_figure(
        plots.dose_response_figure(
            {
                "adding (negatives)": metrics["alpha_curve"],
                "removing (positives)": metrics["removal_curve"],
            }
        ),
        workspace.outputs / "dose_response.png",
    )
    print(evaluate.format_table(metrics))
    print(f"Metrics written to {json_path}")
    return metrics


# ---------------------------------------------------------------- pictures and photos


def pictures(workspace: Workspace, n_faces: int = 6, progress: bool = True) -> dict[str, Path]:
    """The latent-slider grid and the DealWithIt GIF of held-out faces without the attribute."""
    import numpy as np

    from dealwithit import data, edit, plots, vectors

    editor = Editor(workspace.weights, workspace.image_size)
    with data.CelebACache(prepare(workspace, progress=progress)) as cache:
        split = held_out_split(cache)
        negatives = np.flatnonzero(~cache.attribute(editor.attribute, split))[:n_faces]
        images = cache.images(split)[negatives].astype("float32") / 255.0
    z = editor.encode(images)
    reach = float(np.median(vectors.alpha_for_probability(z, editor.direction, editor.classifier)))
    alphas = np.linspace(-reach, 1.5 * reach, 6)
    grid = edit.slider_grid(images, editor.encode, editor.decode, editor.direction, alphas)
    paths = {
        "slider_grid": save_figure(
            plots.slider_grid_figure(
                grid,
                alphas,
                title=f"Sliding along the {editor.attribute} direction ({editor.kind})",
            ),
            workspace.outputs / "slider_grid.png",
        )
    }
    frames = edit.dealwithit_frames(
        images[0], editor.encode, editor.decode, editor.direction, 1.2 * reach
    )
    paths["gif"] = edit.save_gif(frames, workspace.outputs / "dealwithit.gif")
    return paths


def apply_photos(
    weights: Path,
    photos: list[Path],
    out: Path | None = None,
    *,
    alpha: float | None = None,
    remove: bool = False,
    gif: bool = False,
    face: int | None = None,
) -> list[Path]:
    """Puts sunglasses on every face of each photo (or takes them off) and saves the result.

    Returns:
        The written files: ``<stem>_dealwithit.jpg`` (and ``.gif``) beside ``out``.
    """
    from dealwithit import edit, faces

    editor = Editor(weights)
    written = []
    for photo_path in photos:
        photo = faces.load_photo(photo_path)
        found = faces.detect_faces(photo)
        if not found:
            raise faces.PhotoError(
                f"No face found in {photo_path}. Try a photo with a larger, frontal, well-lit face."
            )
        target = _output_path(photo_path, out, len(photos), ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        edited, used = faces.edit_photo(
            photo,
            lambda crops: editor.residuals(crops, alpha, remove),
            faces=found,
            face_index=face,
            image_size=editor.image_size,
        )
        written.append(faces.save_photo(edited, target))
        print(f"{photo_path}: edited {len(used)} face(s) -> {target}")
        if gif:
            schedule = edit.frame_schedule(24)
            sequence = [
                faces.edit_photo(
                    photo,
                    lambda crops, s=s: editor.residuals(crops, alpha, remove, scale=s),
                    faces=found,
                    face_index=face,
                    image_size=editor.image_size,
                )[0]
                for s in schedule.fractions
            ]
            frames = edit.frames_from_sequence(sequence, caption_on=schedule.caption, size=640)
            written.append(edit.save_gif(frames, target.with_suffix(".gif")))
            print(f"  DealWithIt GIF -> {target.with_suffix('.gif')}")
    return written


def _saved_image_size(weights: Path | None) -> int | None:
    """The image size the VAE in ``weights`` was trained for, when there is one."""
    from dealwithit.config import VAEConfig
    from dealwithit.model import read_config

    path = Path(weights or "") / "vae" / "config.json"
    return read_config(VAEConfig, path.parent).image_size if weights and path.is_file() else None


def _output_path(photo: Path, out: Path | None, count: int, suffix: str) -> Path:
    name = f"{photo.stem}_dealwithit{suffix}"
    if out is None:
        return Path("outputs") / name
    if out.suffix and count == 1:
        return out
    return out / name


def apply_dataset_face(
    workspace: Workspace,
    index: int = 0,
    out: Path | None = None,
    *,
    alpha=None,
    remove=False,
    gif=False,
) -> list[Path]:
    """Edits one held-out face of the data set: before/after PNG and optionally the GIF."""
    import numpy as np
    from PIL import Image

    from dealwithit import data, edit

    editor = Editor(workspace.weights, workspace.image_size)
    with data.CelebACache(prepare(workspace, progress=False)) as cache:
        split = held_out_split(cache)
        count = len(cache.indices(split))
        if not 0 <= index < count:
            raise PipelineError(f"Expected --index in [0, {count - 1}]. Received: {index}")
        image = cache.images(split, limit=index + 1)[index:].astype("float32") / 255.0
    z = editor.encode(image)
    alphas = editor.alphas(z, alpha, remove)
    plain = editor.decode(z)
    edited = editor.decode(edit.apply_direction(z, editor.direction, alphas))
    row = np.concatenate([image[0], plain[0], edited[0]], axis=1)
    out = out or workspace.outputs / f"face_{index}_dealwithit.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(row, 0, 1) * 255).round().astype("uint8")).resize(
        (row.shape[1] * 4, row.shape[0] * 4), Image.Resampling.NEAREST
    ).save(out)
    written = [out]
    print(f"input | reconstruction | edit (alpha {alphas[0]:+.2f}) -> {out}")
    if gif:
        frames = edit.dealwithit_frames(
            image[0], editor.encode, editor.decode, editor.direction, alphas[0]
        )
        written.append(edit.save_gif(frames, out.with_suffix(".gif")))
        print(f"DealWithIt GIF -> {out.with_suffix('.gif')}")
    return written


# ---------------------------------------------------------------- everything


def demo(
    data: Path | None = None, image_size: int = 64, epochs: int | None = None, n: int = 20000
) -> dict:
    """synth → prepare → train → vector → evaluate → pictures, printing where each result is.

    A VAE already trained with the same config is reused, so a second
    ``make demo`` only re-runs the cheap steps.
    """
    import time

    from dealwithit.config import JudgeConfig, VAEConfig

    start = time.time()
    data = Path(data) if data is not None else default_data()
    judge_config = None
    if data == DEFAULT_SYNTHETIC:
        # The synthetic eyewear is easy (judge AUC 0.996 after 3 epochs of the small
        # network): keep the demo's budget; real faces get the full JudgeConfig.
        judge_config = JudgeConfig(image_size=image_size, epochs=3, convs_per_stage=1)
    if data == DEFAULT_SYNTHETIC and not (data / "list_attr_celeba.txt").exists():
        synth(data, n)
    workspace = Workspace(data, image_size)
    config = VAEConfig(image_size=image_size)
    if epochs is not None:
        config = config.replace(epochs=epochs)
    train(workspace, config, retrain=False, judge_config=judge_config)
    vector(workspace)
    metrics = evaluate(workspace)
    write_json(Path("outputs") / "metrics.json", metrics)
    paths = pictures(workspace)
    print(f"\nDone in {(time.time() - start) / 60:.1f} min. Look at:")
    for name in ("reconstructions.png", "training_curves.png", "roc.png", "dose_response.png"):
        print(f"  {workspace.outputs / name}")
    print(f"  {paths['slider_grid']}\n  {paths['gif']}\n  outputs/metrics.json")
    return metrics


def run_command(args) -> int:
    """Dispatches parsed CLI arguments (see ``cli.build_parser``); bad settings become ``PipelineError``."""
    try:
        return _run_command(args)
    except (ValueError, FileExistsError) as error:
        # Our own argument and config checks ("Expected image_size divisible by ...")
        # are messages for the user; a ValueError raised inside a library keeps its traceback.
        if _raised_here(error):
            raise PipelineError(str(error)) from error
        raise


def _raised_here(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in this package."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    package = str(Path(__file__).resolve().parent)
    return traceback is not None and traceback.tb_frame.f_code.co_filename.startswith(package)


def _run_command(args) -> int:
    from dealwithit.config import VAEConfig, VectorConfig

    command = args.command
    if command == "synth":
        synth(args.out, args.n, args.seed, args.workers, args.overwrite)
    elif command == "demo":
        demo(args.data, args.image_size, args.epochs, args.n)
    elif command == "notebooks":
        from dealwithit import notebooks

        notebooks.run_all(args.out, small=args.small)
    else:
        data = args.data if args.data is not None else default_data()
        weights = getattr(args, "weights", None)
        if weights is None and command in ("evaluate", "apply"):
            weights = last_weights()
        weights = weights or Workspace(data).weights
        saved_size = _saved_image_size(weights) if command != "train" else None
        image_size = args.image_size or saved_size or 64
        workspace = Workspace(data, image_size, weights=weights)
        if command == "prepare":
            prepare(workspace, overwrite=args.overwrite)
        elif command == "train":
            config = VAEConfig(image_size=image_size)
            overrides = {
                "epochs": args.epochs,
                "latent_dim": args.latent_dim,
                "warmup_epochs": args.warmup_epochs,
                "likelihood": args.likelihood,
                "seed": args.seed,
            }
            if args.no_discriminative:
                overrides["discriminative"] = False
            if args.batch_norm:
                overrides["batch_norm"] = True
            if args.dropout is not None:
                overrides["dropout"] = args.dropout
            config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
            if args.resume and (workspace.vae_dir / "config.json").is_file():
                from dealwithit.model import read_config

                config = read_config(VAEConfig, workspace.vae_dir)
            classifier_config = None
            if args.classifier_epochs is not None:
                from dealwithit.config import AttributeClassifierConfig

                classifier_config = AttributeClassifierConfig(
                    image_size=image_size, epochs=args.classifier_epochs
                )
            judge_config = None
            if args.judge_epochs is not None:
                from dealwithit.config import JudgeConfig

                judge_config = JudgeConfig(image_size=image_size, epochs=args.judge_epochs)
            train(
                workspace,
                config,
                classifier_config,
                resume=args.resume,
                limit=args.limit,
                judge_config=judge_config,
            )
        elif command == "vector":
            config = VectorConfig(attribute=args.attribute)
            if args.conditions is not None:
                config = config.replace(conditions=tuple(args.conditions))
            vector(workspace, config)
        elif command == "evaluate":
            evaluate(workspace, args.json, args.limit, record=args.record)
        elif command == "apply":
            if args.photos:
                apply_photos(
                    workspace.weights,
                    args.photos,
                    args.out,
                    alpha=args.alpha,
                    remove=args.remove,
                    gif=args.gif,
                    face=args.face,
                )
            else:
                apply_dataset_face(
                    workspace,
                    args.index,
                    args.out,
                    alpha=args.alpha,
                    remove=args.remove,
                    gif=args.gif,
                )
    return 0

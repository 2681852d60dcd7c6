"""The steps end to end: synth, prepare, train, vector, evaluate, pictures, apply, demo.

Each step reads and writes files in one ``Workspace`` (the cache,
``weights/<name>/``, ``outputs/<name>/``), so the CLI, the notebooks and a
resumed run share results only through the disk. Each returns a small result
dataclass; its ``report()`` is the text the CLI prints and a notebook can show.
Steps print nothing themselves: notes ("Reusing the VAE ...") go to the
``dealwithit`` logger, which the CLI and ``notebooks.open_workspace`` show.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from dealwithit import (
    atomic,
    data,
    edit,
    eyewear,
    faces,
    model,
    photo_folder,
    plots,
    results,
    synthetic,
    training,
    vectors,
)
from dealwithit import evaluate as edit_metrics  # the module; ``evaluate`` below is the step
from dealwithit.config import AttributeClassifierConfig, JudgeConfig, VAEConfig, VectorConfig

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC = Path("data/synthetic")
DEFAULT_CELEBA = Path("data/celeba")
WEIGHTS_ROOT = Path("weights")
PRETRAINED = WEIGHTS_ROOT / "pretrained"  # shipped real-face weights, the default for photos


def default_data() -> Path:
    """``data/celeba`` when the user has put CelebA there, else the synthetic set."""
    if (DEFAULT_CELEBA / data.ATTRIBUTE_FILE).exists():
        return DEFAULT_CELEBA
    return DEFAULT_SYNTHETIC


def celeba_layout(folder: Path, progress: bool = True) -> Path:
    """``folder`` when it is a CelebA-layout set; for a folder of plain photos, the set cut from it.

    The faces of the photos are aligned into ``data/<folder name>_aligned``
    (``photo_folder.align_folder``, reused while the photos stay the same), with
    every attribute unknown.
    """
    folder = Path(folder)
    if not photo_folder.is_photo_folder(folder):
        return folder
    out = DEFAULT_CELEBA.parent / f"{folder.resolve().name}_aligned"
    result = photo_folder.align_folder(folder, out, progress=progress)
    log.info(result.report())
    return out


class PipelineError(Exception):
    """A step that cannot run yet: say which earlier step to run."""


def _trained(weights: Path) -> bool:
    return (weights / "vae" / model.VAE_FILE).is_file()


def default_weights(for_photos: bool = False) -> Path:
    """The weights folder that ``evaluate`` and ``apply`` use when ``--weights`` is not given.

    In order: ``weights/pretrained`` (photos only: the shipped real-face
    models); ``weights/<default data folder>`` (``weights/celeba`` when
    ``data/celeba`` holds CelebA, else ``weights/synthetic``); otherwise the
    most recently trained folder under ``weights/``, with a one-line note
    naming it and the others. Only folders holding a trained VAE count, so the
    default never points at something that is gone. There is no hidden
    "last trained" pointer: the answer follows from what is on disk.

    Args:
        for_photos: The caller edits photos (``apply PHOTO``).

    Returns:
        A folder holding ``vae/``.

    Raises:
        PipelineError: No trained weights anywhere under ``weights/``.
    """
    preferred = ([PRETRAINED] if for_photos else []) + [WEIGHTS_ROOT / default_data().name]
    for folder in preferred:
        if _trained(folder):
            return folder
    others = []
    if WEIGHTS_ROOT.is_dir():
        others = sorted(
            (folder for folder in WEIGHTS_ROOT.iterdir() if _trained(folder)),
            key=lambda folder: (folder / "vae" / model.VAE_FILE).stat().st_mtime,
            reverse=True,
        )
    if not others:
        raise PipelineError(
            f"Expected trained weights in {preferred[-1]} (or any folder under {WEIGHTS_ROOT}/), "
            "found none. Run `python -m dealwithit train` first, or pass --weights."
        )
    rest = ", ".join(str(folder) for folder in others[1:]) or "none"
    log.info(
        f"Note: no trained model in {preferred[-1]}; using {others[0]}, the most recently "
        f"trained (others: {rest}). Pass --weights to choose."
    )
    return others[0]


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
            object.__setattr__(self, "weights", WEIGHTS_ROOT / name)
        if self.outputs is None:
            # Pictures follow the weights: a plain-VAE run in weights/x_plain draws to outputs/x_plain.
            object.__setattr__(self, "outputs", Path("outputs") / Path(self.weights).name)
        object.__setattr__(self, "weights", Path(self.weights))
        object.__setattr__(self, "outputs", Path(self.outputs))

    @property
    def cache(self) -> Path:
        return data.default_cache_path(self.data, self.image_size)

    @property
    def synthetic(self) -> bool:
        """Whether the data are this project's rendered faces (the renderer writes its factors)."""
        return (self.data / "synthetic_factors.csv").is_file()

    def judge_config(self, **overrides) -> JudgeConfig:
        """The judge for this data: the full ``JudgeConfig`` for real faces, a small one for synthetic.

        The synthetic eyewear is easy (judge AUC 1.000 after 3 epochs of the
        one-conv-per-stage network), so the demo's budget goes to the VAE.
        """
        if self.synthetic:
            overrides = {"epochs": 3, "convs_per_stage": 1, **overrides}
        return JudgeConfig(image_size=self.image_size, **overrides)

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
        """The codes of the data (``codes.npz``) and one folder of directions per attribute."""
        return self.weights / "vectors"


def attribute_vectors(weights: Path, attribute: str) -> Path:
    """The folder of ``attribute``'s directions in a weights folder, checked to exist.

    ``vectors/<attribute>/`` (one per attribute, e.g. Sunglasses and Eyeglasses);
    a folder written before that layout (``vectors/vectors.json``) still serves
    the attribute it was made for.

    Raises:
        PipelineError: No vectors for ``attribute``; says which exist and how to make them.
    """
    root = Path(weights) / "vectors"
    folder = root / attribute
    if (folder / vectors.VECTORS_FILE).is_file():
        return folder
    if (root / vectors.VECTORS_FILE).is_file():
        saved = json.loads((root / vectors.VECTORS_FILE).read_text())
        if saved.get("attribute", "Eyeglasses") == attribute:
            return root
    have = (
        sorted(p.parent.name for p in root.glob(f"*/{vectors.VECTORS_FILE}"))
        if root.is_dir()
        else []
    )
    raise PipelineError(
        f"Expected vectors for {attribute} in {root}, found "
        + (f"only {have}" if have else "none")
        + f". Make them with `python -m dealwithit vector --attribute {attribute} "
        f"--weights {weights}` (add --data for the data set the weights were trained on)."
    )


def save_figure(figure, path: Path) -> Path:
    """Saves a Figure as PNG (creating the folder, atomically) and returns the path."""
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    return path


def _require(path: Path, step: str) -> Path:
    if not path.exists():
        raise PipelineError(
            f"Expected {path}, found nothing. Run `python -m dealwithit {step}` first."
        )
    return path


def held_out_split(cache) -> str:
    """``test`` when the set has one (the synthetic set), else ``valid`` (the shared CelebA subset)."""
    return "test" if len(cache.indices("test")) else "valid"


def as_floats(images: np.ndarray) -> np.ndarray:
    """uint8 faces from the cache as the models' float32 in [0, 1]."""
    return np.asarray(images).astype("float32") / 255.0


# ---------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class SynthResult:
    folder: Path
    n: int

    def report(self) -> str:
        return (
            f"Wrote {self.n} synthetic faces to {self.folder} "
            f"(contact sheet: {self.folder / 'contact_sheet.png'})"
        )


def synth(
    out: Path, n: int = 20000, seed: int = 0, workers=None, overwrite=False, progress=True
) -> SynthResult:
    """Renders the synthetic set in the CelebA layout (see ``synthetic``)."""
    try:
        folder = synthetic.write_synthetic_celeba(
            out, n, seed=seed, workers=workers, overwrite=overwrite, progress=progress
        )
    except synthetic.SyntheticDataExistsError as error:
        raise PipelineError(str(error)) from error
    return SynthResult(Path(folder), n)


@dataclasses.dataclass(frozen=True)
class PrepareResult:
    cache: Path
    counts: dict[str, int]  # faces per split

    def report(self) -> str:
        return f"Cache {self.cache}: {self.counts}"


def prepare(workspace: Workspace, overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """Builds (or reuses) the HDF5 cache of cropped faces for ``workspace.data``."""
    cache = data.prepare_cache(
        workspace.data,
        workspace.cache,
        workspace.image_size,
        progress=progress,
        overwrite=overwrite,
    )
    with data.CelebACache(cache) as opened:
        counts = {split: len(opened.indices(split)) for split in ("train", "valid", "test")}
    return PrepareResult(Path(cache), counts)


def encode_split(
    vae,
    cache,
    split: str,
    limit: int | None = None,
    batch_size: int = 256,
    progress=True,
    keep_images: bool = True,
):
    """Posterior means and log variances of a split, streamed from the cache.

    The one way the package encodes a split: batches stream from the HDF5 file
    (memory stays flat on big splits) and each goes through
    ``model.predict_batches``, which scales uint8 faces and converts outputs.

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
    available = len(cache.indices(split))
    total = available if limit is None else min(limit, available)
    images, means, log_vars = [], [], []
    batches = cache.iter_images(split, batch_size, limit)
    for batch in tqdm(
        batches, total=-(-total // batch_size), desc=f"encode {split}", disable=not progress
    ):
        z_mean, z_log_var = model.predict_batches(vae.encode, batch, batch_size)
        means.append(z_mean)
        log_vars.append(z_log_var)
        if keep_images:
            images.append(batch)
    return (
        (np.concatenate(images) if keep_images else None),
        np.concatenate(means),
        np.concatenate(log_vars),
    )


# ---------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What ``train`` did: the classifiers' held-out accuracy and the VAE's quality."""

    weights: Path
    classifiers: dict[str, dict | None]  # folder name -> accuracy report (None: reused)
    vae_reused: bool
    quality: dict  # see ``evaluate.reconstruction_quality``, on ``n_evaluate`` held-out faces
    faces: np.ndarray = dataclasses.field(repr=False)  # (n_faces, S, S, 3) held out, [0, 1]
    reconstructions: np.ndarray = dataclasses.field(repr=False)  # the same, decoded

    def report(self) -> str:
        lines = []
        for name, accuracy in self.classifiers.items():
            if accuracy is not None:
                lines.append(
                    f"{name}: held-out accuracy {accuracy['mean_accuracy']:.3f} over 40 attributes "
                    f"(majority baseline {accuracy['majority_accuracy']:.3f}); "
                    f"Eyeglasses {accuracy['Eyeglasses']:.3f}"
                )
        lines.append("Held-out reconstruction: " + json.dumps(self.quality))
        return "\n".join(lines)


def train(
    workspace: Workspace,
    vae_config=None,
    classifier_config=None,
    *,
    resume: bool = False,
    limit: int | None = None,
    progress: bool = True,
    retrain: bool = True,
    strategy=None,
    judge_config=None,
    n_evaluate: int = 1000,
    mix: Sequence[Path] = (),
) -> TrainResult:
    """Trains the DR classifier, the independent judge and the VAE; saves pictures and quality.

    A classifier already trained with the same config is reused, so re-running
    ``train`` to try VAE settings does not retrain it. With ``retrain=False``
    (``make demo``) the VAE is reused too when its saved config is the same.
    The VAE trains under ``strategy`` (``training.make_strategy``); the
    classifiers train on each machine alone (same seed, same data). On a
    multi-worker run the workers other than the chief only train
    (``_train_on_worker``), keep no files and return None.
    The first ``n_evaluate`` held-out faces measure the VAE (``vae_report``).
    ``mix`` adds more CelebA-layout folders (labelled or not) to the VAE's
    training faces only: the classifiers, validation and reports use
    ``workspace.data`` alone.
    """
    vae_config = vae_config or VAEConfig(image_size=workspace.image_size)
    classifier_config = classifier_config or AttributeClassifierConfig(
        image_size=workspace.image_size
    )
    cache = prepare(workspace, progress=progress).cache
    caches = [cache] + [
        prepare(Workspace(folder, workspace.image_size), progress=progress).cache for folder in mix
    ]
    if mix and training.is_multi_worker(strategy):
        raise PipelineError("Expected one --data on several machines; mixing sets runs on one.")
    if not training.is_chief(strategy):
        return _train_on_worker(workspace, vae_config, classifier_config, cache, limit, strategy)
    write_source(workspace)
    reports: dict[str, dict | None] = {}
    classifier = None
    if vae_config.discriminative or vae_config.transfer_stages:
        classifier, reports["classifier"] = attribute_classifier(
            workspace.classifier_dir, classifier_config, cache, resume, limit, progress
        )
    judge_config = judge_config or workspace.judge_config()
    _, reports["judge"] = attribute_classifier(
        workspace.judge_dir, judge_config, cache, resume, limit, progress
    )
    saved = workspace.vae_dir / model.CONFIG_FILE
    if (
        not retrain
        and not resume
        and (workspace.vae_dir / model.VAE_FILE).is_file()
        and saved.is_file()
        and model.read_config(VAEConfig, workspace.vae_dir) == vae_config
    ):
        log.info(f"Reusing the VAE in {workspace.vae_dir} (same config); delete it to retrain.")
        return TrainResult(
            workspace.weights, reports, True, *vae_report(workspace, None, n_evaluate)
        )
    log.info(f"Training the VAE ({vae_config.epochs} epochs) -> {workspace.vae_dir}")
    vae, _ = training.train_vae(
        caches,
        vae_config,
        workspace.vae_dir,
        classifier=classifier,
        resume=resume,
        progress=progress,
        limit=limit,
        strategy=strategy,
    )
    result = TrainResult(workspace.weights, reports, False, *vae_report(workspace, vae, n_evaluate))
    training.wait_for_workers(strategy)
    return result


def _train_on_worker(workspace, vae_config, classifier_config, cache, limit, strategy) -> None:
    """``train`` on a multi-worker run's worker other than the chief: the same VAE steps, no files kept.

    The DR classifier is reused from ``workspace`` when it is there with the same
    config (as on the chief), else trained alone into a temporary folder; the
    VAE's files go to a temporary folder too (``training.train_vae``).
    """
    classifier = None
    if vae_config.discriminative:
        with training.worker_directory(workspace.classifier_dir, strategy) as scratch:
            if workspace.classifier_dir.is_dir():
                shutil.copytree(workspace.classifier_dir, scratch)
            classifier, _ = attribute_classifier(
                scratch, classifier_config, cache, False, limit, False
            )
    training.train_vae(
        cache,
        vae_config,
        workspace.vae_dir,
        classifier=classifier,
        progress=False,
        limit=limit,
        strategy=strategy,
    )
    training.wait_for_workers(strategy)  # the chief is still writing its report
    return None


def attribute_classifier(directory, config, cache, resume=False, limit=None, progress=True):
    """Trains an attribute classifier into ``directory``, or reuses the one there with the same config.

    Returns:
        ``(classifier, accuracy report)``; the report is None for a reused classifier.
    """
    config = training.with_cache_attributes(config, cache)
    if (directory / model.CLASSIFIER_FILE).is_file() and (directory / model.CONFIG_FILE).is_file():
        # Compare the small config first; load the model only when it will be reused.
        if model.read_config(type(config), directory) == config:
            log.info(f"Reusing the attribute classifier in {directory}")
            return model.load_classifier(directory)[0], None
    log.info(f"Training an attribute classifier ({config.epochs} epochs) -> {directory}")
    return training.train_attribute_classifier(
        cache, config, directory, resume=resume, progress=progress, limit=limit
    )


def vae_report(workspace: Workspace, vae=None, n_evaluate: int = 1000, n_faces: int = 16):
    """Held-out quality numbers, a reconstruction grid and the training curves, saved.

    Returns:
        ``(quality, faces, reconstructions)``: the numbers on ``n_evaluate``
        held-out faces, and the first ``n_faces`` of them with their reconstructions.
    """
    vae = vae or model.load_vae(_require(workspace.vae_dir, "train"), workspace.image_size)
    with data.CelebACache(workspace.cache) as cache:
        split = held_out_split(cache)
        images, z_mean, z_log_var = encode_split(vae, cache, split, n_evaluate, progress=False)
    reconstructions = model.decoder_fn(vae)(z_mean)
    floats = as_floats(images)
    quality = edit_metrics.reconstruction_quality(floats, z_mean, z_log_var, reconstructions)
    quality["split"] = split
    atomic.write_json(workspace.outputs / "vae_quality.json", quality)
    save_figure(
        plots.reconstruction_figure(floats[:10], reconstructions[:10]),
        workspace.outputs / "reconstructions.png",
    )
    save_figure(
        plots.training_curves_figure(training.read_history(workspace.vae_dir)),
        workspace.outputs / "training_curves.png",
    )
    return quality, floats[:n_faces], reconstructions[:n_faces]


# ---------------------------------------------------------------- vectors


@dataclasses.dataclass(frozen=True)
class VectorResult:
    """The fitted latent classifier and directions, with the held-out numbers and codes.

    The codes are also saved beside the vectors (``vectors.load_codes``), so
    notebook 04 and later steps need not encode the data again.
    """

    config: VectorConfig
    split: str  # the held-out split
    names: list[str]  # attribute names, cache order
    latent_report: dict
    pixel_report: dict
    kinds: list[str]
    kind_cosines: np.ndarray = dataclasses.field(repr=False)  # (kinds, kinds)
    attribute_cosines: dict[str, dict[str, float]] = dataclasses.field(repr=False)
    classifier: vectors.LatentClassifier = dataclasses.field(repr=False)
    directions: dict[str, np.ndarray] = dataclasses.field(repr=False)
    z_train: np.ndarray = dataclasses.field(repr=False)  # (n_train, latent_dim)
    z_held: np.ndarray = dataclasses.field(repr=False)  # (n_held, latent_dim)
    labels_train: np.ndarray = dataclasses.field(repr=False)  # (n_train,) bool
    labels_held: np.ndarray = dataclasses.field(repr=False)  # (n_held,) bool
    held_images: np.ndarray = dataclasses.field(repr=False)  # (n_held, S, S, 3) uint8
    latent_scores: np.ndarray = dataclasses.field(repr=False)  # (n_held,)
    pixel_scores: np.ndarray = dataclasses.field(repr=False)  # (n_held,) the judge's
    paired_cosines: dict | None = None  # synthetic: each kind's cosine with the paired direction
    region: str = "face"  # where the directions act: "face", or "eyes" (spatial grid rows)

    def report(self) -> str:
        confined = (
            "\n  directions confined to the latent grid's rows over the eyes (region 'eyes')"
            if self.region == "eyes"
            else ""
        )
        return (
            vectors.format_report(
                self.config.attribute,
                self.split,
                len(self.labels_held),
                self.latent_report,
                self.pixel_report,
                self.kinds,
                self.kind_cosines,
                self.attribute_cosines[self.config.kind],
                self.config.kind,
            )
            + (
                "\n  cosine with the paired (true) direction: "
                + ", ".join(f"{k} {v:+.3f}" for k, v in self.paired_cosines.items())
                if self.paired_cosines
                else ""
            )
            + confined
        )


def judge_scores(judge, judge_config, images, attribute: str) -> np.ndarray:
    """The judge's probabilities of ``attribute``, ``(n,)``; NaN when it never learned it."""
    names = model.attribute_names(judge_config)
    if attribute not in names:
        return np.full(len(images), np.nan)
    return model.classifier_fn(judge)(images)[:, names.index(attribute)]


def vector(workspace: Workspace, config=None, progress: bool = True) -> VectorResult:
    """Encodes the data once, fits the latent classifier and saves every direction kind.

    The latent classifier and the directions are fitted on the training split
    and reported on the held-out split, next to the pixel-space judge's score
    of the same faces. The codes of both splits are saved with the vectors.
    """
    config = config or VectorConfig()
    vae = model.load_vae(_require(workspace.vae_dir, "train"), workspace.image_size)
    judge, judge_config = model.load_classifier(_require(workspace.judge_dir, "train"))
    cache_path = prepare(workspace, progress=progress).cache
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
        z_train, labels_train, inverse_l2=config.inverse_l2, seed=config.seed
    )
    # The reported AUC comes from a classifier of its own, its penalty chosen by
    # cross-validation on the training codes; auto alpha keeps its calibrated one.
    reporting, latent_report = vectors.latent_auc_report(
        z_train, labels_train, z_held, labels_held, seed=config.seed
    )
    latent_scores = reporting.predict_proba(z_held)
    auto_alpha_report = vectors.classification_report(labels_held, classifier.predict_proba(z_held))
    pixel_scores = judge_scores(judge, judge_config, held_images, config.attribute)
    judged = np.isfinite(pixel_scores).all()  # a judge trained before this attribute existed: no
    pixel_report = vectors.classification_report(labels_held, pixel_scores) if judged else None
    directions = vectors.compute_directions(
        z_train,
        attributes_train,
        names,
        config.attribute,
        config.conditions,
        config.inverse_l2,
        config.seed,
        classifier=classifier,
    )
    pairs = _counterfactual_pairs(workspace.data, held_files, workspace.image_size)
    paired_cosines = None
    if pairs is not None and config.attribute == "Sunglasses":
        # Synthetic only: the renderer's own pairs (held-out faces and their twins) give the
        # true direction, an oracle upper bound every unpaired recipe is measured against.
        sunglasses_after, twins = pairs
        z_twins = model.encoder_fn(vae)(twins)
        z_with = np.where(sunglasses_after[:, None], z_twins, z_held)
        z_without = np.where(sunglasses_after[:, None], z_held, z_twins)
        directions["paired"] = vectors.paired_direction(z_with, z_without)
    region = config.region_for(vae.config.architecture)
    if region == "eyes":
        # A spatial latent's grid rows over the eyes: the edit moves nothing else.
        side, channels = vae.config.spatial_grid()
        rows = data.eye_band_rows(vae.config.image_size)
        mask = vectors.rows_mask(vae.config.image_size, side, channels, rows)
        directions = {kind: vectors.confine(d, mask) for kind, d in directions.items()}
    if "paired" in directions:
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
        "region": region,
        "held_out_split": split,
        "latent_report": latent_report,
        "auto_alpha_report": auto_alpha_report,
        "reporting_classifier": {**reporting.to_dict(), "C": latent_report["C"]},
        "pixel_report": pixel_report,
        "attribute_cosines": attribute_cosines,
        "paired_cosines": paired_cosines,
        "config": config.to_dict(),
    }
    # Codes first: vectors.json, written last, marks a complete folder.
    vectors.save_codes(workspace.vectors_dir, z_train=z_train, z_held=z_held)
    vectors.save_vectors(workspace.vectors_dir / config.attribute, directions, classifier, metadata)
    save_figure(
        plots.roc_figure(
            labels_held,
            {"latent classifier (Z)": latent_scores}
            | ({"pixel judge": pixel_scores} if judged else {}),
            title=f"{config.attribute}: held-out ROC",
        ),
        workspace.outputs / "roc.png",
    )
    save_figure(
        plots.cosine_heatmap_figure(kinds, matrix), workspace.outputs / "direction_cosines.png"
    )
    return VectorResult(
        config=config,
        split=split,
        names=names,
        latent_report=latent_report,
        pixel_report=pixel_report,
        kinds=kinds,
        kind_cosines=np.asarray(matrix),
        attribute_cosines=attribute_cosines,
        classifier=classifier,
        directions=directions,
        z_train=z_train,
        z_held=z_held,
        labels_train=labels_train,
        labels_held=labels_held,
        held_images=held_images,
        latent_scores=latent_scores,
        pixel_scores=pixel_scores,
        paired_cosines=paired_cosines,
        region=region,
    )


# ---------------------------------------------------------------- editing


class Editor:
    """A trained VAE, its directions and latent classifier, ready to edit faces.

    Auto alpha follows the ``target_probability`` of the ``VectorConfig``
    saved with the vectors, so every step edits the way ``vector`` was told to.

    Args:
        weights: A data set's weights folder (``weights/<name>``).
        image_size: The size the caller feeds; must match the weights.
        kind: Direction kind; default: the one saved with the vectors.
        attribute: Whose directions to use (default ``VectorConfig().attribute``,
            Sunglasses); the weights need ``vectors/<attribute>/``.
    """

    def __init__(
        self,
        weights: Path,
        image_size: int | None = None,
        kind: str | None = None,
        attribute: str | None = None,
    ):
        weights = Path(weights)
        self.vae = model.load_vae(_require(weights / "vae", "train"), image_size)
        self.image_size = self.vae.config.image_size
        folder = attribute_vectors(weights, attribute or VectorConfig().attribute)
        self.directions, self.classifier, self.metadata = vectors.load_vectors(
            folder, self.vae.config.latent_dim
        )
        self.vector_config = VectorConfig.from_dict(self.metadata.get("config", {}))
        self.kind = kind or self.metadata.get("kind", self.vector_config.kind)
        self.direction = self.directions[self.kind]
        self.attribute = self.metadata.get("attribute", self.vector_config.attribute)
        self.target_probability = self.vector_config.target_probability
        self.encode = model.encoder_fn(self.vae)
        self.decode = model.decoder_fn(self.vae)

    def alphas(self, z, alpha: float | None = None, remove: bool = False) -> np.ndarray:
        """The offset per face: ``alpha`` as given (sign flipped to remove), else auto.

        Auto alpha takes the latent classifier to ``target_probability`` (or,
        removing, down to ``1 - target_probability``).
        """
        if alpha is not None:
            return np.full(len(z), -abs(alpha) if remove else alpha)
        target = self.target_probability
        if remove:
            return vectors.alpha_for_removal(z, self.direction, self.classifier, 1.0 - target)
        return vectors.alpha_for_probability(z, self.direction, self.classifier, target)

    def decodes(self, crops, alpha=None, remove=False):
        """``(decode(z), decode(z + a v))`` for aligned crops ``(n, S, S, 3)``, one decode batch.

        A photo edit needs both: the residual for the face, the edited decode for opaque lenses.
        """
        return edit.decode_pair(
            crops, self.encode, self.decode, self.direction, lambda z: self.alphas(z, alpha, remove)
        )


def _counterfactual_pairs(data_dir: Path, files, image_size: int):
    """``(sunglasses_after (n,) bool, twins (n, S, S, 3))`` for ``files``, or None without them."""
    listing = data_dir / "counterfactual" / "list_counterfactual.txt"
    twins = _twins(data_dir, files, image_size)
    if twins is None:
        return None
    after = dict(line.split() for line in listing.read_text().splitlines() if line.strip())
    if not all(name in after for name in files):
        return None
    return np.array([after[name] == "1" for name in files]), twins


def _twins(data_dir: Path, files, image_size: int):
    """The renderer's flipped-eyewear twin of each of ``files``, or None when the folder has none."""
    folder = data_dir / "counterfactual"
    if not (folder / "list_counterfactual.txt").is_file():
        return None
    paths = [folder / name for name in files]
    if not all(path.is_file() for path in paths):
        return None
    return as_floats(data.load_faces(paths, image_size))


def _counterfactuals(data_dir: Path, files, image_size: int):
    """The twins of ``files`` and, when rendered, their other sunglasses styles; or None."""
    twins = _twins(data_dir, files, image_size)
    if twins is None:
        return None
    folder = data_dir / "counterfactual" / "styles"
    by_stem: dict[str, list[str]] = {}  # one listing of the folder, not a glob per face
    for entry in os.scandir(folder) if folder.is_dir() else ():
        stem, _, style = entry.name.rpartition("_")
        if stem and style.endswith(".jpg"):
            by_stem.setdefault(stem, []).append(entry.name)
    styles = [sorted(by_stem.get(Path(name).stem, [])) for name in files]
    count = min((len(found) for found in styles if found), default=0)
    if not count:
        return twins
    # (n, 1 + K, S, S, 3): the strict twin first, then other sunglasses styles. Faces that get
    # no sunglasses (they had them) repeat their twin.
    stacked = np.repeat(twins[:, None], 1 + count, axis=1)
    rows = [i for i, found in enumerate(styles) if found]
    faces = data.load_faces([folder / name for i in rows for name in styles[i][:count]], image_size)
    stacked[rows, 1:] = as_floats(faces).reshape(len(rows), count, *twins.shape[1:])
    return stacked


@dataclasses.dataclass(frozen=True)
class EvaluateResult:
    metrics: dict  # see ``evaluate.evaluate_edits``, plus reconstruction, data, split, weights
    json_path: Path
    figure: Path  # the dose-response curves

    def report(self) -> str:
        return edit_metrics.format_table(self.metrics) + f"\nMetrics written to {self.json_path}"


def evaluate(
    workspace: Workspace,
    json_path: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    attribute: str | None = None,
    record: Path | None = None,
) -> EvaluateResult:
    """Flip rates, locality, leakage and (synthetic) counterfactual error on held-out faces.

    Works on any CelebA-layout folder, including faces the model never saw:
    ``workspace.data`` is the folder to judge, ``workspace.weights`` the models.
    The metrics go to ``json_path`` (default ``outputs/<name>/metrics.json``).
    """
    editor = Editor(workspace.weights, workspace.image_size, attribute=attribute)
    judge, judge_config = model.load_classifier(_require(workspace.judge_dir, "train"))
    with data.CelebACache(prepare(workspace, progress=progress).cache) as cache:
        split = held_out_split(cache)
        images, z_mean, z_log_var = encode_split(editor.vae, cache, split, limit, progress=progress)
        labels = cache.attribute(editor.attribute, split)[: len(images)]
        files = cache.files(split)[: len(images)]
    floats = as_floats(images)
    metrics = edit_metrics.evaluate_edits(
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
        target_probability=editor.target_probability,
        removal_probability=1.0 - editor.target_probability,
        counterfactuals=_counterfactuals(workspace.data, files, editor.image_size),
        progress=progress,
    )
    reconstructions = editor.decode(z_mean)
    metrics["reconstruction"] = edit_metrics.reconstruction_quality(
        floats, z_mean, z_log_var, reconstructions
    )
    judge_names = model.attribute_names(judge_config)
    if labels.any() and editor.attribute in judge_names:
        judged = model.classifier_fn(judge)(reconstructions)
        index = judge_names.index(editor.attribute)
        quality = metrics["reconstruction"]
        quality["eyewear_kept_rate"] = edit_metrics.eyewear_kept_rate(judged, labels, index)
        wearers = vectors.as_bool_labels(labels, "labels")
        quality["eyewear_kept_of_seen"], quality["eyewear_seen_in_originals"] = (
            edit_metrics.eyewear_kept_of_seen_rate(
                model.classifier_fn(judge)(floats[wearers]), judged[wearers], labels[wearers], index
            )
        )
        if editor.attribute == "Sunglasses":  # the judge-free check: dark lenses by photometry
            quality["dark_lens_wearers_original"] = eyewear.dark_lens_rate(floats[wearers])
            quality["dark_lens_wearers_reconstructed"] = eyewear.dark_lens_rate(
                np.asarray(reconstructions)[wearers]
            )
    metrics["target_probability"] = editor.target_probability
    metrics["data"] = str(workspace.data)
    metrics["split"] = split
    metrics["weights"] = str(workspace.weights)
    json_path = atomic.write_json(json_path or workspace.outputs / "metrics.json", metrics)
    if record is not None:  # a results record for `make results` (RESULTS.md's tables)
        results.write_record(results.make_record("edits", metrics, results.command_line()), record)
        log.info(f"Record written to {record}")
    figure = save_figure(
        plots.dose_response_figure(
            {
                "adding (negatives)": metrics["alpha_curve"],
                "removing (positives)": metrics["removal_curve"],
            }
        ),
        workspace.outputs / "dose_response.png",
    )
    return EvaluateResult(metrics, Path(json_path), figure)


# ---------------------------------------------------------------- pictures and photos


@dataclasses.dataclass(frozen=True)
class PicturesResult:
    slider_grid: Path
    gif: Path
    reach: float  # median auto alpha of the faces shown

    def report(self) -> str:
        return f"Slider grid -> {self.slider_grid}\nDealWithIt GIF -> {self.gif}"


def pictures(workspace: Workspace, n_faces: int = 6, progress: bool = True) -> PicturesResult:
    """The latent-slider grid and the DealWithIt GIF of held-out faces without the attribute."""
    editor = Editor(workspace.weights, workspace.image_size)
    with data.CelebACache(prepare(workspace, progress=progress).cache) as cache:
        split = held_out_split(cache)
        negatives = np.flatnonzero(~cache.attribute(editor.attribute, split))[:n_faces]
        images = as_floats(cache.images(split)[negatives])
    reach = float(np.median(editor.alphas(editor.encode(images))))
    # Adding only: these faces have nothing to remove. Below zero a spatial latent's eye-row
    # direction paints bright "anti-lenses" where a dense one changed little (RESULTS.md 8d);
    # notebook 04 shows removal on faces that wear the attribute.
    alphas = np.linspace(0.0, 1.5 * reach, 6)
    grid = edit.slider_grid(images, editor.encode, editor.decode, editor.direction, alphas)
    slider_grid = save_figure(
        plots.slider_grid_figure(
            grid,
            alphas,
            title=f"Sliding along the {editor.attribute} direction ({editor.kind})",
        ),
        workspace.outputs / "slider_grid.png",
    )
    frames = edit.dealwithit_frames(
        images[0], editor.encode, editor.decode, editor.direction, 1.2 * reach
    )
    gif = edit.save_gif(frames, workspace.outputs / "dealwithit.gif")
    return PicturesResult(slider_grid, gif, reach)


@dataclasses.dataclass(frozen=True)
class PhotoEdit:
    photo: Path
    faces: int  # faces edited
    output: Path
    gif: Path | None


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    edits: list[PhotoEdit]

    @property
    def written(self) -> list[Path]:
        """Every file written, in order (each photo, then its GIF)."""
        return [path for e in self.edits for path in (e.output, e.gif) if path is not None]

    def report(self) -> str:
        lines = []
        for e in self.edits:
            lines.append(f"{e.photo}: edited {e.faces} face(s) -> {e.output}")
            if e.gif is not None:
                lines.append(f"  DealWithIt GIF -> {e.gif}")
        return "\n".join(lines)


def output_path(photo: Path, out: Path | None, count: int, suffix: str) -> Path:
    """Where ``apply`` writes ``photo``'s edit: ``out`` itself for one photo, else a folder."""
    name = f"{photo.stem}_dealwithit{suffix}"
    if out is None:
        return Path("outputs") / name
    if out.suffix and count == 1:
        return out
    return out / name


SOURCE_FILE = "source.json"


def write_source(workspace: Workspace) -> Path:
    """Records which data a weights folder is trained on (``source.json``), e.g. to warn on photos."""
    values = {"data": str(workspace.data), "synthetic": workspace.synthetic}
    return atomic.write_json(workspace.weights / SOURCE_FILE, values)


def trained_on_synthetic(weights: Path) -> bool:
    """Whether ``weights`` learned from the synthetic faces (by ``source.json``, else its name)."""
    path = Path(weights) / SOURCE_FILE
    if path.is_file():
        return bool(json.loads(path.read_text()).get("synthetic"))
    return "synthetic" in Path(weights).name


def apply_photos(
    weights: Path,
    photos: list[Path],
    out: Path | None = None,
    *,
    alpha: float | None = None,
    remove: bool = False,
    gif: bool = False,
    face: int | None = None,
    attribute: str | None = None,
) -> ApplyResult:
    """Puts sunglasses on every face of each photo (or takes them off) and saves the result.

    Writes ``<stem>_dealwithit.jpg`` (and ``.gif``) beside ``out`` (see ``output_path``).
    The lenses the edit draws are laid on opaquely (``faces.edit_layers``); the GIF
    reuses the one encoding of each face for every frame.
    """
    if trained_on_synthetic(weights):
        log.warning(
            f"Warning: {weights} learned from synthetic faces; on a real photo it changes little. "
            f"Use the shipped real-face weights ({PRETRAINED}, the default for photos) or "
            "weights trained on CelebA."
        )
    editor = Editor(weights, attribute=attribute)
    edits = []
    for photo_path in photos:
        photo = faces.load_photo(photo_path)
        found = faces.detect_faces(photo)
        if not found:
            raise faces.PhotoError(
                f"No face found in {photo_path}. Try a photo with a larger, frontal, well-lit face."
            )
        target = output_path(Path(photo_path), out, len(photos), ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        rest, layers, used = faces.edit_photo(
            photo,
            lambda crops: editor.decodes(crops, alpha, remove),
            faces=found,
            face_index=face,
            image_size=editor.image_size,
            return_layers=True,
        )
        edited = rest
        for layer in layers:
            edited = layer.composite(edited)
        faces.save_photo(edited, target)
        gif_path = None
        if gif:
            frames = faces.dealwithit_photo_frames(photo, edited, layers, used)
            gif_path = edit.save_gif(frames, target.with_suffix(".gif"))
        edits.append(PhotoEdit(Path(photo_path), len(used), target, gif_path))
    return ApplyResult(edits)


@dataclasses.dataclass(frozen=True)
class FaceEditResult:
    index: int
    alpha: float
    output: Path
    gif: Path | None

    @property
    def written(self) -> list[Path]:
        return [self.output] + ([self.gif] if self.gif is not None else [])

    def report(self) -> str:
        text = f"input | reconstruction | edit (alpha {self.alpha:+.2f}) -> {self.output}"
        return text + (f"\nDealWithIt GIF -> {self.gif}" if self.gif is not None else "")


def apply_dataset_face(
    workspace: Workspace,
    index: int = 0,
    out: Path | None = None,
    *,
    alpha=None,
    remove=False,
    gif=False,
    attribute: str | None = None,
) -> FaceEditResult:
    """Edits one held-out face of the data set: before/after PNG and optionally the GIF."""
    editor = Editor(workspace.weights, workspace.image_size, attribute=attribute)
    with data.CelebACache(prepare(workspace, progress=False).cache) as cache:
        split = held_out_split(cache)
        count = len(cache.indices(split))
        if not 0 <= index < count:
            raise PipelineError(f"Expected --index in [0, {count - 1}]. Received: {index}")
        image = as_floats(cache.images(split, limit=index + 1)[index:])
    z = editor.encode(image)
    alphas = editor.alphas(z, alpha, remove)
    # Reconstruction and edit in one decoder call.
    plain, edited = editor.decode(
        np.concatenate([z, edit.apply_direction(z, editor.direction, alphas)])
    )
    row = np.concatenate([image[0], plain, edited], axis=1)
    out = out or workspace.outputs / f"face_{index}_dealwithit.png"
    picture = Image.fromarray((np.clip(row, 0, 1) * 255).round().astype("uint8"))
    picture = picture.resize((row.shape[1] * 4, row.shape[0] * 4), Image.Resampling.NEAREST)
    with atomic.atomic_path(out) as temporary:
        picture.save(temporary, format="PNG")
    gif_path = None
    if gif:
        frames = edit.dealwithit_frames(
            image[0], editor.encode, editor.decode, editor.direction, alphas[0]
        )
        gif_path = edit.save_gif(frames, out.with_suffix(".gif"))
    return FaceEditResult(index, float(alphas[0]), out, gif_path)


# ---------------------------------------------------------------- everything


@dataclasses.dataclass(frozen=True)
class DemoResult:
    metrics: dict
    pictures: list[Path]  # every picture to look at, in run order
    minutes: float
    step_minutes: dict = dataclasses.field(default_factory=dict)  # step -> minutes, in run order

    def report(self) -> str:
        steps = ", ".join(f"{name} {minutes:.1f}" for name, minutes in self.step_minutes.items())
        lines = [
            f"\nDone in {self.minutes:.1f} min" + (f" ({steps})" if steps else "") + ". Look at:"
        ]
        lines += [f"  {path}" for path in self.pictures]
        return "\n".join(lines + ["  outputs/metrics.json"])


def demo(
    data_dir: Path | None = None,
    image_size: int = 64,
    epochs: int | None = None,
    n: int = 20000,
    report=None,
) -> DemoResult:
    """synth → prepare → train → vector → evaluate → pictures.

    A VAE already trained with the same config is reused, so a second
    ``make demo`` only re-runs the cheap steps.

    Args:
        data_dir: A CelebA-layout folder; default ``default_data()``.
        image_size: Pixels per side.
        epochs: VAE epochs (default: the config's).
        n: Synthetic faces to render when the synthetic set is missing.
        report: Called with each step's result as it finishes (the CLI prints them).
    """
    report = report or (lambda result: None)
    start = time.time()
    step_minutes = {}

    def step(name, run, *args, **kwargs):
        # Each step's wall time goes into the final report: where a demo's minutes went.
        began = time.time()
        result = run(*args, **kwargs)
        step_minutes[name] = (time.time() - began) / 60
        report(result)
        return result

    folder = Path(data_dir) if data_dir is not None else default_data()
    if folder == DEFAULT_SYNTHETIC and not (folder / data.ATTRIBUTE_FILE).exists():
        step("synth", synth, folder, n)
    workspace = Workspace(folder, image_size)
    config = VAEConfig(image_size=image_size)
    if epochs is not None:
        config = config.replace(epochs=epochs)
    step("train", train, workspace, config, retrain=False)
    step("vector", vector, workspace)
    evaluated = step("evaluate", evaluate, workspace)
    atomic.write_json(Path("outputs") / "metrics.json", evaluated.metrics)
    drawn = step("pictures", pictures, workspace)
    names = ("reconstructions.png", "training_curves.png", "roc.png", "dose_response.png")
    shown = [workspace.outputs / name for name in names] + [drawn.slider_grid, drawn.gif]
    if _trained(PRETRAINED):
        (Path("outputs") / "photos").mkdir(parents=True, exist_ok=True)
        photo = faces.save_photo(example_photo(), Path("outputs") / "photos" / "astronaut.png")
        edited = step(
            "photo", apply_photos, PRETRAINED, [photo], Path("outputs") / "pretrained", gif=True
        )
        shown += [path for edit_ in edited.edits for path in (edit_.output, edit_.gif)]
    return DemoResult(evaluated.metrics, shown, (time.time() - start) / 60, step_minutes)


def example_photo() -> np.ndarray:
    """A real public-domain portrait to try photo edits on: NASA's astronaut, 512x512.

    It ships inside the scikit-image wheel (``skimage.data.astronaut``), so no
    download is needed.
    """
    from skimage import data as skimage_data  # only the demo and notebook 04 need it

    return np.asarray(skimage_data.astronaut(), dtype=np.uint8)


# ---------------------------------------------------------------- shipping weights


@dataclasses.dataclass(frozen=True)
class PackResult:
    folder: Path
    sizes: dict  # file -> bytes

    def report(self) -> str:
        total = sum(self.sizes.values()) / 2**20
        lines = [f"{name}: {size / 2**20:.1f} MB" for name, size in sorted(self.sizes.items())]
        return "\n".join([f"Packed {self.folder} ({total:.1f} MB):", *lines])


def pack(weights: Path, out: Path, judge: Path | None = None) -> PackResult:
    """Copies a trained weights folder for inference only: what ``apply`` and ``evaluate`` read.

    Models are saved without optimizer state (a third of a training folder's
    size), the classifier and judge with float16 weights (half again); every attribute's vectors are kept, the encoded data (``codes.npz``)
    is not. Used to make the shipped ``weights/pretrained``.

    Args:
        weights: A trained folder (``vae/``, ``classifier/``, ``judge/``, ``vectors/<attribute>/``).
        out: The folder to write (replaced).
        judge: Another judge folder to ship instead of ``weights/judge``.
    """
    weights, out = Path(weights), Path(out)
    if out.exists():
        shutil.rmtree(out)
    model.save_vae(model.load_vae(_require(weights / "vae", "train")), out / "vae")
    for name, source in (
        ("classifier", weights / "classifier"),
        ("judge", judge or weights / "judge"),
    ):
        classifier, config = model.load_classifier(_require(source, "train"))
        # Uncompiled (no optimizer state) and stored in float16: the shipped folder stays
        # under 25 MB; load_classifier computes in float32 again.
        model.save_classifier(model.with_variable_dtype(classifier, "float16"), config, out / name)
        for report in source.glob("attribute_*.json"):
            shutil.copy2(report, out / name / report.name)
    for folder in sorted((weights / "vectors").glob(f"*/{vectors.VECTORS_FILE}")):
        shutil.copytree(folder.parent, out / "vectors" / folder.parent.name)
    for name in (SOURCE_FILE, "vae/history.csv"):
        if (weights / name).is_file():
            shutil.copy2(weights / name, out / name)
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    return PackResult(out, sizes)

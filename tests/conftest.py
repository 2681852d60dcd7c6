"""Shared fixtures: small CelebA-layout folders and tiny weights folders built in ``tmp_path``.

The folders are written here, independently of ``dealwithit.synthetic``, so the
loader tests do not depend on the face renderer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from dealwithit import model, vectors
from dealwithit.config import AttributeClassifierConfig, VAEConfig
from dealwithit.data import ALIGNED_SIZE, CELEBA_ATTRIBUTES

REPO_ROOT = Path(__file__).resolve().parents[1]

# Partition code of image i is PARTITION_PATTERN[i % 6]: 24 images give 16/4/4.
PARTITION_PATTERN = (0, 0, 0, 0, 1, 2)


def _face_like(index: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth, unique (height, width, 3) uint8 picture: gradients plus a blob."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-0.5, 0.5, size=(2, 3))
    image = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    cx, cy = width / 2 + (index % 7) * 3, height / 2 + (index % 5) * 3
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 25.0**2))
    image += blob[..., None] * rng.uniform(-60, 60, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode(array: np.ndarray, mode: str) -> bytes:
    """JPEG bytes for RGB/L/CMYK; PNG bytes (under a .jpg name) for RGBA/P."""
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    if mode in ("RGB", "L", "CMYK"):
        image.convert(mode).save(buffer, "JPEG", quality=92)
    elif mode == "RGBA":
        alpha = np.full(array.shape[:2], 255, np.uint8)
        alpha[:, : array.shape[1] // 4] = 128
        Image.fromarray(np.dstack([array, alpha]), "RGBA").save(buffer, "PNG")
    elif mode == "P":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buffer, "PNG")
    else:
        raise ValueError(f"Expected mode in RGB, L, CMYK, RGBA, P. Received: mode={mode!r}")
    return buffer.getvalue()


def write_celeba(
    root: Path,
    n: int = 24,
    *,
    partition: bool = True,
    modes: Mapping[int, str] | None = None,
    truncated: Sequence[int] = (),
    garbage: Sequence[int] = (),
    missing: Sequence[int] = (),
    attribute_lines: Mapping[int, str] | None = None,
    size: tuple[int, int] = ALIGNED_SIZE,
    seed: int = 0,
) -> Path:
    """Writes a CelebA-layout folder and returns its path.

    Args:
        root: Folder to create.
        n: Number of images, named 000001.jpg, 000002.jpg, ...
        partition: Write list_eval_partition.txt (codes from PARTITION_PATTERN).
        modes: Image index -> "L", "CMYK", "RGBA" or "P" (the last two as PNG
            bytes under a .jpg name, as found in scraped copies).
        truncated: Indices whose JPEG is cut to 60 % of its bytes.
        garbage: Indices whose file holds bytes that are no image at all.
        missing: Indices listed in the attribute file but not written.
        attribute_lines: 1-based line number of list_attr_celeba.txt -> text
            that replaces the line (to make malformed files).
        size: (width, height) of the images.
        seed: Seed of the pictures and the attribute values.
    """
    rng = np.random.default_rng(seed)
    modes = dict(modes or {})
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    values = rng.choice(np.array([-1, 1], np.int8), size=(n, len(CELEBA_ATTRIBUTES)))
    for i, name in enumerate(files):
        data = _encode(_face_like(i, size, rng), modes.get(i, "RGB"))
        if i in truncated:
            data = data[: int(len(data) * 0.6)]
        if i in garbage:
            data = b"this is not an image"
        if i not in missing:
            (images / name).write_bytes(data)
    # Official spacing: values right-aligned in width 2, a trailing space after the names.
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(files, values)]
    for number, text in (attribute_lines or {}).items():
        lines[number - 1] = text
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        codes = [PARTITION_PATTERN[i % len(PARTITION_PATTERN)] for i in range(n)]
        text = "".join(f"{name} {code}\n" for name, code in zip(files, codes))
        (root / "list_eval_partition.txt").write_text(text)
    return root


@pytest.fixture
def make_celeba(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_celeba(name="celeba", **variants)`` -> a fresh folder.

    Variants are the keyword arguments of ``write_celeba`` (no partition file,
    grayscale/RGBA/CMYK/P images, truncated or garbage JPEGs, missing images,
    malformed attribute lines, odd sizes).
    """

    def make(name: str = "celeba", **variants: object) -> Path:
        return write_celeba(tmp_path / name, **variants)  # type: ignore[arg-type]

    return make


@pytest.fixture
def tiny_celeba(make_celeba: Callable[..., Path]) -> Path:
    """24 small-gradient 178x218 JPEGs with attribute and partition files (16/4/4)."""
    return make_celeba()


@pytest.fixture(scope="session")
def shared_celeba() -> Path:
    """The read-only real CelebA subset beside the repo (../shared/data/celeba)."""
    root = (REPO_ROOT / ".." / "shared" / "data" / "celeba").resolve()
    if not (root / "list_attr_celeba.txt").is_file():
        pytest.skip(f"real CelebA subset not found at {root}")
    return root


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 rendered synthetic faces in the CelebA layout (shared by the training tests)."""
    from dealwithit import synthetic

    return synthetic.write_synthetic_celeba(
        tmp_path_factory.mktemp("synthetic") / "synthetic", 96, seed=0, workers=1, progress=False
    )


@pytest.fixture(scope="session")
def synthetic_cache(synthetic_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic faces cropped to 16x16 in an HDF5 cache (76/10/10 split)."""
    from dealwithit import data

    return data.prepare_cache(
        synthetic_folder, tmp_path_factory.mktemp("cache") / "synthetic_16.h5", 16, progress=False
    )


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    """An untrained 16x16 attribute CNN (40 outputs), for the VAE model tests.

    Module-scoped: a test file may train a VAE against it, never the classifier
    itself (it stays frozen), so sharing it within a file is safe.
    """
    return model.build_attribute_classifier(
        AttributeClassifierConfig(image_size=16, filters=(8, 16))
    )


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """``(8, 16, 16, 3)`` float32 uniform in [0, 1], seeded: a batch for the model tests."""
    return np.random.default_rng(0).random((8, 16, 16, 3)).astype("float32")


# A VAE small enough to build in a fraction of a second (16x16 faces, 4 latents in one vector).
TINY_VAE = VAEConfig(
    image_size=16,
    architecture="conv",
    filters=(8, 16),
    latent_dim=4,
    batch_size=16,
    discriminative=False,
)
TINY_DIRECTION = np.array([1.0, 0.0, 0.0, 0.0])


def write_weights(
    folder: Path,
    vector_config: dict | None = None,
    judge: bool = False,
    classifier: vectors.LatentClassifier | None = None,
) -> Path:
    """A weights folder as ``train`` + ``vector`` leave it: an untrained tiny ``vae/`` and ``vectors/``.

    Args:
        folder: Where to write (``<folder>/vae``, ``<folder>/vectors``).
        vector_config: The ``VectorConfig`` dict saved with the vectors (None: none saved).
        judge: Also save an untrained 16x16 judge in ``<folder>/judge``.
        classifier: The latent classifier; default ``w = e_0``, ``b = 0``.
    """
    model.save_vae(model.build_vae(TINY_VAE), folder / "vae")
    metadata: dict = {"attribute": "Sunglasses", "kind": "conditional"}
    if vector_config is not None:
        metadata["config"] = vector_config
    vectors.save_vectors(
        folder / "vectors" / "Sunglasses",
        {"conditional": TINY_DIRECTION},
        classifier or vectors.LatentClassifier(weights=TINY_DIRECTION, bias=0.0),
        metadata,
    )
    if judge:
        write_judge(folder)
    return folder


def write_judge(folder: Path) -> Path:
    """An untrained 16x16 judge over CelebA's 40 attributes and Sunglasses in ``<folder>/judge``."""
    config = AttributeClassifierConfig(
        image_size=16,
        filters=(8, 16),
        dense_units=8,
        attribute_names=(*CELEBA_ATTRIBUTES, "Sunglasses"),
    )
    model.save_classifier(model.build_attribute_classifier(config), config, folder / "judge")
    return folder / "judge"


@pytest.fixture(scope="session")
def make_weights() -> Callable[..., Path]:
    """``write_weights`` as a fixture: ``make_weights(folder, vector_config=None, judge=False, classifier=None)``."""
    return write_weights


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (the CLI writes data/cache, weights/, outputs/ under it)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work

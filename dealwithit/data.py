"""CelebA reading, the HDF5 cache and the training dataset.

Reads the standard aligned layout (``img_align_celeba/*.jpg``,
``list_attr_celeba.txt``, optional ``list_eval_partition.txt``), crops and
resizes each face once into an HDF5 cache, and streams batches from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import math
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from PIL import Image, ImageFile
from tqdm.auto import tqdm

from dealwithit import eyewear
from dealwithit.frame import (  # noqa: F401 (the geometry is re-exported for the loader's users)
    ALIGNED_SIZE,
    CROP_BOX,
    EYE_BAND,
    LANDMARK_TEMPLATE,
    eye_band_rows,
)

if TYPE_CHECKING:
    import tensorflow as tf

# The 40 attributes in the order of CelebA's list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


# ## Layout and errors

CELEBA_URL = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"

# Partition codes of list_eval_partition.txt.
SPLITS = {"train": 0, "valid": 1, "test": 2}

# Images per HDF5 chunk: a 64x64 chunk is 786 KB, one cheap contiguous read, and
# the unit of both resumable builds and block-shuffled streaming.
CHUNK_IMAGES = 64

# Bumped whenever the cache layout changes, so old caches are rebuilt, not misread.
# Format 2 adds ``lens_cheek_ratio`` (the derived Sunglasses attribute).
CACHE_FORMAT = 2


class DataError(Exception):
    """A problem with the data on disk, explained for the person who can fix it."""


def _how_to_get_celeba(root: Path) -> str:
    return (
        f"CelebA comes from {CELEBA_URL}: put the 'Align&Cropped Images' in {root / IMAGE_DIR}/ "
        f"and Anno/{ATTRIBUTE_FILE} and Eval/{PARTITION_FILE} in {root}/ (directly or in Anno/ "
        "and Eval/ subfolders). Or run `python -m dealwithit synth` to render a synthetic set "
        "in the same layout."
    )


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            f"Expected a CelebA folder at {root}, found no such folder. " + _how_to_get_celeba(root)
        )
    return root


def _find_file(root: Path, name: str, subfolder: str) -> Path | None:
    """The official archive keeps the lists in Anno/ and Eval/; many copies flatten them."""
    for path in (root / name, root / subfolder / name):
        if path.is_file():
            return path
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(
            f"Expected {path} to be a plain-text CelebA list, found bytes that are not text "
            f"({error}). Re-download the file."
        ) from error


# ## Attributes and partitions


@dataclasses.dataclass(frozen=True, eq=False)
class Attributes:
    """The contents of ``list_attr_celeba.txt``.

    Attributes:
        names: The attribute names of line 2, e.g. ``CELEBA_ATTRIBUTES``.
        files: Image file names, one per row, e.g. ``"000001.jpg"``.
        values: int8 array of shape ``(n, len(names))`` holding +1 (has the
            attribute) or -1 (does not). Read-only.
    """

    names: tuple[str, ...]
    files: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        self.values.setflags(write=False)

    def __len__(self) -> int:
        return len(self.files)


def read_attributes(root: str | os.PathLike) -> Attributes:
    """Reads CelebA's attribute list in its official format.

    Line 1 is the number of images, line 2 the attribute names, and every other
    line a file name followed by one value (1 or -1) per name, separated by any
    whitespace. Any number of names is accepted as long as each row has one
    value per name; real CelebA has the 40 of ``CELEBA_ATTRIBUTES``. A 0 means
    unknown: faces cut from ordinary photos (``photo_folder``) are written with
    every value 0, and such rows never reach the attribute classifiers.

    Args:
        root: CelebA folder holding ``list_attr_celeba.txt`` (or
            ``Anno/list_attr_celeba.txt``).

    Returns:
        An ``Attributes`` with ``values`` of shape ``(n, 40)`` for CelebA.

    Raises:
        DataError: The folder or file is missing, or a line is malformed
            (the message names the file and the line number).
    """
    root = _check_root(root)
    path = _find_file(root, ATTRIBUTE_FILE, "Anno")
    if path is None:
        raise DataError(
            f"Expected CelebA's attribute list at {root / ATTRIBUTE_FILE}, found no such file. "
            + _how_to_get_celeba(root)
        )
    lines = _read_lines(path)
    if len(lines) < 2:
        raise DataError(
            f"Expected {path} to start with an image count (line 1) and the attribute names "
            f"(line 2), found only {len(lines)} line(s). Re-download {ATTRIBUTE_FILE}."
        )
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(
            f"{path} line 1: expected the number of images, found {lines[0].strip()!r}. "
            f"Re-download {ATTRIBUTE_FILE}."
        ) from None
    names = tuple(lines[1].split())
    if not names:
        raise DataError(
            f"{path} line 2: expected the attribute names, found an empty line. "
            f"Re-download {ATTRIBUTE_FILE}."
        )
    columns = len(names) + 1
    files: list[str] = []
    rows: list[list[str]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != columns:
            raise DataError(
                f"{path} line {number}: expected {columns} columns (a file name and one value for "
                f"each of the {len(names)} names on line 2), found {len(parts)}. Fix the line or "
                f"re-download {ATTRIBUTE_FILE}."
            )
        values = parts[1:]
        if not _PLUS_MINUS_ONE.issuperset(values):
            column = next(i for i, value in enumerate(values) if value not in _PLUS_MINUS_ONE)
            raise DataError(
                f"{path} line {number}: expected every value to be 1, -1 or 0 (unknown), found "
                f"{values[column]!r} for {names[column]}. Fix the line or re-download "
                f"{ATTRIBUTE_FILE}."
            )
        if parts[0] in first_line:
            raise DataError(
                f"{path} line {number}: expected each image once, found {parts[0]} again "
                f"(first on line {first_line[parts[0]]}). Remove the duplicate line."
            )
        first_line[parts[0]] = number
        files.append(parts[0])
        rows.append(values)
    if len(files) != count:
        raise DataError(
            f"{path} line 1: expected {count} image rows as line 1 says, found {len(files)}. "
            f"The file is probably truncated: re-download {ATTRIBUTE_FILE} (or correct line 1)."
        )
    if not files:
        raise DataError(f"Expected at least one image in {path}, found none.")
    table = np.asarray(rows, dtype="U2")
    values = np.select([table == "1", table == "-1"], [1, -1], 0).astype(np.int8)
    return Attributes(names=names, files=tuple(files), values=values)


_PLUS_MINUS_ONE = frozenset({"1", "-1", "0"})


def seeded_split(
    n: int, seed: int | Sequence[int] = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> np.ndarray:
    """A reproducible random train/valid/test split (CelebA without a partition file, synthetic).

    Args:
        n: Number of images.
        seed: Seed of the permutation (anything ``np.random.default_rng`` takes).
        fractions: Shares of (train, valid, test), non-negative, summing to 1.

    Returns:
        int8 array of shape ``(n,)`` with 0 (train), 1 (valid) or 2 (test);
        the split sizes are ``round(fraction * n)`` (test takes the rest).
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(
            "Expected fractions to be three non-negative numbers (train, valid, test) summing "
            f"to 1. Received: fractions={fractions}"
        )
    n_train = int(round(fractions[0] * n))
    n_valid = min(int(round(fractions[1] * n)), n - n_train)
    order = np.random.default_rng(seed).permutation(n)
    split = np.full(n, SPLITS["test"], dtype=np.int8)
    split[order[:n_train]] = SPLITS["train"]
    split[order[n_train : n_train + n_valid]] = SPLITS["valid"]
    return split


def read_partition(
    root: str | os.PathLike,
    files: Sequence[str],
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> np.ndarray:
    """The train/valid/test partition of ``files``.

    Uses ``list_eval_partition.txt`` when the folder has one (CelebA's official
    split keeps each identity in one partition). Without it, falls back to
    ``seeded_split`` and warns once: a random split mixes identities across
    partitions, which flatters validation numbers on real faces.

    Args:
        root: CelebA folder.
        files: Image file names, e.g. ``read_attributes(root).files``.
        seed: Seed of the fallback split.
        fractions: (train, valid, test) shares of the fallback split.

    Returns:
        int8 array of shape ``(len(files),)``: 0 train, 1 valid, 2 test.

    Raises:
        DataError: The partition file is malformed or leaves out some files.
    """
    root = _check_root(root)
    files = list(files)
    path = _find_file(root, PARTITION_FILE, "Eval")
    if path is None:
        warnings.warn(
            f"No {PARTITION_FILE} in {root}: using a seeded random split instead (seed={seed}, "
            f"train/valid/test fractions={tuple(fractions)}).",
            stacklevel=2,
        )
        return seeded_split(len(files), seed=seed, fractions=fractions)
    listed: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path} line {number}: expected '<file> <0|1|2>' (0 train, 1 valid, 2 test), "
                f"found {line.strip()!r}. Fix the line or re-download {PARTITION_FILE}."
            )
        listed[parts[0]] = int(parts[1])
    unlisted = [name for name in files if name not in listed]
    if unlisted:
        raise DataError(
            f"Expected {path} to give a partition for every image of {ATTRIBUTE_FILE}, found "
            f"{len(unlisted)} of {len(files)} missing, e.g. {unlisted[:5]}. Use the "
            f"{PARTITION_FILE} that belongs to the attribute list, or delete it to get a seeded "
            "random split."
        )
    return np.fromiter((listed[name] for name in files), dtype=np.int8, count=len(files))


# ## The HDF5 cache


def default_cache_path(root: str | os.PathLike, image_size: int, limit: int | None = None) -> Path:
    """Where ``prepare_cache`` puts a cache by default.

    The cache lives under the working directory, not beside the images,
    because the image folder may be read-only (a shared copy of CelebA).

    Args:
        root: CelebA folder.
        image_size: Side of the cached squares in pixels.
        limit: If set, the cache holds only the first ``limit`` images and
            the name says so, so it never collides with the full cache.

    Returns:
        ``<cwd>/data/cache/<root folder name>_<image_size>[_first<limit>].h5``.
    """
    name = Path(root).expanduser().resolve().name or "celeba"
    suffix = f"_first{limit}" if limit is not None else ""
    return Path.cwd() / "data" / "cache" / f"{name}_{image_size}{suffix}.h5"


def _image_dir(root: Path) -> Path:
    folder = root / IMAGE_DIR
    # Some mirrors unpack the zip into img_align_celeba/img_align_celeba/.
    if (folder / IMAGE_DIR).is_dir():
        folder = folder / IMAGE_DIR
    if not folder.is_dir():
        raise DataError(
            f"Expected CelebA's images in {root / IMAGE_DIR}/, found no such folder. "
            + _how_to_get_celeba(root)
        )
    return folder


def check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    """The package's one check of a count: an integer >= 1 (bools refused), else ValueError."""
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")


def _load_face(path: Path, image_size: int) -> tuple[np.ndarray, bool, float]:
    """Decodes one aligned face, crops ``CROP_BOX`` and resizes it.

    Returns:
        The face, uint8 of shape ``(image_size, image_size, 3)``; whether
        the image had an unexpected size (its crop box was scaled to fit); and
        its lens/cheek ratio on the whole frame (``eyewear.lens_cheek_ratio``).

    Raises:
        Exception: Whatever the decoder raises for a corrupt or truncated file.
    """
    with Image.open(path) as image:
        image.load()  # Decode now, so truncation raises here (see _strict_decoding).
        if image.mode != "RGB":
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")
            # Alpha is dropped: the colour under a transparent pixel is kept as is.
            image = image.convert("RGB")
        odd_size = image.size != ALIGNED_SIZE
        face = crop_face(image, image_size)
        ratio = float(eyewear.lens_cheek_ratio(np.asarray(image))[0])
        return face, odd_size, ratio


def crop_face(frame: Any, image_size: int = 64) -> np.ndarray:
    """Crops ``CROP_BOX`` out of an aligned frame and resizes it, exactly as the cache does.

    Args:
        frame: An RGB PIL image or uint8 ``(H, W, 3)`` array of the aligned frame
            (178x218, or another size whose crop box is scaled to fit).
        image_size: Side of the square result.

    Returns:
        uint8 ``(image_size, image_size, 3)``.
    """
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame))
    sx, sy = image.size[0] / ALIGNED_SIZE[0], image.size[1] / ALIGNED_SIZE[1]
    left, top, right, bottom = CROP_BOX
    box = (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
    # Crop first, then resize (as PyTorch-VAE's CenterCrop + Resize): the filter
    # sees only the crop. Lanczos keeps faces sharp when shrinking 148 -> 64 px;
    # the reducing gap only acts on shrinks of 6x or more (tiny caches).
    face = image.crop(box).resize(
        (image_size, image_size), Image.Resampling.LANCZOS, reducing_gap=3.0
    )
    return np.asarray(face, dtype=np.uint8)


def load_face(path: str | os.PathLike, image_size: int = 64) -> np.ndarray:
    """One aligned CelebA-frame JPEG cropped and resized exactly as the cache does.

    Returns:
        uint8 ``(image_size, image_size, 3)``.
    """
    return _load_face(Path(path), image_size)[0]


def load_faces(paths: Sequence[str | os.PathLike], image_size: int = 64) -> np.ndarray:
    """Many aligned frames, each as ``load_face``, decoded on a thread pool (PIL drops the GIL).

    Returns:
        uint8 ``(len(paths), image_size, image_size, 3)``.
    """
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        faces = list(pool.map(lambda path: load_face(path, image_size), paths))
    return np.stack(faces) if faces else np.zeros((0, image_size, image_size, 3), np.uint8)


def _decode_ahead(
    pool: ThreadPoolExecutor | None,
    paths: Sequence[Path],
    start: int,
    block: int,
    image_size: int,
) -> Iterator[tuple[int, list[Future]]]:
    """Yields (first index, futures) per block, keeping a few blocks decoding ahead."""

    def run(path: Path) -> Future:
        if pool is not None:
            return pool.submit(_load_face, path, image_size)
        future: Future = Future()
        try:
            future.set_result(_load_face(path, image_size))
        except Exception as error:  # recorded, reported as a skipped image
            future.set_exception(error)
        return future

    pending: deque[tuple[int, list[Future]]] = deque()
    for first in range(start, len(paths), block):
        pending.append((first, [run(path) for path in paths[first : first + block]]))
        if len(pending) > 2:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def _build_key(source: Path, image_size: int, listed: int, partition_source: str) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "source": str(source),
        "image_size": int(image_size),
        "crop_box": list(CROP_BOX),
        "listed": int(listed),
        "partition_source": partition_source,
    }


def _key_of(attrs: h5py.AttributeManager) -> dict[str, Any] | None:
    try:
        return {
            "format": int(attrs["format"]),
            "source": str(attrs["source"]),
            "image_size": int(attrs["image_size"]),
            "crop_box": [int(v) for v in attrs["crop_box"]],
            "listed": int(attrs["listed"]),
            "partition_source": str(attrs["partition_source"]),
        }
    except (KeyError, TypeError, ValueError):
        return None


def _existing_cache_key(path: Path) -> dict[str, Any] | None:
    """The build key of a complete cache at ``path``, or None if it is not one."""
    try:
        with h5py.File(path, "r") as file:
            if not bool(file.attrs.get("complete", False)):
                return None
            return _key_of(file.attrs)
    except OSError:
        return None


def _open_partial(
    partial: Path,
    key: dict[str, Any],
    inputs_digest: str,
    names: Sequence[str],
    image_size: int,
    overwrite: bool,
    name_bytes: int = 255,
) -> h5py.File:
    """Opens a matching ``.partial`` build to resume, or starts a fresh one.

    File names are stored as fixed-length strings: variable-length ones live
    in HDF5's global heap, which a build killed between a write and its flush
    can leave corrupt in a file that otherwise resumes.
    """
    chunk_bytes = CHUNK_IMAGES * image_size * image_size * 3
    cache_bytes = max(1 << 20, 4 * chunk_bytes)
    if partial.exists() and not overwrite:
        try:
            file = h5py.File(partial, "r+", rdcc_nbytes=cache_bytes)
        except OSError:
            file = None  # Killed mid-write: unreadable, start again.
        if file is not None:
            if _key_of(file.attrs) == key and file.attrs.get("inputs_sha1") == inputs_digest:
                written = int(file.attrs["written"])
                for name in ("images", "attributes", "files", "partition", "lens_cheek_ratio"):
                    file[name].resize(written, axis=0)
                file["skipped"].resize(int(file.attrs["skipped"]), axis=0)
                return file
            file.close()
    partial.unlink(missing_ok=True)
    file = h5py.File(partial, "w", rdcc_nbytes=cache_bytes)
    size = int(image_size)
    file.create_dataset(
        "images",
        shape=(0, size, size, 3),
        maxshape=(None, size, size, 3),
        chunks=(CHUNK_IMAGES, size, size, 3),
        dtype=np.uint8,
    )
    file.create_dataset(
        "attributes",
        shape=(0, len(names)),
        maxshape=(None, len(names)),
        chunks=(1024, len(names)),
        dtype=np.int8,
    )
    strings = h5py.string_dtype("utf-8", int(name_bytes))
    file.create_dataset("files", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=strings)
    file.create_dataset("partition", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=np.int8)
    file.create_dataset(
        "lens_cheek_ratio", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=np.float32
    )
    file.create_dataset("skipped", shape=(0,), maxshape=(None,), chunks=(256,), dtype=strings)
    for name, value in key.items():
        file.attrs[name] = value
    file.attrs["attribute_names"] = json.dumps(list(names))
    file.attrs["inputs_sha1"] = inputs_digest
    file.attrs["done"] = 0  # inputs processed (decoded or skipped), updated per flushed chunk
    file.attrs["written"] = 0  # rows in the datasets
    file.attrs["skipped"] = 0
    file.attrs["odd_size"] = 0
    file.attrs["complete"] = False
    file.flush()
    return file


def _append(dataset: h5py.Dataset, rows: Any) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(rows), axis=0)
    dataset[start:] = rows


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Makes Pillow raise on truncated files while the cache is built.

    With ``LOAD_TRUNCATED_IMAGES`` on, a cut-off JPEG decodes into a face with a
    grey or black bottom; we want it skipped and reported instead.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _fill(
    file: h5py.File,
    paths: Sequence[Path],
    values: np.ndarray,
    partition: np.ndarray,
    image_size: int,
    workers: int,
    progress: bool,
    name: str,
) -> None:
    """Decodes ``paths[done:]`` into ``file``, flushing and counting after each chunk."""
    done = int(file.attrs["done"])
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    bar = tqdm(
        total=len(paths),
        initial=done,
        disable=not progress,
        unit="img",
        desc=f"Caching {name} at {image_size}px",
    )
    try:
        for first, futures in _decode_ahead(pool, paths, done, CHUNK_IMAGES, image_size):
            faces, rows, ratios, skipped, odd = [], [], [], [], 0
            for offset, future in enumerate(futures):
                try:
                    face, odd_size, ratio = future.result()
                except Exception as error:  # any decoder failure means corrupt
                    reason = f"{type(error).__name__}: {error}"
                    skipped.append(f"{paths[first + offset].name} ({reason})")
                    continue
                faces.append(face)
                rows.append(first + offset)
                ratios.append(ratio)
                odd += odd_size
            if faces:
                _append(file["images"], np.stack(faces))
                _append(file["attributes"], values[rows])
                _append(file["files"], [paths[i].name for i in rows])
                _append(file["partition"], partition[rows])
                _append(file["lens_cheek_ratio"], np.asarray(ratios, dtype=np.float32))
            if skipped:
                _append(file["skipped"], skipped)
            file.attrs["written"] = file["images"].shape[0]
            file.attrs["skipped"] = file["skipped"].shape[0]
            file.attrs["odd_size"] = int(file.attrs["odd_size"]) + odd
            file.attrs["done"] = first + len(futures)  # Last: resume starts after this chunk.
            file.flush()
            bar.update(len(futures))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def prepare_cache(
    root: str | os.PathLike,
    cache_path: str | os.PathLike | None = None,
    image_size: int = 64,
    progress: bool = True,
    overwrite: bool = False,
    *,
    skip_missing: bool = False,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 2,
) -> Path:
    """Crops and resizes every face once into an HDF5 cache.

    Each image is cropped to ``CROP_BOX`` (148x148 around the face), resized
    to ``image_size`` with Lanczos, and converted to RGB. The cache holds
    ``images`` uint8 ``(n, S, S, 3)`` in chunks of ``CHUNK_IMAGES`` images,
    ``attributes`` int8 ``(n, 40)`` of +-1, ``files``, ``partition`` int8
    ``(n,)`` and the attributes ``attribute_names`` (JSON), ``image_size``,
    ``crop_box``, ``source`` and, written last, ``complete=True``.

    The build writes ``<cache_path>.partial`` and renames it at the end, so an
    interrupted build never leaves a file that reads as complete. Calling
    again resumes a matching ``.partial`` from its last flushed chunk. A
    complete cache of the same source, size, crop and image list is returned
    without work unless ``overwrite``.

    Corrupt or truncated images are left out and reported once, at the end,
    in a warning; they never become black faces.

    Args:
        root: CelebA folder (``img_align_celeba/``, ``list_attr_celeba.txt``,
            optional ``list_eval_partition.txt``).
        cache_path: Where to write the cache; defaults to
            ``default_cache_path(root, image_size, limit)``.
        image_size: Side of the cached squares in pixels.
        progress: Show a tqdm progress bar.
        overwrite: Rebuild from scratch even if a cache or partial build exists.
        skip_missing: Leave out images listed in the attribute file but absent
            from disk (with a warning) instead of raising.
        limit: Cache only the first ``limit`` images of the attribute list.
        seed: Seed of the fallback split when there is no partition file.
        workers: Decoding threads (Pillow releases the GIL while decoding).

    Returns:
        The path of the complete cache.

    Raises:
        DataError: The folder, lists or images are missing or malformed, a
            different cache already sits at ``cache_path``, or no image could
            be decoded.
    """
    check_positive("image_size", image_size)
    check_positive("limit", limit, allow_none=True)
    check_positive("workers", workers)
    root = _check_root(root)
    image_dir = _image_dir(root)
    table = read_attributes(root)
    has_partition_file = _find_file(root, PARTITION_FILE, "Eval") is not None
    partition = read_partition(root, table.files, seed=seed)
    partition_source = PARTITION_FILE if has_partition_file else f"seeded_split(seed={seed})"
    listed = len(table) if limit is None else min(limit, len(table))
    files = list(table.files[:listed])
    values = table.values[:listed]
    partition = partition[:listed]
    cache_path = Path(
        cache_path if cache_path is not None else default_cache_path(root, image_size, limit)
    )
    key = _build_key(root, image_size, listed, partition_source)

    if cache_path.exists() and not overwrite:
        existing = _existing_cache_key(cache_path)
        if existing == key:
            return cache_path
        if existing is not None and {**existing, "format": CACHE_FORMAT} == key:
            warnings.warn(
                f"Rebuilding {cache_path}: it was written in cache format {existing['format']}, "
                f"this version reads format {CACHE_FORMAT}.",
                stacklevel=2,
            )
            overwrite = True
        else:
            raise DataError(
                f"Expected {cache_path} to be absent or a cache of {root} at {image_size}x"
                f"{image_size} ({listed} images), found "
                + ("a different cache: " + json.dumps(existing) if existing else "another file")
                + ". Pass --overwrite (overwrite=True) to replace it, or choose another cache_path."
            )

    on_disk = set(os.listdir(image_dir))
    missing = [name for name in files if name not in on_disk]
    if missing and not skip_missing:
        raise DataError(
            f"Expected all {listed} images listed in {ATTRIBUTE_FILE} in {image_dir}, found "
            f"{len(missing)} missing, e.g. {missing[:5]}. Restore them, or pass "
            "skip_missing=True to leave them out."
        )
    if missing:
        warnings.warn(
            f"Left out {len(missing)} of {listed} listed images that are not in {image_dir}, "
            f"e.g. {missing[:5]}.",
            stacklevel=2,
        )
        keep = np.array([name in on_disk for name in files])
        files = [name for name, kept in zip(files, keep, strict=True) if kept]
        values, partition = values[keep], partition[keep]

    paths = [image_dir / name for name in files]
    inputs_digest = hashlib.sha1("\n".join(files).encode()).hexdigest()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_path.with_name(cache_path.name + ".partial")
    name_bytes = max((len(name.encode()) for name in files), default=1)
    file = _open_partial(
        partial, key, inputs_digest, table.names, image_size, overwrite, name_bytes
    )
    try:
        with _strict_decoding():
            _fill(file, paths, values, partition, image_size, workers, progress, root.name)
        skipped = list(file["skipped"].asstr()[()])
        written = int(file.attrs["written"])
        odd = int(file.attrs["odd_size"])
        if written:
            file.attrs["complete"] = True  # Last: a reader trusts nothing without it.
    finally:
        file.close()
    if not written:
        partial.unlink()  # Nothing worth resuming: the next call starts afresh.
        raise DataError(
            f"Expected decodable images in {image_dir}, found none of {len(paths)}: "
            f"{skipped[:3]}. Check the files are JPEGs (re-download them)."
        )
    os.replace(partial, cache_path)

    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} of {len(paths)} images that could not be decoded (corrupt "
            f"or truncated); they are not in {cache_path}: {skipped[:5]}. Re-download them and "
            "run prepare with --overwrite (overwrite=True) to include them.",
            stacklevel=2,
        )
    if odd:
        warnings.warn(
            f"{odd} images in {image_dir} were not {ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]} (aligned "
            "CelebA); their crop box was scaled to their size. Faces may be off-centre.",
            stacklevel=2,
        )
    return cache_path


def _read_rows(dataset: h5py.Dataset, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted, unique) of ``dataset``, read one whole chunk at a time.

    HDF5 decodes whole chunks anyway; reading each touched chunk with one slice
    is far faster than h5py's per-row fancy indexing.
    """
    out = np.empty((len(index),) + dataset.shape[1:], dtype=dataset.dtype)
    if len(index) == 0:
        return out
    rows = dataset.chunks[0] if dataset.chunks else len(dataset)
    blocks = index // rows
    bounds = np.flatnonzero(np.diff(blocks)) + 1
    for part in np.split(np.arange(len(index)), bounds):
        start = int(blocks[part[0]]) * rows
        stop = min(start + rows, dataset.shape[0])
        out[part] = dataset[start:stop][index[part] - start]
    return out


class CelebACache:
    """Read-only view of a complete cache written by ``prepare_cache``.

    Attributes, file names and partitions are held in memory (small); images
    stay on disk until ``images`` asks for them.

    Args:
        path: The ``.h5`` cache.

    Raises:
        DataError: The file is missing, not a cache, or incomplete.

    Example:

    >>> with CelebACache("data/cache/celeba_64.h5") as cache:
    ...     faces = cache.images("valid", limit=256)  # uint8 (256, 64, 64, 3)
    ...     glasses = cache.attribute("Eyeglasses", "valid")  # bool (2177,)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            partial = self.path.with_name(self.path.name + ".partial")
            interrupted = (
                f" A build was interrupted ({partial} exists); re-run prepare_cache to finish it."
                if partial.exists()
                else ""
            )
            raise DataError(
                f"Expected a face cache at {self.path}, found no file. Build it with "
                f"prepare_cache(root, {str(self.path)!r}).{interrupted}"
            )
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise DataError(
                f"Expected an HDF5 face cache at {self.path}, found a file h5py cannot open "
                f"({error}). Delete it and run prepare_cache again."
            ) from error
        try:
            self._load()
        except BaseException:
            self._file.close()
            raise

    def _load(self) -> None:
        attrs = self._file.attrs
        if not bool(attrs.get("complete", False)):
            raise DataError(
                f"Expected a complete cache (complete=True) at {self.path}, found an incomplete "
                "one: its build was interrupted. Re-run prepare_cache with the same arguments; it "
                "resumes where the build stopped."
            )
        needed = ("images", "attributes", "files", "partition", "lens_cheek_ratio")
        absent = [name for name in needed if name not in self._file]
        if absent or int(attrs.get("format", -1)) != CACHE_FORMAT:
            raise DataError(
                f"Expected a cache of format {CACHE_FORMAT} with datasets {list(needed)} at "
                f"{self.path}, found format {attrs.get('format')} without {absent}. Rebuild it "
                "with prepare --overwrite (prepare_cache(..., overwrite=True))."
            )
        self._images = self._file["images"]
        self.attribute_names: tuple[str, ...] = tuple(json.loads(attrs["attribute_names"]))
        self.image_size = int(attrs["image_size"])
        self.crop_box = tuple(int(v) for v in attrs["crop_box"])
        self.source = str(attrs["source"])
        self._attributes = self._file["attributes"][()]
        self._files = np.asarray(self._file["files"].asstr()[()], dtype=str)
        self._partition = self._file["partition"][()]
        self._ratios = self._file["lens_cheek_ratio"][()]
        self.derived: tuple[str, ...] = ()
        names = self.attribute_names
        if "Sunglasses" not in names and "Eyeglasses" in names:
            # CelebA has no Sunglasses column: derive it from lens darkness. A Sunglasses
            # column in the attribute file (the synthetic set writes one) wins.
            eyeglasses = self._attributes[:, names.index("Eyeglasses")]
            derived = eyewear.derive_sunglasses(eyeglasses, self._ratios)
            derived[eyeglasses == 0] = 0  # unknown stays unknown
            self._attributes = np.concatenate([self._attributes, derived[:, None]], axis=1)
            self.attribute_names = (*names, "Sunglasses")
            self.derived = ("Sunglasses",)

    def __len__(self) -> int:
        return len(self._partition)

    def __repr__(self) -> str:
        counts = ", ".join(f"{split}={len(self.indices(split))}" for split in SPLITS)
        return f"CelebACache({str(self.path)!r}, image_size={self.image_size}, {counts})"

    def __enter__(self) -> CelebACache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the HDF5 file."""
        self._file.close()

    def indices(self, split: str = "all") -> np.ndarray:
        """Sorted row numbers of ``split`` ("train", "valid", "test" or "all").

        A set without a test partition (like the shared subset) gives an
        empty array for "test".
        """
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise ValueError(
                f"Expected split to be one of {[*SPLITS, 'all']}. Received: split={split!r}"
            )
        return np.flatnonzero(self._partition == SPLITS[split])

    def _nonempty_indices(self, split: str) -> np.ndarray:
        index = self.indices(split)
        if index.size == 0:
            counts = {name: len(self.indices(name)) for name in SPLITS}
            raise DataError(
                f"Expected images in the {split!r} split of {self.path}, found none (split sizes: "
                f"{counts}). Ask for a split that has images, or 'all'."
            )
        return index

    def attributes(self, split: str = "all") -> np.ndarray:
        """int8 array ``(n, len(attribute_names))`` of +1/-1 for the images of ``split``.

        The columns are the attribute file's, then any derived ones (``derived``):
        ``Sunglasses`` from lens darkness when the file has ``Eyeglasses`` but no
        ``Sunglasses``.
        """
        return self._attributes[self.indices(split)]

    @property
    def labelled(self) -> np.ndarray:
        """bool ``(n,)``: rows with known attributes (a row of 0s, a face from photos, has none)."""
        return (self._attributes != 0).any(axis=1)

    def lens_cheek_ratio(self, split: str = "all") -> np.ndarray:
        """float32 ``(n,)`` lens/cheek luminance ratios of the whole aligned frames."""
        return self._ratios[self.indices(split)]

    def files(self, split: str = "all") -> np.ndarray:
        """Image file names ``(n,)`` of ``split``, in cache order."""
        return self._files[self.indices(split)]

    def attribute(self, name: str, split: str = "all") -> np.ndarray:
        """bool array ``(n,)``: which images of ``split`` have attribute ``name``."""
        if name not in self.attribute_names:
            close = difflib.get_close_matches(name, self.attribute_names, n=3, cutoff=0.5)
            hint = f" Did you mean {close}?" if close else ""
            raise DataError(
                f"Expected an attribute name of this cache, spelled as CelebA does (e.g. "
                f"'Eyeglasses'). Received: name={name!r}.{hint} All names: "
                f"{list(self.attribute_names)}"
            )
        column = self.attribute_names.index(name)
        return self.attributes(split)[:, column] > 0

    def images(self, split: str = "all", limit: int | None = None) -> np.ndarray:
        """Loads the faces of ``split`` into memory, uint8 ``(n, S, S, 3)``.

        Meant for evaluation-sized sets; stream training data with
        ``make_dataset`` instead.

        Args:
            split: "train", "valid", "test" or "all".
            limit: Only the first ``limit`` images of the split.
        """
        check_positive("limit", limit, allow_none=True)
        index = self._nonempty_indices(split)[:limit]
        return _read_rows(self._images, index)

    def iter_images(self, split: str = "all", batch_size: int = 256, limit: int | None = None):
        """Yields the faces of ``split`` in cache order, uint8 ``(<= batch_size, S, S, 3)`` at a time.

        For passes over a whole split (encoding it) without holding it in memory.
        """
        check_positive("limit", limit, allow_none=True)
        check_positive("batch_size", batch_size)
        index = self._nonempty_indices(split)[:limit]
        for start in range(0, len(index), batch_size):
            yield _read_rows(self._images, index[start : start + batch_size])


# ## The streaming dataset


class _BatchReader:
    """Generator of uint8 batches streamed from the cache, one pass per call.

    Shuffling is two-level, as in chunked record readers: each pass permutes
    the chunk-aligned blocks of the split, then mixes the images of
    ``pool_blocks`` consecutive blocks (about 1,000 faces) before batching. Each
    block is one contiguous read. CelebA's file order carries no label order,
    so this mixes as well as a full shuffle for SGD while only a pool is in
    memory. Pass ``k`` (counting from 0) is seeded by ``(seed, k)``: every epoch
    reshuffles, and two datasets with one seed give the same sequence. With
    ``mirror`` the flips draw from a stream of their own, ``(seed, k, 1)``, so a
    mirrored run sees the same faces in the same order as an unmirrored one.
    """

    pool_blocks = 16

    def __init__(
        self,
        path: Path,
        index: np.ndarray,
        attributes: np.ndarray | None,
        chunk_rows: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_remainder: bool,
        mirror: bool = False,
    ) -> None:
        self.path = path
        self.mirror = mirror
        self.attributes = attributes
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.epoch = 0
        bounds = np.flatnonzero(np.diff(index // chunk_rows)) + 1
        self.blocks = np.split(index, bounds)

    def __call__(self) -> Iterator[Any]:
        rng = np.random.default_rng([self.seed, self.epoch])
        flips = np.random.default_rng([self.seed, self.epoch, 1])
        self.epoch += 1
        order = rng.permutation(len(self.blocks)) if self.shuffle else np.arange(len(self.blocks))
        size = self.batch_size
        with h5py.File(self.path, "r") as file:
            images = file["images"]
            rows_left = np.empty(0, dtype=np.int64)
            faces_left = np.empty((0,) + images.shape[1:], dtype=images.dtype)
            for start in range(0, len(order), self.pool_blocks):
                pool = [self.blocks[b] for b in order[start : start + self.pool_blocks]]
                rows = np.concatenate([rows_left, *pool])
                faces = np.concatenate(
                    [faces_left] + [images[b[0] : b[-1] + 1][b - b[0]] for b in pool]
                )
                if self.shuffle:
                    mix = rng.permutation(len(rows))
                    rows, faces = rows[mix], faces[mix]
                full = len(rows) - len(rows) % size
                for first in range(0, full, size):
                    batch = faces[first : first + size]
                    yield self._batch(batch, rows[first : first + size], flips)
                rows_left, faces_left = rows[full:], faces[full:]
        if len(rows_left) and not self.drop_remainder:
            yield self._batch(faces_left, rows_left, flips)

    def _batch(self, faces: np.ndarray, rows: np.ndarray, flips: np.random.Generator) -> Any:
        if self.mirror:
            faces = np.where(
                flips.random(len(faces))[:, None, None, None] < 0.5, faces[:, :, ::-1], faces
            )
        if self.attributes is None:
            return faces
        return faces, self.attributes[rows]


def _to_model_inputs(images: tf.Tensor, attributes: tf.Tensor | None = None) -> Any:
    import tensorflow as tf

    images = tf.cast(images, tf.float32) / 255.0
    if attributes is None:
        return images
    return images, tf.cast(attributes > 0, tf.float32)


def _shard(index: np.ndarray, shard: tuple[int, int]) -> np.ndarray:
    """The ``shard[0]``-th of ``shard[1]`` contiguous, near-equal parts of ``index``.

    Contiguous parts touch at most one HDF5 chunk in common, so each worker
    reads about ``1 / count`` of the file. CelebA's file order carries no
    label order, so a contiguous part is as good a sample as any.
    """
    position, count = shard
    if not (isinstance(count, int) and count >= 1 and isinstance(position, int)) or not (
        0 <= position < count
    ):
        raise ValueError(
            f"Expected shard=(index, count) with 0 <= index < count. Received: shard={shard!r}"
        )
    if len(index) < count:
        raise DataError(
            f"Expected at least one image per shard, found {len(index)} images for {count} "
            "shards. Use fewer workers or more images."
        )
    return np.array_split(index, count)[position]


def make_dataset(
    cache_path: str | os.PathLike,
    split: str = "train",
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
    attributes: bool | Sequence[str] = False,
    drop_remainder: bool = False,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    mirror: bool = False,
) -> tf.data.Dataset:
    """Streams batches of faces from a cache without loading it into memory.

    Args:
        cache_path: A complete cache from ``prepare_cache``.
        split: "train", "valid", "test" or "all".
        batch_size: Faces per batch.
        shuffle: Reshuffle every epoch (seeded, see ``_BatchReader``);
            otherwise cache order.
        seed: Seed of the shuffles; one seed gives one sequence of epochs.
        attributes: Also yield the attributes as float32 0/1: True for every
            column of the cache, or the names of the columns wanted, in order.
        drop_remainder: Drop the last, smaller batch of each epoch.
        limit: Use only the first ``limit`` images of the split.
        shard: ``(index, count)``: keep only the ``index``-th of ``count``
            contiguous parts of the split (after ``limit``), for one worker of
            a multi-worker run. The reader opens only that part's chunks, so
            workers share the reading instead of each reading everything and
            discarding the rest (what tf.data's auto-shard by data must do with
            a generator source, which has no files to shard by).
        mirror: Flip a random half of the faces left to right (seeded), for
            training: aligned faces are near-symmetric, so this doubles the
            faces a model sees without showing it anything unlike CelebA.

    Returns:
        A ``tf.data.Dataset`` of float32 images in [0, 1] of shape
        ``(batch, S, S, 3)``, or of ``(images, attributes)`` with attributes of
        shape ``(batch, n_attributes)`` when ``attributes`` is set. Its cardinality is the
        number of batches per epoch, so ``len(dataset)`` works.

    Raises:
        DataError: The cache is missing or incomplete, or the split (after
            ``limit`` and ``drop_remainder``) gives no batch.
    """
    import tensorflow as tf

    check_positive("batch_size", batch_size)
    check_positive("limit", limit, allow_none=True)
    with CelebACache(cache_path) as cache:
        index = cache._nonempty_indices(split)[:limit]
        if shard is not None:
            index = _shard(index, shard)
        table = None
        if attributes is True:
            table = cache._attributes
        elif attributes:
            for name in attributes:
                cache.attribute(name)  # raises, with close matches, for an unknown name
            table = cache._attributes[:, [cache.attribute_names.index(n) for n in attributes]]
        chunk_rows = cache._images.chunks[0] if cache._images.chunks else len(cache)
        image_size = cache.image_size
        n_attributes = 0 if table is None else table.shape[1]
    steps = len(index) // batch_size if drop_remainder else math.ceil(len(index) / batch_size)
    if steps == 0:
        raise DataError(
            f"Expected at least batch_size={batch_size} images with drop_remainder=True, found "
            f"{len(index)} in the {split!r} split of {cache_path}. Lower batch_size or set "
            "drop_remainder=False."
        )
    reader = _BatchReader(
        Path(cache_path),
        index,
        table,
        chunk_rows,
        batch_size,
        shuffle,
        seed,
        drop_remainder,
        mirror,
    )
    batch = batch_size if drop_remainder else None
    images_spec = tf.TensorSpec((batch, image_size, image_size, 3), tf.uint8)
    if attributes:
        signature: Any = (images_spec, tf.TensorSpec((batch, n_attributes), tf.int8))
    else:
        signature = images_spec
    dataset = tf.data.Dataset.from_generator(reader, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    dataset = dataset.map(_to_model_inputs, num_parallel_calls=2)
    # No tf.data autotuning. Its model thread belongs to each iterator, and an iterator
    # dropped part-read (Keras' evaluate resets its validation iterator every epoch;
    # fit drops the endless training one at its end) waited for that thread for about
    # 37 s (py-spy: ~RootDataset::Iterator), which cost every VAE epoch after the first
    # 37 s in `make demo`. The reader is ~90x faster than training (BENCHMARKS.md
    # section 3), so fixed parallelism and a small prefetch lose nothing.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)

"""A folder of ordinary photos as a CelebA-layout set: every face cut into the aligned frame.

The seed trained on "CelebA along with random images from the internet". Photos
have no attribute file and their faces are anywhere, any size, turned. This
module finds each face with the project's MTCNN aligner (``faces``), warps it
into the 178x218 aligned CelebA frame, and writes ``img_align_celeba/`` with a
``list_attr_celeba.txt`` whose values are all 0 (unknown), so the same cache and
loader read it. Unknown rows never reach the attribute classifiers; the VAE can
train on them beside a labelled set (``train --data celeba --data photos``).

Written beside the faces: ``list_sources.txt`` (each face's photo and face
number) and ``skipped.txt`` (photos with no usable face, and why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from dealwithit import faces
from dealwithit.data import ATTRIBUTE_FILE, CELEBA_ATTRIBUTES, IMAGE_DIR

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SOURCES_FILE = "list_sources.txt"
SKIPPED_FILE = "skipped.txt"
# Eye distance in the aligned frame is 39 px, and 17 px in the 64-px model crop: a face
# with fewer photo pixels between its eyes than that would be upsampled, i.e. blurred.
MIN_EYE_DISTANCE = 16.0


@dataclasses.dataclass(frozen=True)
class AlignedFolder:
    """What ``align_folder`` wrote."""

    out: Path
    photos: int
    faces: int
    skipped: tuple[tuple[str, str], ...]  # (photo, reason)
    reused: bool = False

    def report(self) -> str:
        lines = [
            f"{'Reused' if self.reused else 'Wrote'} {self.faces} aligned faces from "
            f"{self.photos} photos to {self.out} (CelebA layout, attributes unknown = 0)"
        ]
        if self.skipped:
            lines.append(
                f"Skipped {len(self.skipped)} photos (listed in {self.out / SKIPPED_FILE}):"
            )
            lines += [f"  {photo}: {reason}" for photo, reason in self.skipped[:10]]
            if len(self.skipped) > 10:
                lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


def is_photo_folder(folder: Path) -> bool:
    """A folder of photos that is no CelebA-layout set.

    A folder with ``img_align_celeba/`` or an attribute list (at its top or in
    ``Anno/``) is CelebA, even when a file is missing: the loader then says which.
    """
    folder = Path(folder)
    if not folder.is_dir() or (folder / IMAGE_DIR).is_dir():
        return False
    if (folder / ATTRIBUTE_FILE).is_file() or (folder / "Anno" / ATTRIBUTE_FILE).is_file():
        return False
    return any(_photos(folder))


def _photos(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )


def _digest(folder: Path, photos: list[Path], min_eye_distance: float) -> str:
    """Names, sizes and times of the photos: the same digest means the same set."""
    h = hashlib.sha1(f"{min_eye_distance}".encode())
    for p in photos:
        stat = p.stat()
        h.update(f"{p.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def align_folder(
    folder: str | Path,
    out: str | Path,
    min_eye_distance: float = MIN_EYE_DISTANCE,
    progress: bool = True,
) -> AlignedFolder:
    """Cuts every face of every photo under ``folder`` into a CelebA-layout set at ``out``.

    Built in ``out.partial`` and moved into place when complete; a finished set
    of the same photos is reused. Photos that cannot be read, have no face, or
    only faces whose eyes are less than ``min_eye_distance`` photo pixels apart
    are listed in ``skipped.txt`` and skipped.

    Raises:
        faces.PhotoError: no photo of the folder gave a usable face.
    """
    folder, out = Path(folder), Path(out)
    photos = _photos(folder)
    digest = _digest(folder, photos, min_eye_distance)
    stamp = out / ".photo_folder"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return _reused(out, len(photos))
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / IMAGE_DIR).mkdir(parents=True)
    sources, skipped = [], []
    for photo_path in tqdm(photos, desc="Aligning faces", unit="photo", disable=not progress):
        name = str(photo_path.relative_to(folder))
        try:
            photo = faces.load_photo(photo_path)
            found = faces.detect_faces(photo)
        except faces.PhotoError as error:
            skipped.append((name, str(error).splitlines()[0]))
            continue
        usable = [f for f in found if f.eye_distance >= min_eye_distance]
        if not usable:
            reason = (
                "no face found"
                if not found
                else f"only faces smaller than {min_eye_distance:g} px between the eyes "
                f"({', '.join(f'{f.eye_distance:.0f}' for f in found)} px)"
            )
            skipped.append((name, reason))
            continue
        for number, face in enumerate(usable):
            file = f"{len(sources) + 1:06d}.jpg"
            Image.fromarray(faces.align_frame(photo, face)).save(
                partial / IMAGE_DIR / file, quality=95
            )
            sources.append((file, name, number))
    if not sources:
        shutil.rmtree(partial, ignore_errors=True)
        raise faces.PhotoError(
            f"Expected photos with faces in {folder}. Received {len(photos)} photos and no "
            f"face at least {min_eye_distance:g} px between the eyes. "
            + (f"First skipped: {skipped[0][0]}: {skipped[0][1]}" if skipped else "")
        )
    names = " ".join(CELEBA_ATTRIBUTES)
    unknown = " ".join("0" for _ in CELEBA_ATTRIBUTES)
    rows = [f"{file} {unknown}" for file, _, _ in sources]
    (partial / ATTRIBUTE_FILE).write_text(f"{len(rows)}\n{names}\n" + "\n".join(rows) + "\n")
    (partial / SOURCES_FILE).write_text(
        "".join(f"{file} {number} {name}\n" for file, name, number in sources)
    )
    (partial / SKIPPED_FILE).write_text("".join(f"{name}\t{why}\n" for name, why in skipped))
    (partial / ".photo_folder").write_text(digest + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    log.info(f"Aligned {len(sources)} faces from {len(photos)} photos into {out}")
    return AlignedFolder(out, len(photos), len(sources), tuple(skipped))


def _reused(out: Path, photos: int) -> AlignedFolder:
    faces_written = len((out / SOURCES_FILE).read_text().splitlines())
    skipped = tuple(
        tuple(line.split("\t", 1)) for line in (out / SKIPPED_FILE).read_text().splitlines() if line
    )
    return AlignedFolder(out, photos, faces_written, skipped, reused=True)

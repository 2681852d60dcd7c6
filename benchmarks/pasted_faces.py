"""A folder of "ordinary photos" made from CelebA train faces, to measure mixing sets (issue 11).

The seed trained on "CelebA along with random images from the internet". No
internet here, so the stand-in is the shared subset's own *train* faces, each
pasted at a random size, position and small tilt onto a 320x320 photo with a
random smooth background and sensor noise. ``prepare --data FOLDER`` must then
find and re-align each face with MTCNN, as it would in a user's photo folder.
The validation faces are never used, so held-out CelebA quality stays held out.
What mixing such a folder measures is the effect of re-aligned, differently
framed copies of faces, not of new identities.

    .venv/bin/python benchmarks/pasted_faces.py --celeba ../shared/data/celeba \\
        --out /tmp/pasted_faces --n 2000 [--seed 0]

Nothing it writes may be committed: the faces are CelebA's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from dealwithit import data

## Setup

size = 320  # photo side
scales = (1.0, 1.6)  # face frame height as a share of the aligned frame's 218 px, times this
tilt_degrees = 12.0


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour gradient with noise, ``(size, size, 3)`` uint8."""
    corners = rng.uniform(0, 255, size=(2, 2, 3))
    t = np.linspace(0, 1, size)[:, None, None]
    s = np.linspace(0, 1, size)[None, :, None]
    top = corners[0, 0] * (1 - s) + corners[0, 1] * s
    bottom = corners[1, 0] * (1 - s) + corners[1, 1] * s
    image = top * (1 - t) + bottom * t + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def paste(face: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``face`` (an aligned 178x218 crop) tilted, scaled and pasted at a random place."""
    scale = rng.uniform(*scales)
    width, height = int(face.width * scale), int(face.height * scale)
    face = face.resize((width, height), Image.BICUBIC).convert("RGBA")
    face = face.rotate(rng.uniform(-tilt_degrees, tilt_degrees), Image.BICUBIC, expand=True)
    photo = Image.fromarray(background(rng))
    x = int(rng.integers(0, max(1, size - face.width)))
    y = int(rng.integers(0, max(1, size - face.height)))
    photo.paste(face, (x, y), face)  # the rotation's empty corners stay transparent
    return photo


def write_photos(celeba: Path, out: Path, n: int, seed: int = 0) -> dict[str, str]:
    """Pastes ``n`` train faces of ``celeba`` into photos in ``out``; returns photo -> face file."""
    files = data.read_attributes(celeba).files
    partition = data.read_partition(celeba, files)
    train = [name for name, code in zip(files, partition) if code == data.SPLITS["train"]]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train), size=min(n, len(train)), replace=False)
    out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for i in tqdm(sorted(chosen), desc="pasting", unit="photo", mininterval=5):
        with Image.open(celeba / data.IMAGE_DIR / train[i]) as face:
            name = f"photo_{i:06d}.jpg"
            paste(face.convert("RGB"), rng).save(out / name, quality=92)
            sources[name] = train[i]
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/pasted_faces"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources = write_photos(args.celeba, args.out, args.n, args.seed)
    print(f"{len(sources)} photos in {args.out}")


if __name__ == "__main__":
    main()

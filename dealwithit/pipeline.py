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
        outputs: Folder of its pictures and metrics (default ``outputs/<folder name>``).
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
            object.__setattr__(self, "outputs", Path("outputs") / name)
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

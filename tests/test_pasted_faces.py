"""benchmarks/pasted_faces.py: the mixing test folder uses train faces only, as whole photos."""

import importlib

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from dealwithit import data


@pytest.fixture(scope="module")
def pasted_faces():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
        yield importlib.import_module("pasted_faces")


def test_photos_come_from_train_faces_only(pasted_faces, tiny_celeba, tmp_path):
    files = data.read_attributes(tiny_celeba).files
    split = dict(zip(files, data.read_partition(tiny_celeba, files)))
    sources = pasted_faces.write_photos(tiny_celeba, tmp_path / "photos", n=100)
    train = [name for name, code in split.items() if code == data.SPLITS["train"]]
    assert sorted(sources.values()) == sorted(train)  # n above the train count: all of them
    for photo in sources:
        with Image.open(tmp_path / "photos" / photo) as image:
            assert image.size == (pasted_faces.size, pasted_faces.size)
            pixels = np.asarray(image)
        assert pixels.std() > 5  # a background and a face, not a blank frame

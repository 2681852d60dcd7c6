"""Tests of dealwithit.data: reading CelebA, the HDF5 cache, the dataset."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image, ImageFile

from dealwithit import data, eyewear
from dealwithit.data import (
    CELEBA_ATTRIBUTES,
    CELEBA_URL,
    CROP_BOX,
    CelebACache,
    DataError,
    default_cache_path,
    make_dataset,
    prepare_cache,
    read_attributes,
    read_partition,
    seeded_split,
)

SIZE = 32  # cache side for the tiny sets: small and fast


def reference_face(path: Path, size: int = SIZE) -> np.ndarray:
    """The face as the cache should hold it, computed with plain crop-then-resize."""
    with Image.open(path) as image:
        face = image.convert("RGB").crop(CROP_BOX).resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(face).astype(int)


def build(root: Path, tmp_path: Path, **kwargs) -> Path:
    kwargs.setdefault("image_size", SIZE)
    return prepare_cache(root, tmp_path / "cache.h5", progress=False, **kwargs)


def epoch_rows(dataset, lookup: dict[bytes, int]) -> list[int]:
    """Cache rows of the images of one pass over ``dataset``, in order."""
    rows = []
    for batch in dataset:
        images = batch[0] if isinstance(batch, tuple) else batch
        pixels = np.round(images.numpy() * 255).astype(np.uint8)
        rows += [lookup[image.tobytes()] for image in pixels]
    return rows


# ## Attribute and partition files


def test_read_attributes_matches_an_independent_parse(tiny_celeba):
    table = read_attributes(tiny_celeba)
    expected = np.loadtxt(tiny_celeba / "list_attr_celeba.txt", skiprows=2, usecols=range(1, 41))
    assert table.names == tuple(CELEBA_ATTRIBUTES)
    assert table.files == tuple(f"{i:06d}.jpg" for i in range(1, 25))
    assert table.values.dtype == np.int8 and table.values.shape == (24, 40)
    np.testing.assert_array_equal(table.values, expected)
    assert len(table) == 24


def test_official_anno_and_eval_subfolders_are_found(make_celeba):
    root = make_celeba()
    (root / "Anno").mkdir()
    (root / "Eval").mkdir()
    (root / "list_attr_celeba.txt").rename(root / "Anno" / "list_attr_celeba.txt")
    (root / "list_eval_partition.txt").rename(root / "Eval" / "list_eval_partition.txt")
    table = read_attributes(root)
    assert len(table) == 24
    assert np.bincount(read_partition(root, table.files)).tolist() == [16, 4, 4]


def test_read_partition_follows_the_partition_file(tiny_celeba):
    files = read_attributes(tiny_celeba).files
    split = read_partition(tiny_celeba, files)
    expected = np.loadtxt(tiny_celeba / "list_eval_partition.txt", usecols=1)
    assert split.dtype == np.int8
    np.testing.assert_array_equal(split, expected)


def test_partition_file_must_list_every_image(tiny_celeba):
    """Unlisted images are named, but at most the first 5 of them."""
    path = tiny_celeba / "list_eval_partition.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:17]))
    with pytest.raises(DataError, match=r"7 of 24 missing") as error:
        read_partition(tiny_celeba, read_attributes(tiny_celeba).files)
    assert "000018.jpg" in str(error.value) and "000022.jpg" in str(error.value)
    assert "000023.jpg" not in str(error.value)


def test_without_partition_file_the_split_is_seeded_and_warned(make_celeba):
    root = make_celeba(partition=False, n=40)
    files = read_attributes(root).files
    with pytest.warns(UserWarning, match="seeded random split"):
        first = read_partition(root, files, seed=3)
    with pytest.warns(UserWarning):
        again = read_partition(root, files, seed=3)
        other = read_partition(root, files, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.bincount(first, minlength=3).tolist() == [32, 4, 4]


def test_seeded_split_sizes_follow_the_fractions():
    split = seeded_split(1000, seed=0, fractions=(0.8, 0.1, 0.1))
    assert np.bincount(split).tolist() == [800, 100, 100]
    assert np.bincount(seeded_split(7, seed=0), minlength=3).tolist() == [6, 1, 0]
    with pytest.raises(ValueError, match="sum"):
        seeded_split(10, fractions=(0.8, 0.3, 0.1))


# ## Errors people will meet


def test_missing_folder_says_where_celeba_comes_from(tmp_path):
    with pytest.raises(DataError) as error:
        read_attributes(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert CELEBA_URL in message and "python -m dealwithit synth" in message


def test_missing_attribute_file_names_the_file(tiny_celeba):
    (tiny_celeba / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError) as error:
        read_attributes(tiny_celeba)
    message = str(error.value)
    assert str(tiny_celeba / "list_attr_celeba.txt") in message
    assert "Align&Cropped Images" in message and "python -m dealwithit synth" in message


def test_missing_image_folder_is_explained(tiny_celeba, tmp_path):
    (tiny_celeba / "img_align_celeba").rename(tiny_celeba / "elsewhere")
    with pytest.raises(DataError, match="img_align_celeba/, found no such folder"):
        build(tiny_celeba, tmp_path)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ({5: "000003.jpg 1 -1 1"}, r"line 5: expected 41 columns .* found 4"),
        ({7: "000005.jpg " + " ".join(["1"] * 39 + ["2"])}, r"line 7: .*found '2' for Young"),
        ({1: "25"}, r"line 1: expected 25 image rows .* found 24"),
        ({1: "many"}, r"line 1: expected the number of images"),
        ({4: "000001.jpg " + " ".join(["1"] * 40)}, r"line 4: .*000001.jpg again .*line 3"),
    ],
    ids=["column count", "value not 1, -1 or 0", "count mismatch", "bad count", "duplicate"],
)
def test_malformed_attribute_line_is_reported_with_its_number(make_celeba, lines, expected):
    root = make_celeba(attribute_lines=lines)
    with pytest.raises(DataError, match=expected) as error:
        read_attributes(root)
    assert str(root / "list_attr_celeba.txt") in str(error.value)


def test_names_line_must_match_the_value_columns(make_celeba):
    root = make_celeba(attribute_lines={2: " ".join(CELEBA_ATTRIBUTES[:39])})
    with pytest.raises(DataError, match=r"line 3: expected 40 columns .* 39 names on line 2"):
        read_attributes(root)


def test_missing_images_are_an_error_unless_skipped(make_celeba, tmp_path):
    root = make_celeba(missing=(2, 9))
    with pytest.raises(DataError, match=r"found 2 missing.*000003.jpg.*000010.jpg.*skip_missing"):
        build(root, tmp_path)
    assert not (tmp_path / "cache.h5").exists()
    with pytest.warns(UserWarning, match="Left out 2 of 24"):
        path = build(root, tmp_path, skip_missing=True)
    with CelebACache(path) as cache:
        assert len(cache) == 22
        assert "000003.jpg" not in cache.files()


def test_corrupt_images_are_skipped_counted_and_reported_once(make_celeba, tmp_path, monkeypatch):
    """Even with Pillow told to load truncated files, they are skipped, not cached."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    root = make_celeba(truncated=(3, 11), garbage=(20,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = build(root, tmp_path)
    reports = [w for w in caught if "could not be decoded" in str(w.message)]
    assert len(reports) == 1
    message = str(reports[0].message)
    assert "Skipped 3 of 24" in message
    assert all(name in message for name in ("000004.jpg", "000012.jpg", "000021.jpg"))
    assert "truncated" in message
    with CelebACache(path) as cache:
        assert len(cache) == 21
        assert not {"000004.jpg", "000012.jpg", "000021.jpg"} & set(cache.files())
        # No stand-in black faces: every cached face has real content.
        assert cache.images().reshape(21, -1).std(axis=1).min() > 5
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_a_set_without_one_decodable_image_is_an_error(make_celeba, tmp_path):
    root = make_celeba(n=3, garbage=(0, 1, 2))
    with pytest.raises(DataError, match="found none of 3"):
        build(root, tmp_path)
    assert not (tmp_path / "cache.h5").exists()
    assert not (tmp_path / "cache.h5.partial").exists()  # a fixed set starts afresh


def test_odd_sized_images_are_cropped_proportionally_and_reported(make_celeba, tmp_path):
    root = make_celeba(n=4, size=(356, 436))
    with pytest.warns(UserWarning, match="4 images .* were not 178x218"):
        path = build(root, tmp_path)
    with Image.open(root / "img_align_celeba" / "000001.jpg") as image:
        box = tuple(2 * v for v in CROP_BOX)
        face = image.crop(box).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    with CelebACache(path) as cache:
        assert np.abs(cache.images()[0].astype(int) - np.asarray(face)).max() <= 2


def test_non_rgb_images_are_converted_to_rgb(make_celeba, tmp_path):
    modes = {0: "L", 1: "RGBA", 2: "CMYK", 3: "P"}
    root = make_celeba(modes=modes)
    path = build(root, tmp_path)
    with CelebACache(path) as cache:
        faces = cache.images()[:4].astype(int)
    assert faces.shape == (4, SIZE, SIZE, 3)
    for i in modes:
        reference = reference_face(root / "img_align_celeba" / f"{i + 1:06d}.jpg")
        assert np.abs(faces[i] - reference).max() <= 2, modes[i]
    assert (faces[0, ..., 0] == faces[0, ..., 1]).all()  # grey stays grey


# ## The cache


def test_cache_round_trip_keeps_faces_attributes_and_split(tiny_celeba, tmp_path):
    path = build(tiny_celeba, tmp_path)
    table = read_attributes(tiny_celeba)
    with CelebACache(path) as cache:
        assert len(cache) == 24 and cache.image_size == SIZE
        # CelebA's 40, then Sunglasses derived from lens darkness (the file has no such column).
        assert cache.attribute_names == (*CELEBA_ATTRIBUTES, "Sunglasses")
        assert cache.derived == ("Sunglasses",)
        assert list(cache.files()) == list(table.files)
        np.testing.assert_array_equal(cache.attributes()[:, :40], table.values)
        eyeglasses = table.values[:, CELEBA_ATTRIBUTES.index("Eyeglasses")]
        np.testing.assert_array_equal(
            cache.attributes()[:, 40],
            eyewear.derive_sunglasses(eyeglasses, cache.lens_cheek_ratio()),
        )
        faces = cache.images().astype(int)
        assert [len(cache.indices(s)) for s in ("train", "valid", "test")] == [16, 4, 4]
        np.testing.assert_array_equal(cache.indices("valid"), [4, 10, 16, 22])
        assert list(cache.files("test")) == ["000006.jpg", "000012.jpg", "000018.jpg", "000024.jpg"]
        glasses = table.values[:, CELEBA_ATTRIBUTES.index("Eyeglasses")] > 0
        np.testing.assert_array_equal(cache.attribute("Eyeglasses"), glasses)
        np.testing.assert_array_equal(cache.attribute("Eyeglasses", "valid"), glasses[4::6])
    references = np.stack(
        [reference_face(tiny_celeba / "img_align_celeba" / f) for f in table.files]
    )
    assert np.abs(faces - references).max() <= 2
    with h5py.File(path, "r") as file:
        assert file["images"].dtype == np.uint8 and file["images"].chunks[0] == data.CHUNK_IMAGES
        assert file["attributes"].dtype == np.int8 and file["partition"].dtype == np.int8
        assert bool(file.attrs["complete"]) is True
        assert file.attrs["source"] == str(tiny_celeba.resolve())
        assert tuple(file.attrs["crop_box"]) == CROP_BOX and file.attrs["image_size"] == SIZE


def test_prepare_is_idempotent_and_overwrite_rebuilds(tiny_celeba, tmp_path, monkeypatch):
    path = build(tiny_celeba, tmp_path)
    stamp = path.stat().st_mtime_ns

    def must_not_decode(*args):
        raise AssertionError("decoded an image for a cache that already exists")

    with monkeypatch.context() as patch:
        patch.setattr(data, "_load_face", must_not_decode)
        assert build(tiny_celeba, tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="overwrite=True"):
        build(tiny_celeba, tmp_path, image_size=16)
    build(tiny_celeba, tmp_path, image_size=16, overwrite=True)
    with CelebACache(path) as cache:
        assert cache.images(limit=2).shape == (2, 16, 16, 3)


def test_limit_caches_the_first_images(tiny_celeba, tmp_path):
    path = build(tiny_celeba, tmp_path, limit=10)
    with CelebACache(path) as cache:
        assert list(cache.files()) == [f"{i:06d}.jpg" for i in range(1, 11)]


def test_default_cache_path_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "somewhere" / "celeba"
    assert default_cache_path(root, 64) == tmp_path / "data" / "cache" / "celeba_64.h5"
    assert default_cache_path(root, 32, limit=500).name == "celeba_32_first500.h5"


def test_interrupted_build_leaves_no_complete_cache_and_resumes(tiny_celeba, tmp_path, monkeypatch):
    """A crash mid-build: nothing reads as complete; the next call finishes the rest only."""
    monkeypatch.setattr(data, "CHUNK_IMAGES", 8)
    real_append, calls = data._append, []

    def crash_in_third_chunk(dataset, rows):
        calls.append(dataset.name)
        if len(calls) == 11:  # block 3 (5 appends a block): images appended, attributes not yet
            raise RuntimeError("simulated crash")
        real_append(dataset, rows)

    monkeypatch.setattr(data, "_append", crash_in_third_chunk)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(tiny_celeba, tmp_path)
    monkeypatch.setattr(data, "_append", real_append)

    cache_path = tmp_path / "cache.h5"
    partial = tmp_path / "cache.h5.partial"
    assert not cache_path.exists() and partial.exists()
    with pytest.raises(DataError, match="interrupted"):
        CelebACache(cache_path)
    with pytest.raises(DataError, match="incomplete.*Re-run prepare_cache"):
        CelebACache(partial)
    with h5py.File(partial, "r") as file:
        assert file.attrs["done"] == 16 and not file.attrs["complete"]

    real_load, decoded = data._load_face, []

    def counting_load(path, size):
        decoded.append(path.name)
        return real_load(path, size)

    monkeypatch.setattr(data, "_load_face", counting_load)
    path = build(tiny_celeba, tmp_path)
    assert sorted(decoded) == [f"{i:06d}.jpg" for i in range(17, 25)]
    assert not partial.exists()
    fresh = prepare_cache(tiny_celeba, tmp_path / "fresh.h5", image_size=SIZE, progress=False)
    with CelebACache(path) as resumed, CelebACache(fresh) as expected:
        np.testing.assert_array_equal(resumed.images(), expected.images())
        np.testing.assert_array_equal(resumed.attributes(), expected.attributes())
        np.testing.assert_array_equal(resumed.files(), expected.files())
        np.testing.assert_array_equal(resumed.indices("valid"), expected.indices("valid"))


def test_reader_refuses_what_is_not_a_cache(tmp_path):
    with pytest.raises(DataError, match="found no file.*prepare_cache"):
        CelebACache(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="cannot open"):
        CelebACache(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.attrs["complete"] = True
    with pytest.raises(DataError, match="format"):
        CelebACache(tmp_path / "other.h5")


def test_cache_splits_and_names_are_checked(make_celeba, tmp_path):
    root = make_celeba()
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{i:06d}.jpg {int(i > 20)}\n" for i in range(1, 25))
    )
    with CelebACache(build(root, tmp_path)) as cache:
        assert cache.indices("test").size == 0  # like the shared subset
        assert cache.attributes("test").shape == (0, 41)  # 40 + derived Sunglasses
        with pytest.raises(DataError, match=r"'test' split .* found none"):
            cache.images("test")
        with pytest.raises(ValueError, match="Received: split='validation'"):
            cache.indices("validation")
        with pytest.raises(DataError, match=r"Did you mean \['Eyeglasses'"):
            cache.attribute("eyeglasses")
        assert "train=20, valid=4, test=0" in repr(cache)


# ## The dataset


@pytest.fixture
def chunked_cache(tiny_celeba, tmp_path, monkeypatch):
    """The tiny set cached in chunks of 4, streamed in pools of 2 chunks (carry-over used)."""
    monkeypatch.setattr(data, "CHUNK_IMAGES", 4)
    monkeypatch.setattr(data._BatchReader, "pool_blocks", 2)
    path = build(tiny_celeba, tmp_path)
    with CelebACache(path) as cache:
        lookup = {face.tobytes(): row for row, face in enumerate(cache.images())}
        assert len(lookup) == 24
    return path, lookup


def test_dataset_yields_float_batches_in_unit_range(chunked_cache):
    path, _ = chunked_cache
    dataset = make_dataset(path, "train", batch_size=5, attributes=True)
    assert len(dataset) == 4  # ceil(16 / 5)
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [5, 5, 5, 1]
    images, labels = batches[0]
    assert images.dtype.name == "float32" and images.shape[1:] == (SIZE, SIZE, 3)
    assert labels.dtype.name == "float32" and labels.shape == (5, 41)  # 40 + derived Sunglasses
    assert 0.0 <= float(np.min(images)) and float(np.max(images)) <= 1.0
    assert set(np.unique(labels)) <= {0.0, 1.0}
    dropped = make_dataset(path, "train", batch_size=5, drop_remainder=True)
    assert len(dropped) == 3 and dropped.element_spec.shape == (5, SIZE, SIZE, 3)


def test_dataset_attributes_belong_to_their_images(chunked_cache):
    path, lookup = chunked_cache
    with CelebACache(path) as cache:
        truth = (cache.attributes() > 0).astype(np.float32)
    for images, labels in make_dataset(path, "all", batch_size=7, attributes=True):
        pixels = np.round(images.numpy() * 255).astype(np.uint8)
        rows = [lookup[image.tobytes()] for image in pixels]
        np.testing.assert_array_equal(labels.numpy(), truth[rows])


def test_each_epoch_covers_the_split_once_and_reshuffles(chunked_cache):
    path, lookup = chunked_cache
    dataset = make_dataset(path, "train", batch_size=5, seed=1)
    first, second = epoch_rows(dataset, lookup), epoch_rows(dataset, lookup)
    train_rows = [row for row in range(24) if row % 6 < 4]
    assert sorted(first) == train_rows and sorted(second) == train_rows
    assert Counter(first).most_common(1)[0][1] == 1
    assert first != second
    same_seed = make_dataset(path, "train", batch_size=5, seed=1)
    assert epoch_rows(same_seed, lookup) == first and epoch_rows(same_seed, lookup) == second
    other_seed = make_dataset(path, "train", batch_size=5, seed=2)
    assert epoch_rows(other_seed, lookup) != first
    in_order = make_dataset(path, "train", batch_size=5, shuffle=False)
    assert epoch_rows(in_order, lookup) == train_rows


def test_mirror_flips_about_half_the_faces_and_keeps_the_order(chunked_cache):
    path, lookup = chunked_cache
    plain = [b.numpy() for b in make_dataset(path, "all", batch_size=5, seed=3)]
    mirrored = [b.numpy() for b in make_dataset(path, "all", batch_size=5, seed=3, mirror=True)]
    plain, mirrored = np.concatenate(plain), np.concatenate(mirrored)
    same = np.all(plain == mirrored, axis=(1, 2, 3))
    flipped = np.all(plain[:, :, ::-1] == mirrored, axis=(1, 2, 3)) & ~same
    assert (same | flipped).all()  # the same faces in the same order, some mirrored
    assert 4 <= flipped.sum() <= 20  # of 24, about half
    again = np.concatenate(
        [b.numpy() for b in make_dataset(path, "all", batch_size=5, seed=3, mirror=True)]
    )
    np.testing.assert_array_equal(again, mirrored)  # seeded


def test_dataset_limit_and_empty_split(chunked_cache):
    path, lookup = chunked_cache
    assert sorted(epoch_rows(make_dataset(path, "valid", batch_size=3, limit=2), lookup)) == [4, 10]
    with pytest.raises(DataError, match="drop_remainder"):
        make_dataset(path, "valid", batch_size=8, drop_remainder=True)


def test_shards_split_the_rows_between_workers(chunked_cache):
    """Two workers' shards are disjoint, cover the split, and each reads only its own chunks."""
    path, lookup = chunked_cache
    train_rows = [row for row in range(24) if row % 6 < 4]
    parts = [epoch_rows(make_dataset(path, "train", 3, shard=(i, 2)), lookup) for i in range(2)]
    assert sorted(parts[0]) == train_rows[:8] and sorted(parts[1]) == train_rows[8:]
    assert len(make_dataset(path, "train", 3, shard=(1, 2))) == 3  # ceil(8 / 3)
    with pytest.raises(ValueError, match=r"Received: shard=\(2, 2\)"):
        make_dataset(path, "train", 3, shard=(2, 2))
    with pytest.raises(DataError, match="one image per shard"):
        make_dataset(path, "valid", 1, limit=2, shard=(0, 3))


def test_a_128_pixel_cache_streams_at_its_size(tiny_celeba, tmp_path):
    path = prepare_cache(tiny_celeba, tmp_path / "tiny_128.h5", image_size=128, progress=False)
    dataset = make_dataset(path, "train", batch_size=8)
    assert dataset.element_spec.shape.as_list() == [None, 128, 128, 3]
    shapes = [tuple(images.shape) for images in dataset]
    assert shapes == [(8, 128, 128, 3), (8, 128, 128, 3)]


# ## The real CelebA subset


@pytest.fixture(scope="session")
def shared_cache(shared_celeba, tmp_path_factory):
    """The first 500 real faces cached at 64x64 (built once per session)."""
    path = tmp_path_factory.mktemp("shared") / "celeba_64_first500.h5"
    return prepare_cache(shared_celeba, path, image_size=64, limit=500, progress=False)


def test_shared_subset_lists(shared_celeba):
    table = read_attributes(shared_celeba)
    assert len(table) == 20_000 and table.values.shape == (20_000, 40)
    assert table.names == tuple(CELEBA_ATTRIBUTES)
    assert set(np.unique(table.values)) == {-1, 1}
    split = read_partition(shared_celeba, table.files)
    assert np.bincount(split, minlength=3).tolist() == [17_823, 2_177, 0]


def test_shared_subset_cache_streams(shared_cache, shared_celeba):
    with CelebACache(shared_cache) as cache:
        assert len(cache) == 500 and cache.image_size == 64
        first = cache.images(limit=1)[0].astype(int)
        n_train = len(cache.indices("train"))
    reference = reference_face(shared_celeba / "img_align_celeba" / "000004.jpg", 64)
    assert np.abs(first - reference).max() <= 2
    dataset = make_dataset(shared_cache, "all", batch_size=64)
    assert len(dataset) == math.ceil(500 / 64)
    count, total = 0, 0.0
    for images in dataset:
        assert images.shape[1:] == (64, 64, 3)
        count += images.shape[0]
        total += float(np.sum(images))
    assert count == 500
    assert 0.2 < total / (500 * 64 * 64 * 3) < 0.8  # real faces, not black or white frames
    assert len(make_dataset(shared_cache, "train", batch_size=64)) == math.ceil(n_train / 64)


def test_a_cache_of_an_older_format_is_rebuilt_with_a_warning(tiny_celeba, tmp_path):
    path = build(tiny_celeba, tmp_path)
    with h5py.File(path, "r+") as file:
        file.attrs["format"] = data.CACHE_FORMAT - 1
        del file["lens_cheek_ratio"]
    with pytest.warns(UserWarning, match="Rebuilding .* format"):
        assert build(tiny_celeba, tmp_path) == path
    with CelebACache(path) as cache:
        assert len(cache.lens_cheek_ratio()) == 24 and "Sunglasses" in cache.attribute_names

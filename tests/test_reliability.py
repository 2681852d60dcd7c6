"""The reliability sweep: every bad input gives one clear message and leaves no partial file.

Each case goes through the command line in-process (``cli.main``: a known error
prints one line starting ``error: `` to stderr and returns 2) where a command
exists, through the Python API otherwise. ``prepare`` and ``train`` are killed
with SIGKILL in a subprocess and resumed.

Covered elsewhere, not repeated here:

- photos that load fine: grayscale and gray+alpha, RGBA and palette with
  transparency (composited on white), 16-bit PNG, CMYK JPEG, WebP and EXIF
  rotation (``tests/test_faces.py``), plus the API-level photo errors (missing,
  not an image, truncated, decompression bomb, no face, tiny face with a real
  detection, face index);
- NaN loss (``test_training.py::test_nan_loss_stops_with_a_clear_message``) and
  a cache of another size than the config (``test_cache_of_another_size_is_refused``);
- truncated weights and other image sizes through ``model.load_vae``
  (``test_model.py``), and weights that are missing altogether through the CLI
  (``test_cli.py::test_missing_weights_says_to_train``);
- every ``data`` message at API level (``test_data.py``), including a crash
  simulated in-process while the cache is built.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from conftest import TINY_VAE
from PIL import Image

from dealwithit import cli, data, faces, model, training, vectors


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """``python -m dealwithit *args`` in-process: ``(exit code, stdout, stderr)``."""
    try:
        code = cli.main([str(arg) for arg in args])
    except SystemExit as exit_info:  # argparse rejects bad arguments before main runs
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clear_error(code: int, err: str, *excerpts: str) -> str:
    """Exit 2, no traceback, and one ``error:`` line, the last thing printed, with ``excerpts``."""
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0]
    for excerpt in excerpts:
        assert excerpt in errors[0], f"{excerpt!r} not in {errors[0]!r}"
    return errors[0]


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative paths, sorted); empty if it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ## Data


def _no_folder(make_celeba, tmp_path):
    return tmp_path / "nowhere"


def _no_attribute_file(make_celeba, tmp_path):
    root = make_celeba(n=6)
    (root / data.ATTRIBUTE_FILE).unlink()
    return root


def _no_image_folder(make_celeba, tmp_path):
    root = make_celeba(n=6)
    shutil.rmtree(root / data.IMAGE_DIR)
    return root


def _binary_attribute_file(make_celeba, tmp_path):
    root = make_celeba(n=6)
    (root / data.ATTRIBUTE_FILE).write_bytes(b"\xff\xfe\x00\x89PNG garbage")
    return root


def _variant(**variants):
    return lambda make_celeba, tmp_path: make_celeba(**variants)


def _partition_line(number, text):
    def setup(make_celeba, tmp_path):
        root = make_celeba(n=6)
        path = root / data.PARTITION_FILE
        lines = path.read_text().splitlines()
        lines[number - 1] = text
        path.write_text("\n".join(lines) + "\n")
        return root

    return setup


def _short_partition(make_celeba, tmp_path):
    root = make_celeba(n=6)
    path = root / data.PARTITION_FILE
    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n")
    return root


ALL_ONES = " ".join(["1"] * 40)

DATA_CASES = {
    # case: (setup, excerpts of the message)
    "missing_folder": (_no_folder, ["nowhere", "found no such folder", "synth", data.CELEBA_URL]),
    "no_attribute_file": (
        _no_attribute_file,
        [data.ATTRIBUTE_FILE, "found no such file", data.CELEBA_URL, "synth"],
    ),
    "no_image_folder": (_no_image_folder, [data.IMAGE_DIR, "found no such folder"]),
    "attribute_file_not_text": (_binary_attribute_file, ["not text", "Re-download"]),
    "attribute_line_missing_columns": (
        _variant(n=6, attribute_lines={5: "000003.jpg 1 -1"}),
        [f"{data.ATTRIBUTE_FILE} line 5", "expected 41 columns", "found 3"],
    ),
    "attribute_value_not_plus_minus_one": (
        _variant(n=6, attribute_lines={4: "000002.jpg " + " ".join(["2"] * 40)}),
        [f"{data.ATTRIBUTE_FILE} line 4", "1, -1 or 0", "'2' for 5_o_Clock_Shadow"],
    ),
    "attribute_line_duplicated": (
        _variant(n=6, attribute_lines={4: "000001.jpg " + ALL_ONES}),
        [f"{data.ATTRIBUTE_FILE} line 4", "000001.jpg again (first on line 3)"],
    ),
    "attribute_file_cut_short": (
        _variant(n=6, attribute_lines={1: "30"}),
        [f"{data.ATTRIBUTE_FILE} line 1", "expected 30 image rows", "found 6", "truncated"],
    ),
    "attribute_file_lists_missing_images": (
        _variant(n=6, missing=[2, 5]),
        ["found 2 missing", "'000003.jpg', '000006.jpg'"],
    ),
    "partition_line_malformed": (
        _partition_line(3, "000003.jpg 7"),
        [f"{data.PARTITION_FILE} line 3", "<0|1|2>", "'000003.jpg 7'"],
    ),
    "partition_file_leaves_images_out": (
        _short_partition,
        [data.PARTITION_FILE, "found 2 of 6 missing", "'000005.jpg', '000006.jpg'"],
    ),
    "no_decodable_image": (
        _variant(n=6, garbage=range(6)),
        ["Expected decodable images", "found none of 6", "000001.jpg"],
    ),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_folder_is_one_clear_line_and_writes_no_cache(
    case, make_celeba, tmp_path, workdir, capsys
):
    """``prepare`` on a broken CelebA folder: exit 2, the message, and no cache or .partial."""
    setup, excerpts = DATA_CASES[case]
    root = setup(make_celeba, tmp_path)
    code, _, err = run_cli(capsys, "prepare", "--data", root)
    assert_clear_error(code, err, *excerpts)
    assert files_under(workdir) == []


def test_damaged_images_are_skipped_once_and_odd_modes_converted(
    make_celeba, workdir, capsys, recwarn
):
    """Truncated and garbage JPEGs are left out with one warning; L/RGBA/CMYK/P become RGB."""
    root = make_celeba(truncated=[3], garbage=[7], modes={1: "L", 2: "RGBA", 4: "CMYK", 5: "P"})
    code, out, err = run_cli(capsys, "prepare", "--data", root)
    assert code == 0 and "Traceback" not in err
    skipped = [w for w in recwarn if "could not be decoded" in str(w.message)]
    assert len(skipped) == 1
    assert "Skipped 2 of 24" in str(skipped[0].message)
    assert "000004.jpg" in str(skipped[0].message) and "000008.jpg" in str(skipped[0].message)
    with data.CelebACache(data.default_cache_path(root, 64)) as cache:
        assert len(cache) == 22
        assert "000004.jpg" not in cache.files() and "000008.jpg" not in cache.files()
        faces_ = cache.images()
    assert faces_.shape == (22, 64, 64, 3) and faces_.dtype == np.uint8
    gray = faces_[list(cache.files()).index("000002.jpg")].astype(int)
    assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 1, "grayscale stays gray in RGB"
    assert files_under(workdir) == ["data/cache/celeba_64.h5"]


def test_damaged_cache_file_is_refused_then_rebuilt_with_overwrite(make_celeba, workdir, capsys):
    """A cache cut short on disk is never read as one; ``--overwrite`` replaces it."""
    root = make_celeba(n=6)
    cache = data.default_cache_path(root, 64)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    code, _, err = run_cli(capsys, "prepare", "--data", root)
    assert_clear_error(code, err, str(cache), "found another file", "overwrite")
    assert files_under(workdir) == ["data/cache/celeba_64.h5"], "no .partial left"
    code, _, _ = run_cli(capsys, "prepare", "--data", root, "--overwrite")
    assert code == 0
    with data.CelebACache(cache) as opened:
        assert len(opened) == 6


@pytest.fixture(scope="module")
def big_folder(synthetic_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3072 faces in the CelebA layout: the 96 rendered ones, each hard-linked 32 times.

    Rendering 3000 distinct faces takes ~25 s on 2 busy cores; the kill only
    needs a build that lasts a couple of seconds. 96 does not divide the
    64-image chunk, so a resume that wrote rows into the wrong place shows.
    """
    root = tmp_path_factory.mktemp("big") / "faces3072"
    (root / data.IMAGE_DIR).mkdir(parents=True)
    source = data.read_attributes(synthetic_folder)
    partition = data.read_partition(synthetic_folder, source.files)
    copies = 32
    names, rows, codes = [], [], []
    for copy in range(copies):
        for i, name in enumerate(source.files):
            new = f"{copy * len(source) + i + 1:06d}.jpg"
            os.link(synthetic_folder / data.IMAGE_DIR / name, root / data.IMAGE_DIR / new)
            names.append(new)
            rows.append(" ".join(f"{v:2d}" for v in source.values[i]))
            codes.append(int(partition[i]))
    lines = [str(len(names)), " ".join(source.names)]
    lines += [f"{name} {row}" for name, row in zip(names, rows)]
    (root / data.ATTRIBUTE_FILE).write_text("\n".join(lines) + "\n")
    text = "".join(f"{name} {code}\n" for name, code in zip(names, codes))
    (root / data.PARTITION_FILE).write_text(text)
    return root


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "wb") as handle:  # a file, not a pipe: progress bars can't fill it and block
        return subprocess.Popen(
            [sys.executable, "-m", "dealwithit", *args],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _kill_when(process: subprocess.Popen, ready, log: Path, timeout: float) -> None:
    """Polls ``ready()`` every 5 ms, then sends SIGKILL (no handler, no cleanup runs)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"finished (exit {process.returncode}) before the kill:\n{tail}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"not ready after {timeout} s:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_prepare_killed_mid_build_is_refused_then_resumed_to_every_image(
    big_folder, workdir, capsys, monkeypatch
):
    """SIGKILL after two chunks: no cache, readers refuse the .partial, a re-run finishes it."""
    cache = data.default_cache_path(big_folder, 64)
    partial = cache.with_name(cache.name + ".partial")
    chunk_bytes = data.CHUNK_IMAGES * 64 * 64 * 3
    process = _start(["prepare", "--data", str(big_folder)], workdir, workdir / "prepare.log")
    _kill_when(
        process,
        lambda: partial.is_file() and partial.stat().st_size > 2 * chunk_bytes,
        workdir / "prepare.log",
        timeout=60,
    )

    assert not cache.exists(), "a killed build never leaves a complete-looking cache"
    with pytest.raises(data.DataError, match=r"A build was interrupted .*\.partial exists"):
        data.CelebACache(cache)
    try:  # SIGKILL in the middle of an HDF5 write can leave the file unreadable
        with h5py.File(partial, "r") as file:
            done = int(file.attrs["done"])
    except OSError:
        done = 0
        refusal = "h5py cannot open"
    else:
        refusal = "found an incomplete one: its build was interrupted"
        assert 0 < done < 3072 and done % data.CHUNK_IMAGES == 0
    with pytest.raises(data.DataError, match=refusal):
        data.CelebACache(partial)

    decoded = []
    load_face = data._load_face

    def counting(path, image_size):
        decoded.append(path.name)
        return load_face(path, image_size)

    monkeypatch.setattr(data, "_load_face", counting)
    try:
        code, out, err = run_cli(capsys, "prepare", "--data", big_folder)
        crashed = None
    except OSError as error:  # the known bug of test_prepare_killed_before_a_flush_...
        crashed = error
        with h5py.File(partial, "r") as file:
            done = int(file.attrs["done"])
        decoded.clear()
        code, out, err = run_cli(capsys, "prepare", "--data", big_folder)
    assert code == 0, err
    assert len(decoded) == 3072 - done, "the re-run resumes after the last flushed chunk"
    assert not partial.exists()
    with data.CelebACache(cache) as opened:
        assert list(opened.files()) == [f"{i:06d}.jpg" for i in range(1, 3073)]
        assert (
            len(opened.indices("train"))
            + len(opened.indices("valid"))
            + len(opened.indices("test"))
            == 3072
        )
        rows = sorted({0, max(done - 1, 0), done, 3071})
        stored = opened._images[rows]
    for row, face in zip(rows, stored):
        path = big_folder / data.IMAGE_DIR / f"{row + 1:06d}.jpg"
        np.testing.assert_array_equal(face, data.load_face(path, 64))
    assert crashed is None, f"the first re-run crashed: {crashed}"


# Kills a build right after chunk 2's rows are appended, before that chunk's flush.
KILL_BEFORE_FLUSH = """
import os, signal, sys
from dealwithit import data
append = data._append
def append_then_die(dataset, rows):
    append(dataset, rows)
    if dataset.name == "/partition" and dataset.shape[0] > data.CHUNK_IMAGES:
        os.kill(os.getpid(), signal.SIGKILL)
data._append = append_then_die
data.prepare_cache(sys.argv[1], sys.argv[2], 64, progress=False)
"""


def test_prepare_killed_before_a_flush_resumes_on_the_first_rerun(make_celeba, workdir, capsys):
    root = make_celeba(n=160)
    cache = data.default_cache_path(root, 64)
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_FLUSH, str(root), str(cache)])
    assert killed.returncode == -signal.SIGKILL
    assert cache.with_name(cache.name + ".partial").is_file() and not cache.exists()
    code, _, err = run_cli(capsys, "prepare", "--data", root)
    assert code == 0, err
    with data.CelebACache(cache) as opened:
        assert list(opened.files()) == [f"{i:06d}.jpg" for i in range(1, 161)]


# ## Training


@pytest.mark.slow
def test_train_killed_after_an_epoch_resumes_without_losing_one(synthetic_folder, workdir, capsys):
    """SIGKILL once epoch 1 is backed up; ``train --resume`` logs epochs 0, 1, 2 exactly once."""
    args = [
        "train",
        "--data",
        str(synthetic_folder),
        "--image-size",
        "32",
        "--limit",
        "64",
        "--epochs",
        "3",
        "--classifier-epochs",
        "1",
    ]
    vae_dir = workdir / "weights" / synthetic_folder.name / "vae"
    metadata = vae_dir / training.BACKUP_DIR / "training_metadata.json"

    def backed_up() -> bool:
        try:
            return json.loads(metadata.read_text())["epoch"] >= 1
        except (OSError, ValueError, KeyError):
            return False

    process = _start(args, workdir, workdir / "train.log")
    _kill_when(process, backed_up, workdir / "train.log", timeout=240)
    finished = json.loads(metadata.read_text())["epoch"]
    assert not (vae_dir / model.VAE_FILE).exists(), "killed before the end of training"
    assert list(training.read_history(vae_dir)["epoch"]) == list(range(finished))

    code, out, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    assert out.count("Reusing the attribute classifier") == 2, "classifiers are not retrained"
    history = training.read_history(vae_dir)
    assert list(history["epoch"]) == [0, 1, 2]
    # One step an epoch and a 5-epoch warm-up: the KL weight at the end of each
    # epoch is 0, 0.2, 0.4 only if the resumed optimizer step continued the ramp.
    np.testing.assert_allclose(history["kl_weight"], [0.0, 0.2, 0.4], atol=1e-6)
    assert np.isfinite(history["loss"]).all()
    assert (vae_dir / model.VAE_FILE).is_file()
    assert not (vae_dir / training.BACKUP_DIR).exists()
    assert not [name for name in files_under(workdir / "weights") if ".tmp" in name]


class _InterruptAt(keras.callbacks.Callback):
    """Ctrl-C at the start of ``epoch``."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_resume_with_another_config_is_a_training_error(synthetic_cache, tmp_path):
    config = TINY_VAE.replace(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        training.train_vae(
            synthetic_cache, config, tmp_path, progress=False, callbacks=(_InterruptAt(1),)
        )
    with pytest.raises(training.TrainingError, match="resume"):
        training.train_vae(
            synthetic_cache, config.replace(latent_dim=8), tmp_path, resume=True, progress=False
        )


@pytest.mark.parametrize(
    ("command", "size"),
    [("train", "20"), ("prepare", "-5")],
    ids=["not_multiple_of_16", "negative"],
)
def test_bad_image_size_is_one_clear_line(command, size, tiny_celeba, workdir, capsys):
    code, _, err = run_cli(capsys, command, "--data", tiny_celeba, "--image-size", size)
    assert_clear_error(code, err, "image", size)
    assert files_under(workdir) == []


# ## Weights


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory, make_weights) -> Path:
    """A weights folder as `train` + `vector` leave it: vae/ (16x16, 4 latents) and vectors/."""
    return make_weights(tmp_path_factory.mktemp("weights") / "tiny")


@pytest.fixture
def weights_copy(tiny_weights: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_weights`` to damage."""
    return Path(shutil.copytree(tiny_weights, tmp_path / "weights" / "tiny"))


def test_truncated_weights_are_refused_through_apply(weights_copy, workdir, capsys):
    """A ``vae.keras`` cut in half on disk: exit 2 with 'truncated', never half-loaded."""
    path = weights_copy / "vae" / model.VAE_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, _, err = run_cli(capsys, "apply", "--weights", weights_copy)
    assert_clear_error(code, err, "Could not load VAE weights", str(path), "truncated")
    assert files_under(workdir) == []


@pytest.fixture
def lambda_weights(tmp_path: Path) -> Path:
    """A weights folder whose ``vae.keras`` holds a Lambda layer (arbitrary Python code)."""
    images = keras.Input((16, 16, 3))
    doubled = keras.layers.Lambda(lambda x: x * 2.0)(images)
    directory = tmp_path / "weights" / "lambda"
    (directory / "vae").mkdir(parents=True)
    keras.Model(images, doubled).save(directory / "vae" / model.VAE_FILE)
    TINY_VAE.to_json(directory / "vae" / model.CONFIG_FILE)
    return directory


def test_lambda_layer_is_refused_by_safe_mode(lambda_weights):
    with pytest.raises(model.WeightsError, match=r"Lambda.*unsafe|unsafe.*Lambda") as error:
        model.load_vae(lambda_weights / "vae")
    assert "safe_mode" in str(error.value) or "Lambda layers are refused" in str(error.value)


def test_lambda_layer_is_refused_through_apply(lambda_weights, workdir, capsys):
    code, _, err = run_cli(capsys, "apply", "--weights", lambda_weights)
    assert_clear_error(code, err, "Could not load VAE weights", "Lambda")


def test_weights_for_another_image_size_are_refused_before_any_cache(
    tiny_weights, tiny_celeba, workdir, capsys
):
    code, _, err = run_cli(
        capsys, "apply", "--weights", tiny_weights, "--data", tiny_celeba, "--image-size", 32
    )
    assert_clear_error(code, err, "Expected weights for 32x32", "built for 16x16", "16")
    assert files_under(workdir) == [], "no 32x32 cache is built for weights that cannot use it"


def test_apply_before_vector_says_to_run_vector(weights_copy, workdir, capsys):
    shutil.rmtree(weights_copy / "vectors")
    code, _, err = run_cli(capsys, "apply", "--weights", weights_copy)
    assert_clear_error(code, err, "vectors", "python -m dealwithit vector")


def test_vectors_folder_without_vectors_json_is_one_clear_line(weights_copy, workdir, capsys):
    (weights_copy / "vectors" / "Sunglasses" / "vectors.json").unlink()
    code, _, err = run_cli(capsys, "apply", "--weights", weights_copy)
    assert_clear_error(code, err, "vectors for Sunglasses", "python -m dealwithit vector")


def test_vectors_of_another_latent_size_are_one_clear_line(weights_copy, workdir, capsys):
    direction = np.eye(8)[0]
    vectors.save_vectors(
        weights_copy / "vectors" / "Sunglasses",
        {"conditional": direction},
        vectors.LatentClassifier(weights=direction, bias=0.0),
        {"kind": "conditional"},
    )
    code, _, err = run_cli(capsys, "apply", "--weights", weights_copy)
    assert_clear_error(code, err, "latent_dim=4", "latent_dim=8")


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_weights_config_is_one_clear_line(damage, weights_copy, workdir, capsys):
    config = weights_copy / "vae" / model.CONFIG_FILE
    if damage == "missing":
        config.unlink()
    else:
        config.write_text(config.read_text()[:20])
    code, _, err = run_cli(capsys, "apply", "--weights", weights_copy)
    assert_clear_error(code, err, str(config))


# ## Photos


@pytest.fixture
def outputs(workdir: Path) -> Path:
    """The default output folder of ``apply``, created so only the photo can fail."""
    folder = workdir / "outputs"
    folder.mkdir()
    return folder


def _blank_photo(path: Path) -> Path:
    Image.fromarray(np.full((300, 400, 3), 180, np.uint8)).save(path)
    return path


def _noise_jpeg(path: Path, keep: float = 1.0) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="JPEG")
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    return path


def _detects(found: list[faces.Face]):
    """Stands in for MTCNN, which never finds the blank test photo's face."""
    return lambda photo: list(found)


TEMPLATE_FACE = faces.Face(
    box=(100.0, 80.0, 180.0, 220.0), landmarks=faces.TEMPLATE + (110.0, 20.0), confidence=1.0
)
TINY_FACE = faces.Face(
    box=(10.0, 10.0, 45.0, 55.0), landmarks=faces.TEMPLATE / 4 + 10.0, confidence=1.0
)


def _missing(workdir, monkeypatch):
    return [workdir / "holiday.jpg"]


def _directory(workdir, monkeypatch):
    (workdir / "album.jpg").mkdir()
    return [workdir / "album.jpg"]


def _not_an_image(workdir, monkeypatch):
    (workdir / "notes.jpg").write_text("<html>not a photo</html>")
    return [workdir / "notes.jpg"]


def _truncated(workdir, monkeypatch):
    return [_noise_jpeg(workdir / "half.jpg", keep=0.5)]


def _bomb(workdir, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    return [_noise_jpeg(workdir / "bomb.jpg")]


def _no_face(workdir, monkeypatch):
    return [_blank_photo(workdir / "wall.jpg")]  # the real detector runs


def _tiny_face(workdir, monkeypatch):
    monkeypatch.setattr(faces, "detect_faces", _detects([TINY_FACE]))
    return [_blank_photo(workdir / "crowd.jpg")]


def _face_index(workdir, monkeypatch):
    monkeypatch.setattr(faces, "detect_faces", _detects([TEMPLATE_FACE]))
    return [_blank_photo(workdir / "one.jpg"), "--face", "3"]


def _gif_suffix(workdir, monkeypatch):
    monkeypatch.setattr(faces, "detect_faces", _detects([TEMPLATE_FACE]))
    return [_blank_photo(workdir / "one.jpg"), "-o", workdir / "outputs" / "one.gif"]


PHOTO_CASES = {
    # case: (setup returning the photo arguments, excerpts of the message)
    "missing_file": (_missing, ["holiday.jpg", "does not exist"]),
    "directory": (_directory, ["album.jpg", "is a directory"]),
    "not_an_image": (_not_an_image, ["notes.jpg", "does not recognise as an image"]),
    "truncated_jpeg": (_truncated, ["half.jpg", "truncated or corrupt"]),
    "decompression_bomb": (_bomb, ["bomb.jpg", "decompression bombs", "1,000 pixels"]),
    "no_face_found": (_no_face, ["No face found in", "wall.jpg", "frontal"]),
    "tiny_face": (_tiny_face, ["too small to edit", "9.8 px apart", "at least 16 px"]),
    "face_index_out_of_range": (_face_index, ["between 0 and 0", "face_index=3"]),
    "output_suffix_unknown": (_gif_suffix, ["one.gif", "ending in one of"]),
}


@pytest.mark.parametrize("case", PHOTO_CASES)
def test_bad_photo_is_one_clear_line_and_writes_nothing(
    case, tiny_weights, workdir, outputs, capsys, monkeypatch
):
    """``apply <photo>``: exit 2 with the reason, and no edited photo or temporary file."""
    setup, excerpts = PHOTO_CASES[case]
    photo_args = setup(workdir, monkeypatch)
    before = files_under(workdir)
    code, _, err = run_cli(capsys, "apply", *photo_args, "--weights", tiny_weights)
    assert_clear_error(code, err, *excerpts)
    assert files_under(workdir) == before
    assert files_under(outputs) == []


def test_good_photo_is_edited(tiny_weights, workdir, outputs, capsys, monkeypatch):
    """The control for the cases above: the same setup with a usable face writes one JPEG."""
    monkeypatch.setattr(faces, "detect_faces", _detects([TEMPLATE_FACE]))
    photo = _blank_photo(workdir / "one.jpg")
    code, out, err = run_cli(capsys, "apply", photo, "--weights", tiny_weights, "--alpha", "3")
    assert code == 0, err
    assert files_under(outputs) == ["one_dealwithit.jpg"]
    assert faces.load_photo(outputs / "one_dealwithit.jpg").shape == (300, 400, 3)


def test_apply_creates_its_default_output_folder(tiny_weights, workdir, capsys, monkeypatch):
    """``apply photo.jpg`` from a folder without outputs/ still writes outputs/<stem>_dealwithit.jpg."""
    monkeypatch.setattr(faces, "detect_faces", _detects([TEMPLATE_FACE]))
    photo = _blank_photo(workdir / "one.jpg")
    code, _, err = run_cli(capsys, "apply", photo, "--weights", tiny_weights, "--alpha", "3")
    assert code == 0, err
    assert (workdir / "outputs" / "one_dealwithit.jpg").is_file()


# ## Synthetic faces


@pytest.mark.parametrize("existing", ["non_empty_folder", "file"])
def test_synth_never_overwrites_without_the_flag(existing, workdir, capsys):
    """An existing output is refused with exit 2 and left exactly as it was."""
    out = workdir / "faces"
    if existing == "file":
        out.write_text("keep me")
        excerpts = ["faces", "which is a file"]
    else:
        out.mkdir()
        (out / "keep.txt").write_text("keep me")
        excerpts = ["faces", "already holds files", "overwrite"]
    before = files_under(workdir)
    code, _, err = run_cli(capsys, "synth", "--n", 4, "--out", out, "--workers", 1)
    assert_clear_error(code, err, *excerpts)
    assert files_under(workdir) == before, "nothing written, no .partial folder"


def test_synth_with_no_faces_is_one_clear_line(workdir, capsys):
    code, _, err = run_cli(capsys, "synth", "--n", 0, "--out", workdir / "faces")
    assert_clear_error(code, err, "--n", "got 0")
    assert files_under(workdir) == []

"""Edit latency: one aligned face, one whole photo, and batch encode + decode throughput.

An untrained plain VAE (speed does not depend on the weights) and a random
unit direction, in one process, interleaved:

- one 64x64 aligned crop through ``edit.edit_images`` (encode -> add
  ``alpha * direction`` -> decode) with the package's ``model.encoder_fn`` /
  ``model.decoder_fn``, which call the Keras models eagerly;
- the same edit with ``encode`` / ``decode`` wrapped in ``tf.function``, the
  speed-up candidate for single-face latency;
- ``edit.residual_edit`` (what a photo edit runs on its crops);
- a whole 1024x768 photo through ``faces.edit_photo`` (detect, align,
  residual edit, paste), on ``bench_photo.synthetic_photo`` built from a
  CelebA face; the goal is 150 ms;
- encode + decode of 1,024 faces at batch 256 (faces/s).

    .venv/bin/python benchmarks/bench_edit.py [--rounds 10] [--quick]
"""

from __future__ import annotations

import argparse

import bench_photo
import harness
import numpy as np
import tensorflow as tf
from PIL import Image

from dealwithit import edit, faces, model
from dealwithit.config import VAEConfig

## Setup

rounds = 10  # interleaved repetitions
alpha = 3.0  # offset along the direction, latent units
batch_faces = 1024  # faces per throughput repetition
batch_size = 256
celeba = harness.REPO.parent / "shared" / "data" / "celeba"


def compiled(vae: model.VAE):
    """``encode`` / ``decode`` NumPy callables that run the models as ``tf.function``s."""
    encoder = tf.function(lambda x: vae.encoder(x, training=False)[0])
    decoder = tf.function(lambda z: vae.decoder(z, training=False))

    def encode(images):
        return encoder(tf.convert_to_tensor(images, tf.float32)).numpy()

    def decode(z):
        return decoder(tf.convert_to_tensor(z, tf.float32)).numpy()

    return encode, decode


def latency(function):
    """A repetition: one call of ``function``, as a ``Rate`` of calls."""
    return lambda: harness.measure_rate(function, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2

    record = harness.Record(
        "edit",
        "5. Edit latency",
        "Milliseconds per edit of one aligned 64x64 face and of a 1024x768 photo, and faces/s "
        f"of encode + decode at batch {batch_size}; untrained VAE, interleaved.",
    )
    record.settings(rounds=args.rounds, alpha=alpha, batch_faces=batch_faces, batch_size=batch_size)
    config = VAEConfig(discriminative=False)
    vae = model.build_vae(config)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=config.latent_dim)
    direction /= np.linalg.norm(direction)
    face = harness.random_images(1)
    many = harness.random_images(batch_faces, seed=1)
    encode, decode = model.encoder_fn(vae, batch_size), model.decoder_fn(vae, batch_size)
    fast_encode, fast_decode = compiled(vae)

    def batch():
        decode(encode(many))

    candidates = {
        "crop edit, eager (edit_images)": latency(
            lambda: edit.edit_images(face, encode, decode, direction, alpha)
        ),
        "crop edit, tf.function": latency(
            lambda: edit.edit_images(face, fast_encode, fast_decode, direction, alpha)
        ),
        "residual edit, eager (residual_edit)": latency(
            lambda: edit.residual_edit(face, encode, decode, direction, alpha)
        ),
        "encode + decode at batch 256": lambda: harness.measure_rate(batch, batch_faces),
    }
    source = celeba / "img_align_celeba" / bench_photo.celeba_file
    if source.is_file():
        photo, _ = bench_photo.synthetic_photo(np.asarray(Image.open(source).convert("RGB")))

        def residuals(crops):
            return edit.residual_edit(crops, encode, decode, direction, alpha)

        candidates["photo edit 1024x768 (edit_photo)"] = latency(
            lambda: faces.edit_photo(photo, residuals, image_size=config.image_size)
        )
    else:
        record.note(f"No CelebA face at {source}: the whole-photo edit was not timed.")
    for run in candidates.values():
        run()  # warm-up: tracing, the detector's first build
    values, loads = harness.interleave(candidates, args.rounds)

    def add_latency(name: str, goal=None) -> dict:
        rates = values[name]
        row = record.add(
            name, [1000.0 / r.per_second for r in rates], "ms", loads=loads[name], goal=goal
        )
        row["cpu"] = f"{np.median(harness.cpu_ms(rates)):.3g} CPU ms"
        return row

    eager = add_latency("crop edit, eager (edit_images)")
    add_latency("crop edit, tf.function")
    add_latency("residual edit, eager (residual_edit)")
    speedup = record.add_speed_ratio(
        "crop edit: tf.function / eager speed",
        values["crop edit, tf.function"],
        values["crop edit, eager (edit_images)"],
        loads=loads["crop edit, eager (edit_images)"] + loads["crop edit, tf.function"],
        speedup="tf.function around encode/decode for single-face edits",
    )
    photo = None
    if "photo edit 1024x768 (edit_photo)" in values:
        photo = add_latency("photo edit 1024x768 (edit_photo)", goal=("<=", 150))
    throughput = record.add_rates(
        "encode + decode at batch 256",
        values["encode + decode at batch 256"],
        "faces/s",
        loads=loads["encode + decode at batch 256"],
    )
    photo_text = f"a whole photo {photo['median']:.0f} ms; " if photo else ""
    record.note(
        f"One aligned face edits in {eager['median']:.0f} ms ({speedup['median']:.1f}x faster "
        f"as tf.function); {photo_text}batches encode + decode at "
        f"{throughput['median']:.0f} faces/s."
    )
    record.save()


if __name__ == "__main__":
    main()

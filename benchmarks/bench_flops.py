"""How close training runs to the machine's limit, and what the step spends its time on.

FLOPs are counted from the layer shapes (``count_flops``: 2 x multiply-adds of
every Conv2D, Conv2DTranspose and Dense; bias adds and activations left out)
and cross-checked with TensorFlow's graph profiler. A training step costs
about 3x the forward pass (forward, gradient for the inputs, gradient for the
weights); discriminative regularization adds the frozen classifier's first
stages forward on x and x̂ and backward on x̂ (about 3x their forward).
The limit is a large float32 ``tf.matmul`` timed in the same process,
interleaved with the training epochs. The profile times, per batch of 64,
the encoder and decoder forward, the forward with loss, forward + backward,
forward + backward + Adam, and the DR-VAE's forward + backward, all as
``tf.function``s; the full ``fit`` step comes from the timed epochs.

    .venv/bin/python benchmarks/bench_flops.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse

import harness
import keras
import numpy as np
import tensorflow as tf

from dealwithit import model
from dealwithit.config import AttributeClassifierConfig, VAEConfig

## Setup

rounds = 5  # interleaved repetitions of every timing
steps = 5  # training steps per timed epoch
calls = 3  # calls per timed repetition of the profile functions
matmul_size = 2048  # side of the square float32 matrices of the peak measurement
batch_size = 64


def count_flops(network: keras.Model) -> dict[str, int]:
    """Forward FLOPs per example of every Conv2D, Conv2DTranspose and Dense layer.

    Walks nested models. A conv producing an ``h x w x c_out`` map with a
    ``k x k x c_in`` kernel does ``h w c_out k k c_in`` multiply-adds; a
    transposed conv scatters each of its ``h_in w_in c_in`` inputs through
    ``k k c_out`` weights; a dense layer does ``n_in n_out``. One
    multiply-add is 2 FLOPs.

    Args:
        network: A built Keras model.

    Returns:
        Layer name -> FLOPs for one example.
    """
    flops = {}
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            flops.update({f"{layer.name}/{k}": v for k, v in count_flops(layer).items()})
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw, c_out, _ = layer.kernel.shape
            flops[layer.name] = 2 * h * w * c_in * kh * kw * c_out
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            flops[layer.name] = 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            n_in, n_out = layer.kernel.shape
            flops[layer.name] = 2 * n_in * n_out
    return flops


def profiler_flops(network: keras.Model, input_shape: tuple[int, ...]) -> int | None:
    """Forward FLOPs per example as TensorFlow's graph profiler counts them (batch 1)."""
    try:
        function = tf.function(lambda x: network(x, training=False))
        graph = function.get_concrete_function(tf.TensorSpec((1, *input_shape))).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
    except Exception as error:  # The v1 profiler is best effort; the count stands alone.
        print(f"TensorFlow's profiler could not count FLOPs: {type(error).__name__}: {error}")
        return None


def matmul_rate(size: int, dtype=tf.float32, repeats: int = 4):
    """A repetition of ``repeats`` products of two ``size`` squares, as a ``Rate`` in GFLOP.

    ``Rate.per_second`` is GFLOP/s and ``Rate.cpu_ms`` CPU ms per GFLOP.
    """
    a = tf.cast(tf.random.normal((size, size)), dtype)
    multiply = tf.function(lambda a: tf.matmul(a, a))
    multiply(a).numpy()

    def work():
        for _ in range(repeats):
            result = multiply(a)
        result.numpy()

    return lambda: harness.measure_rate(work, repeats * 2 * size**3 / 1e9)


def loss_of(vae: model.VAE):
    """The VAE's training loss as a function of a batch (trackers updated as in fit)."""

    def loss(x):
        return vae.compute_loss(x=x, y_pred=vae(x, training=True))

    return loss


def profile_functions(vae: model.VAE, dr: model.VAE, images: np.ndarray):
    """Named ``tf.function``s of one batch each, for the step's breakdown."""
    x = tf.constant(images)
    z = tf.constant(np.random.default_rng(0).normal(size=(len(images), vae.config.latent_dim)))
    z = tf.cast(z, tf.float32)

    def forward_backward(network):
        loss = loss_of(network)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                value = loss(x)
            return value, tape.gradient(value, network.trainable_variables)

        return step

    optimizer = keras.optimizers.Adam(vae.config.learning_rate)
    optimizer.build(vae.trainable_variables)
    gradients = forward_backward(vae)

    @tf.function
    def train_step(x):
        value, grads = gradients(x)
        optimizer.apply_gradients(zip(grads, vae.trainable_variables))
        return value

    functions = {
        "encoder forward": (tf.function(lambda x: vae.encoder(x, training=True)), x),
        "decoder forward": (tf.function(lambda z: vae.decoder(z, training=True)), z),
        "forward + loss": (tf.function(loss_of(vae)), x),
        "forward + backward": (forward_backward(vae), x),
        "forward + backward + Adam": (train_step, x),
        "DR-VAE forward + backward": (forward_backward(dr), x),
    }

    def timer(function, argument):
        def work():
            for _ in range(calls):
                result = function(argument)
            tf.nest.map_structure(lambda t: t.numpy(), result)

        work()  # tracing
        return lambda: harness.measure_rate(work, calls)

    return {name: timer(function, argument) for name, (function, argument) in functions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()
    n_steps = steps
    if args.quick:
        args.rounds, n_steps = 2, 2

    record = harness.Record(
        "flops",
        "2. Distance from the machine's limit",
        "Model FLOPs per training image x measured img/s, against a "
        f"{matmul_size}x{matmul_size} float32 tf.matmul timed in the same process "
        "(interleaved), and a per-batch breakdown of the training step.",
    )
    record.settings(rounds=args.rounds, steps=n_steps, batch_size=batch_size, calls=calls)

    plain_config = VAEConfig(discriminative=False)
    vae = model.build_vae(plain_config)
    vae.compile(optimizer=keras.optimizers.Adam(plain_config.learning_rate))
    classifier = model.build_attribute_classifier(AttributeClassifierConfig())
    dr = model.build_vae(VAEConfig(), classifier)
    dr.compile(optimizer=keras.optimizers.Adam(dr.config.learning_rate))

    encoder = sum(count_flops(vae.encoder).values())
    decoder = sum(count_flops(vae.decoder).values())
    extractor = sum(count_flops(dr.feature_extractor).values())
    forward = encoder + decoder
    train_plain = 3 * forward
    train_dr = train_plain + 3 * extractor
    checks = {
        "encoder": profiler_flops(vae.encoder, (64, 64, 3)),
        "decoder": profiler_flops(vae.decoder, (plain_config.latent_dim,)),
    }
    record.settings(
        forward_mflops_per_image={
            "encoder": round(encoder / 1e6, 2),
            "decoder": round(decoder / 1e6, 2),
            "classifier stages (DR)": round(extractor / 1e6, 2),
        },
        profiler_forward_mflops_per_image={
            k: (round(v / 1e6, 2) if v else None) for k, v in checks.items()
        },
        training_mflops_per_image={
            "plain": round(train_plain / 1e6, 1),
            "DR-VAE": round(train_dr / 1e6, 1),
        },
    )

    images = harness.random_images(n_steps * batch_size)
    dataset = harness.in_memory_dataset(images, batch_size)
    harness.fit_rate(vae, dataset, n_steps, batch_size)
    harness.fit_rate(dr, dataset, n_steps, batch_size)
    peak = matmul_rate(matmul_size)
    peak_bf16 = matmul_rate(matmul_size, tf.bfloat16)
    profile = profile_functions(vae, dr, images[:batch_size])
    candidates = {
        "matmul float32": peak,
        "matmul bfloat16": peak_bf16,
        "plain": lambda: harness.fit_rate(vae, dataset, n_steps, batch_size),
        "DR-VAE": lambda: harness.fit_rate(dr, dataset, n_steps, batch_size),
        **profile,
    }
    values, loads = harness.interleave(candidates, args.rounds)

    matmul = values["matmul float32"]
    record.add_rates("matmul float32", matmul, "GFLOP/s", loads=loads["matmul float32"])
    record.add_rates(
        "matmul bfloat16", values["matmul bfloat16"], "GFLOP/s", loads=loads["matmul bfloat16"]
    )
    fractions = {}
    for name, flops in (("plain", train_plain), ("DR-VAE", train_dr)):
        rates = values[name]
        record.add_rates(f"{name} training", rates, "img/s", loads=loads[name])
        gflop = flops / 1e9
        achieved = [harness.Rate(r.per_second * gflop, r.cpu_ms / gflop) for r in rates]
        record.add_rates(f"{name} training, achieved", achieved, "GFLOP/s", loads=loads[name])
        fractions[name] = record.add_speed_ratio(
            f"{name}: achieved / matmul float32",
            achieved,
            matmul,
            loads=loads[name] + loads["matmul float32"],
        )
    # Per batch of 64: wall ms and CPU ms of every profiled piece and of the fit step.
    per_batch = {
        name: [(1000.0 / r.per_second, r.cpu_ms) for r in values[name]] for name in profile
    }
    per_batch["full fit step"] = [
        (1000.0 * batch_size / r.per_second, r.cpu_ms * batch_size) for r in values["plain"]
    ]
    for name, times in per_batch.items():
        row = record.add(
            f"{name} (ms per batch of 64)",
            [wall for wall, _ in times],
            "ms",
            loads=loads["plain" if name == "full fit step" else name],
        )
        row["cpu"] = f"{np.median([cpu for _, cpu in times]):.3g} CPU ms"

    def compare(metric: str, part: str, whole: str, unit: str) -> dict:
        a, b = per_batch[part], per_batch[whole]
        row = record.add(metric, [x[0] / y[0] for x, y in zip(a, b)], unit)
        cpu = harness.summary([x[1] / y[1] for x, y in zip(a, b)])
        scale, sign = (100, " %") if unit == "fraction" else (1, "")
        row["cpu"] = (
            f"{scale * cpu['median']:.3g}{sign} "
            f"({scale * cpu['min']:.3g}–{scale * cpu['max']:.3g}{sign})"
        )
        row["cpu_median"] = cpu["median"]
        return row

    for part in ("encoder forward", "decoder forward", "forward + loss"):
        compare(f"{part} / forward + backward", part, "forward + backward", "fraction")
    dr_part = compare(
        "forward + backward / DR-VAE forward + backward",
        "forward + backward",
        "DR-VAE forward + backward",
        "fraction",
    )
    backward = compare(
        "forward + backward / forward + loss", "forward + backward", "forward + loss", "x"
    )
    adam = compare(
        "forward + backward + Adam / forward + backward",
        "forward + backward + Adam",
        "forward + backward",
        "x",
    )
    fit = compare(
        "full fit step / forward + backward + Adam",
        "full fit step",
        "forward + backward + Adam",
        "x",
    )
    encoder_ms = np.median([cpu for _, cpu in per_batch["encoder forward"]])
    decoder_ms = np.median([cpu for _, cpu in per_batch["decoder forward"]])
    plain = fractions["plain"]
    record.note(
        f"Training reaches {plain['median']:.0%} of the float32 matmul rate by the clock and "
        f"{plain['cpu_median']:.0%} per CPU second "
        f"({train_plain / 1e6:.0f} MFLOP per image). By CPU time, forward + backward is "
        f"{backward['cpu_median']:.1f}x the forward, Adam {adam['cpu_median'] - 1:+.0%} on "
        f"top, fit's own step {fit['cpu_median'] - 1:+.0%} more; encoder {encoder_ms:.0f} vs decoder "
        f"{decoder_ms:.0f} CPU ms forward per batch; the DR part is "
        f"{1 - dr_part['cpu_median']:.0%} of the DR-VAE's forward + backward."
    )
    record.save()


if __name__ == "__main__":
    main()

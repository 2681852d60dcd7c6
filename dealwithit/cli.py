"""``python -m dealwithit <command>``: argument parsing and dispatch, a thin layer over ``pipeline``.

Each command calls one step and prints that step's ``report()``. Known errors
(bad data, missing weights, unreadable photos) print one clear message and
exit with status 2; nothing is written half-way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dealwithit import data, quiet
from dealwithit.config import ARCHITECTURES, REGIONS, VectorConfig

COMMANDS_HELP = """commands, in run order:
  synth     render the synthetic face set in the CelebA layout
  prepare   crop and resize a CelebA-layout folder into the HDF5 cache
  train     train the attribute classifiers and the DR-VAE
  vector    encode the data and find the sunglasses direction in Z
  evaluate  measure the edits (flip rate, locality, leakage) and write JSON
  apply     put sunglasses on faces: a photo, or a face from the data set
  demo      all of the above on the synthetic set (or --data CelebA)
  notebooks run the four notebooks, writing executed copies
  pack      copy trained weights for inference only (how weights/pretrained is made)
"""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``data.check_positive``), with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    try:
        data.check_positive("value", value)
    except ValueError:
        # argparse names the option itself ("argument --n: ..."); say only what is wrong.
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}") from None
    return value


def _weights_list(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated non-negative floats, e.g. ``1,1,1,1``."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 1,1,1, got {text!r}"
        ) from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected weights >= 0, got {text!r}")
    return values


def _named_weights(text: str) -> tuple[tuple[str, float], ...]:
    """argparse type: comma-separated ``Name=weight`` pairs, e.g. ``Eyeglasses=1000``."""
    pairs = []
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not name or value < 0:
            raise argparse.ArgumentTypeError(
                f"expected Name=weight pairs such as Eyeglasses=1000,Sunglasses=1000, got {text!r}"
            )
        pairs.append((name, value))
    return tuple(pairs)


def _add_data(parser, required=False, several=False):
    text = (
        "CelebA-layout folder, or a folder of plain photos whose faces are cut into one "
        "(default: data/celeba when present, else data/synthetic)"
    )
    if several:
        text += "; repeat it to add more sets to the VAE's training faces only"
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        required=required,
        action="append" if several else "store",
        help=text,
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="pixels per side (default: the trained weights' size, else 64)",
    )


def _add_attribute(parser):
    parser.add_argument(
        "--attribute",
        default=None,
        help="whose direction to use (default Sunglasses); the weights need its vectors: "
        "make them with `vector --attribute NAME`",
    )


def _add_weights(parser):
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="weights folder of one data set, e.g. weights/celeba (default: weights/pretrained "
        "for photos, else weights/<default data folder>, else the most recently trained)",
    )


def _add_verbose(parser, default=argparse.SUPPRESS):
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="show TensorFlow's start-up and log lines",
    )


class _Parser(argparse.ArgumentParser):
    """Bad arguments end like every other user error: usage, then one ``error:`` line, exit 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dealwithit",
        description="Deep DealWithIt: sunglasses through a VAE's latent space.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_verbose(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    p = sub.add_parser(
        "synth",
        help="render synthetic faces in the CelebA layout",
        description="Render N synthetic faces (with sunglasses, glasses, hair, beards...) as "
        "178x218 JPEGs with CelebA's attribute and partition files, plus counterfactual "
        "sunglasses-on/off images for the test split and a contact sheet.",
    )
    p.add_argument("--n", type=positive_int, default=20000, help="number of faces (default 20000)")
    p.add_argument("--out", type=Path, default=Path("data/synthetic"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: all cores)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    p = sub.add_parser(
        "prepare",
        help="build the HDF5 cache of cropped faces",
        description="Crop each face to the 148x148 centre box (15, 35, 163, 183) of the aligned "
        "178x218 frame, resize, and write images, attributes, file names and split to "
        "data/cache/<folder>_<size>.h5. Interrupted builds are never mistaken for complete ones.",
    )
    _add_data(p)
    p.add_argument("--overwrite", action="store_true", help="rebuild even if the cache exists")

    p = sub.add_parser(
        "train",
        help="train the attribute classifiers and the VAE",
        description="Train the 40-attribute classifier (frozen, for discriminative "
        "regularization), an independent judge classifier, and the VAE with KL warm-up. "
        "Writes weights/<folder>/ and pictures to outputs/<folder>/.",
    )
    _add_data(p, several=True)
    _add_weights(p)
    p.add_argument("--epochs", type=positive_int, default=None, help="VAE epochs (default: config)")
    p.add_argument("--classifier-epochs", type=positive_int, default=None)
    p.add_argument(
        "--judge-epochs", type=positive_int, default=None, help="epochs of the independent judge"
    )
    p.add_argument("--latent-dim", type=positive_int, default=None)
    p.add_argument(
        "--filters",
        type=positive_int,
        nargs="+",
        default=None,
        help="channels of each encoder stage, e.g. 32 64 128 (the decoder mirrors them)",
    )
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--no-discriminative", action="store_true", help="train a plain VAE")
    p.add_argument(
        "--batch-norm", action="store_true", help="BatchNorm in the VAE (off by default)"
    )
    p.add_argument(
        "--dropout", type=float, default=None, help="dropout rate in the VAE (default 0)"
    )
    p.add_argument("--likelihood", choices=("gaussian", "bernoulli"), default=None)
    p.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default=None,
        help="VAE architecture (default: config's)",
    )
    p.add_argument(
        "--transfer-stages",
        type=int,
        default=None,
        help="start this many encoder stages from the attribute classifier's (default 0)",
    )
    p.add_argument(
        "--discriminative-weights",
        type=_weights_list,
        default=None,
        help="one weight per classifier stage compared, e.g. 1,1,1,1 for all four (default 1,1,1)",
    )
    p.add_argument(
        "--logit-weight",
        type=float,
        default=None,
        help="weight of each of the classifier's attribute logits, compared too (default 100; 0: off)",
    )
    p.add_argument(
        "--cosine-decay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VAE learning rate falls to 0 along a half cosine over the run (default: config's)",
    )
    p.add_argument(
        "--logit-weights",
        type=_named_weights,
        default=None,
        help="per-attribute logit weights replacing --logit-weight for those, "
        "e.g. Eyeglasses=1000,Sunglasses=1000",
    )
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flip a random half of the VAE's training faces left to right (default: config's)",
    )
    p.add_argument("--learning-rate", type=float, default=None, help="VAE Adam learning rate")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--limit", type=positive_int, default=None, help="use at most this many training images"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi-worker"),
        default="default",
        help="one device; every local device; or the machines of TF_CONFIG (README: Scaling out)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16", "float16"),
        default=None,
        help="VAE compute precision (default float32): bfloat16 on CPUs with avx512_bf16/AMX, "
        "float16 on GPUs; both keep float32 weights and losses; auto: bfloat16 where the CPU "
        "has it, else float32",
    )

    p = sub.add_parser(
        "vector",
        help="find the attribute direction in latent space",
        description="Encode the data set to latent means, train a classifier on Z for the "
        "attribute, and save several directions (mean difference, balanced, classifier normal, "
        "conditional) with their cosines to weights/<folder>/vectors/.",
    )
    _add_data(p)
    _add_weights(p)
    p.add_argument(
        "--attribute",
        default="Sunglasses",
        help="attribute to find a direction for, spelled as in the attribute file "
        "(default Sunglasses, derived from lens darkness when the file has none; e.g. Eyeglasses)",
    )
    p.add_argument("--conditions", nargs="*", default=None, help="attributes to project out")
    p.add_argument(
        "--target-probability",
        type=float,
        default=VectorConfig.target_probability,
        help="auto alpha's goal: the latent classifier's score after an edit "
        f"(default {VectorConfig.target_probability}; removing aims at 1 minus it)",
    )
    p.add_argument(
        "--region",
        choices=REGIONS,
        default=VectorConfig.region,
        help="where the direction may act: 'eyes' keeps only a spatial latent's grid rows over "
        "the eyes, 'face' all of z; 'auto' (default) is 'eyes' for Sunglasses and Eyeglasses "
        "on a spatial VAE, else 'face'",
    )

    p = sub.add_parser(
        "evaluate",
        help="measure the edits and write JSON",
        description="Flip rate as judged by an independent classifier, locality, attribute "
        "leakage and (synthetic data) counterfactual error, on any CelebA-layout folder.",
    )
    _add_data(p)
    _add_weights(p)
    _add_attribute(p)
    p.add_argument("--json", type=Path, default=None, help="where to write the metrics")
    p.add_argument(
        "--n",
        "--limit",
        dest="limit",
        type=positive_int,
        default=None,
        help="faces to evaluate (default: every held-out face)",
    )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        help="also write a results record, e.g. results/edits_celeba/seed0.json (make results)",
    )

    p = sub.add_parser(
        "apply",
        help="put sunglasses on a photo or a data-set face",
        description="With photos: detect faces, align, edit in latent space and paste the change "
        "back. Without: edit test faces from the data set. --gif writes the DealWithIt animation.",
    )
    p.add_argument("photos", nargs="*", type=Path, help="photos to edit (JPEG, PNG, WebP...)")
    p.add_argument("-o", "--out", type=Path, default=None, help="output file or folder")
    _add_data(p)
    _add_weights(p)
    p.add_argument(
        "--alpha", type=float, default=None, help="offset along the direction (default: auto)"
    )
    _add_attribute(p)
    p.add_argument("--remove", action="store_true", help="take sunglasses off instead")
    p.add_argument("--gif", action="store_true", help="write the DealWithIt GIF")
    p.add_argument("--face", type=int, default=None, help="edit only this face (0 = leftmost)")
    p.add_argument("--index", type=int, default=0, help="data-set test face to edit (no photos)")

    p = sub.add_parser(
        "demo",
        help="run everything",
        description="synth -> prepare -> train -> vector -> evaluate -> slider grid and GIF, on the "
        "synthetic set by default or on --data. Pictures and metrics.json go to outputs/<folder>/.",
    )
    p.add_argument("--data", type=Path, default=None, help="a CelebA-layout folder")
    p.add_argument("--image-size", type=positive_int, default=64)
    p.add_argument("--epochs", type=positive_int, default=None, help="VAE epochs (default: config)")
    p.add_argument("--n", type=positive_int, default=20000, help="synthetic faces to render")

    p = sub.add_parser(
        "pack",
        help="copy trained weights for inference only",
        description="Save the VAE, classifier and judge without optimizer state, with every "
        "attribute's vectors, into a new folder (weights/pretrained is made this way).",
    )
    p.add_argument("--weights", type=Path, required=True, help="a trained weights folder")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (replaced)")
    p.add_argument("--judge", type=Path, default=None, help="ship this judge folder instead")

    p = sub.add_parser(
        "notebooks", help="run the notebooks", description="Execute the notebooks in order."
    )
    p.add_argument("--out", type=Path, default=Path("outputs/notebooks"))
    p.add_argument("--small", action="store_true", help="the tiny test configuration")
    for command in sub.choices.values():
        _add_verbose(command)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported when a command runs, not at the top: these modules pull in TensorFlow,
    # which must be imported quietly first and which --help never needs.
    from dealwithit import faces, model, pipeline, training, vectors

    return (
        data.DataError,
        model.WeightsError,
        training.TrainingError,
        pipeline.PipelineError,
        vectors.VectorsNotFoundError,
        vectors.LatentDimMismatchError,
        vectors.DegenerateDirectionError,
        faces.PhotoError,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["DEALWITHIT_VERBOSE"] = "1"  # notebook kernels inherit it
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    quiet.log_file_progress()
    quiet.show_notes()
    try:
        # TensorFlow is imported here, not at the top, so that --help and bad
        # arguments answer at once and its start-up lines can be hidden.
        quiet.import_tensorflow(show_startup=args.verbose)
        return run_command(args) or 0
    except KeyboardInterrupt:
        print("\nInterrupted. Finished epochs are kept; re-run with --resume.", file=sys.stderr)
        return 130
    except _user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_command(args) -> int:
    """Dispatches parsed arguments (see ``build_parser``); bad settings become ``PipelineError``."""
    from dealwithit import pipeline  # see _user_errors: TensorFlow comes in after parsing

    try:
        return _run_command(args)
    except (ValueError, FileExistsError) as error:
        # Our own argument and config checks ("Expected image_size divisible by ...")
        # are messages for the user; a ValueError raised inside a library keeps its traceback.
        if _raised_here(error):
            raise pipeline.PipelineError(str(error)) from error
        raise


def _raised_here(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in this package."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    package = str(Path(__file__).resolve().parent)
    return traceback is not None and traceback.tb_frame.f_code.co_filename.startswith(package)


def _saved_image_size(weights: Path | None) -> int | None:
    """The image size the VAE in ``weights`` was trained for, when there is one."""
    from dealwithit import model  # see _user_errors: TensorFlow comes in after parsing
    from dealwithit.config import VAEConfig

    path = Path(weights or "") / "vae" / model.CONFIG_FILE
    return (
        model.read_config(VAEConfig, path.parent).image_size if weights and path.is_file() else None
    )


def _show(result) -> None:
    print(result.report())


def train_config(args, image_size: int):
    """The ``VAEConfig`` that ``train``'s flags ask for: the defaults, overridden by each flag given."""
    from dealwithit import model
    from dealwithit.config import VAEConfig

    overrides = {
        "epochs": args.epochs,
        "latent_dim": args.latent_dim,
        "filters": None if args.filters is None else tuple(args.filters),
        "warmup_epochs": args.warmup_epochs,
        "likelihood": args.likelihood,
        "seed": args.seed,
        "precision": model.fastest_precision() if args.precision == "auto" else args.precision,
        "architecture": args.architecture,
        "transfer_stages": args.transfer_stages,
        "discriminative_weights": args.discriminative_weights,
        "logit_weight": args.logit_weight,
        "logit_weights": args.logit_weights,
        "cosine_decay": args.cosine_decay,
        "mirror": args.mirror,
        "learning_rate": args.learning_rate,
    }
    if args.no_discriminative:
        overrides["discriminative"] = False
    if args.batch_norm:
        overrides["batch_norm"] = True
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    return VAEConfig(image_size=image_size).replace(
        **{k: v for k, v in overrides.items() if v is not None}
    )


def _run_command(args) -> int:
    # Imported after parsing (see main): the steps pull in Keras and TensorFlow.
    from dealwithit import model, notebooks, pipeline, training
    from dealwithit.config import AttributeClassifierConfig, VAEConfig, VectorConfig

    command = args.command
    if command == "synth":
        _show(pipeline.synth(args.out, args.n, args.seed, args.workers, args.overwrite))
        return 0
    if command == "demo":
        result = pipeline.demo(args.data, args.image_size, args.epochs, args.n, report=_show)
        _show(result)
        return 0
    if command == "notebooks":
        notebooks.run_all(args.out, small=args.small)
        return 0
    if command == "pack":
        _show(pipeline.pack(args.weights, args.out, args.judge))
        return 0
    several = args.data if isinstance(args.data, list) else [args.data]
    folders = [pipeline.celeba_layout(folder) for folder in several if folder is not None]
    data_dir, mix = (folders[0], folders[1:]) if folders else (pipeline.default_data(), [])
    weights = getattr(args, "weights", None)
    if weights is None and command in ("evaluate", "apply"):
        weights = pipeline.default_weights(for_photos=bool(getattr(args, "photos", None)))
    weights = weights or pipeline.Workspace(data_dir).weights
    saved_size = _saved_image_size(weights) if command != "train" else None
    image_size = args.image_size or saved_size or 64
    workspace = pipeline.Workspace(data_dir, image_size, weights=weights)
    if command == "prepare":
        _show(pipeline.prepare(workspace, overwrite=args.overwrite))
    elif command == "train":
        config = train_config(args, image_size)
        if args.resume and (workspace.vae_dir / model.CONFIG_FILE).is_file():
            config = model.read_config(VAEConfig, workspace.vae_dir)
        classifier_config = None
        if args.classifier_epochs is not None:
            classifier_config = AttributeClassifierConfig(
                image_size=image_size, epochs=args.classifier_epochs
            )
        strategy = training.make_strategy(args.strategy)  # before other TensorFlow work
        judge_config = None
        if args.judge_epochs is not None:
            judge_config = workspace.judge_config(epochs=args.judge_epochs)
        result = pipeline.train(
            workspace,
            config,
            classifier_config,
            judge_config=judge_config,
            resume=args.resume,
            limit=args.limit,
            strategy=strategy,
            mix=mix,
        )
        if result is not None:  # None on a multi-worker run's other workers
            _show(result)
    elif command == "vector":
        config = VectorConfig(
            attribute=args.attribute,
            target_probability=args.target_probability,
            region=args.region,
        )
        if args.conditions is not None:
            config = config.replace(conditions=tuple(args.conditions))
        _show(pipeline.vector(workspace, config))
    elif command == "evaluate":
        _show(
            pipeline.evaluate(
                workspace, args.json, args.limit, attribute=args.attribute, record=args.record
            )
        )
    elif command == "apply":
        options = {
            "alpha": args.alpha,
            "remove": args.remove,
            "gif": args.gif,
            "attribute": args.attribute,
        }
        if args.photos:
            result = pipeline.apply_photos(
                workspace.weights, args.photos, args.out, face=args.face, **options
            )
        else:
            result = pipeline.apply_dataset_face(workspace, args.index, args.out, **options)
        _show(result)
    return 0

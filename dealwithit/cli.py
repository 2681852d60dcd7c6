"""``python -m dealwithit <command>``: a thin layer over ``pipeline``.

Known errors (bad data, missing weights, unreadable photos) print one clear
message and exit with status 2; nothing is written half-way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMANDS_HELP = """commands, in run order:
  synth     render the synthetic face set in the CelebA layout
  prepare   crop and resize a CelebA-layout folder into the HDF5 cache
  train     train the attribute classifiers and the DR-VAE
  vector    encode the data and find the sunglasses direction in Z
  evaluate  measure the edits (flip rate, locality, leakage) and write JSON
  apply     put sunglasses on faces: a photo, or a face from the data set
  demo      all of the above on the synthetic set (or --data CelebA)
  notebooks run the four notebooks, writing executed copies
"""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _add_data(parser, required=False):
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        required=required,
        help="CelebA-layout folder (default: data/celeba when present, else data/synthetic)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="pixels per side (default: the trained weights' size, else 64)",
    )


def _add_weights(parser):
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="weights folder of one data set, e.g. weights/celeba (default: the last trained)",
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
    _add_data(p)
    _add_weights(p)
    p.add_argument("--epochs", type=positive_int, default=None, help="VAE epochs (default: config)")
    p.add_argument("--classifier-epochs", type=positive_int, default=None)
    p.add_argument(
        "--judge-epochs", type=positive_int, default=None, help="epochs of the independent judge"
    )
    p.add_argument("--latent-dim", type=positive_int, default=None)
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--no-discriminative", action="store_true", help="train a plain VAE")
    p.add_argument(
        "--batch-norm", action="store_true", help="BatchNorm in the VAE (off by default)"
    )
    p.add_argument(
        "--dropout", type=float, default=None, help="dropout rate in the VAE (default 0)"
    )
    p.add_argument("--likelihood", choices=("gaussian", "bernoulli"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--limit", type=positive_int, default=None, help="use at most this many training images"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")

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

    p = sub.add_parser(
        "evaluate",
        help="measure the edits and write JSON",
        description="Flip rate as judged by an independent classifier, locality, attribute "
        "leakage and (synthetic data) counterfactual error, on any CelebA-layout folder.",
    )
    _add_data(p)
    _add_weights(p)
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
        "notebooks", help="run the notebooks", description="Execute the notebooks in order."
    )
    p.add_argument("--out", type=Path, default=Path("outputs/notebooks"))
    p.add_argument("--small", action="store_true", help="the tiny test configuration")
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from dealwithit import data, model, pipeline, training, vectors

    errors = [
        data.DataError,
        model.WeightsError,
        training.TrainingError,
        pipeline.PipelineError,
        vectors.VectorsNotFoundError,
        vectors.LatentDimMismatchError,
        vectors.DegenerateDirectionError,
    ]
    try:
        from dealwithit import faces

        errors.append(faces.PhotoError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dealwithit import pipeline

    try:
        return pipeline.run_command(args) or 0
    except KeyboardInterrupt:
        print("\nInterrupted. Finished epochs are kept; re-run with --resume.", file=sys.stderr)
        return 130
    except _user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

"""Train the classifier from scratch.

    python -m cxrlib.train --data ../shared/cxr --out models/

Each image is cropped to its lung fields (the committed lung segmenter;
--no-lung-crop keeps the whole image), sampled class-balanced, augmented,
trained with AdamW and early stopping on validation macro-F1, then
temperature-scaled on the validation split. Writes OUT/NAME.keras and
OUT/NAME.json (see cxrlib.train.classifier).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.architectures import ARCHITECTURES
from cxrlib.train.classifier import train
from cxrlib.train.config import TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m cxrlib.train``."""
    d, dp = TrainConfig(), PreprocessConfig()
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="../shared/cxr", help="folder with manifest.csv")
    p.add_argument(
        "--manifest",
        default=None,
        help="manifest CSV (default DATA/manifest.csv); its paths are relative to DATA",
    )
    p.add_argument("--out", default="models", help="output folder")
    p.add_argument("--name", default="cxr_classifier", help="output file stem")
    p.add_argument(
        "--exclude-source",
        action="append",
        default=[],
        help="leave this source out of training (repeatable)",
    )
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--arch", default=d.arch, choices=list(ARCHITECTURES))
    p.add_argument("--alpha", type=float, default=d.alpha, help="MobileNetV2 width multiplier")
    p.add_argument("--width", type=int, default=d.width, help="first-stage filters of small")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--sampling-power",
        type=float,
        default=d.sampling_power,
        help="within-class source weighting n**power (1 = class balance only)",
    )
    p.add_argument(
        "--sampling-floor",
        type=int,
        default=d.sampling_floor,
        help="(source, class) groups smaller than this are weighted per image like a group "
        "of this size, so tiny sources are not oversampled (1 = off)",
    )
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--size", type=int, default=dp.size)
    p.add_argument(
        "--lung-crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop every image to its lung fields (committed lung segmenter) before resizing "
        "(default: on, as the committed model; --no-lung-crop keeps the whole image)",
    )
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The training run that parsed arguments ask for."""
    return TrainConfig(
        **{k: v for k, v in vars(a).items() if k in TrainConfig.model_fields},
        exclude_sources=tuple(a.exclude_source),
        preprocess=PreprocessConfig(size=a.size, lung_crop=a.lung_crop),
    )


def main(argv: list[str] | None = None) -> int:
    """Trains the classifier the command line asks for; the command goes into its JSON."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    manifest = a.manifest or str(Path(a.data) / "manifest.csv")
    command = "python -m cxrlib.train " + shlex.join(argv)
    train(
        manifest,
        a.out,
        config_from_args(a),
        name=a.name,
        root=a.data,
        command=command,
        verbose=0 if a.quiet else 1,
        cache=not a.no_cache,
    )
    return 0

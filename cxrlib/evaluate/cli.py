"""``python -m cxrlib.evaluate SUBCOMMAND``: measure a classifier honestly.

    metrics   score a manifest (or one split); --record: val and test into the metrics file
    audit     shortcut audit: lungs erased / alone (--ablate), Grad-CAM lung focus (--explain)
    methods   every heatmap method compared, and the model-randomisation check
    loso      leave one source out: retrain without each source, test on it
    external  the lung set's collections that no training image came from

``--record`` stores a subcommand's result in ``models/<name>.metrics.json`` with the
command that produced it. ``python -m cxrlib.evaluate SUBCOMMAND --help`` lists its options.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from cxrlib.core.settings import DEFAULT_DATA_DIR, model_path, segmenter_path

PROG = "python -m cxrlib.evaluate"


def _parent(*adders: str) -> argparse.ArgumentParser:
    """A parent parser holding the shared options named in ``adders``."""
    p = argparse.ArgumentParser(add_help=False)
    if "model" in adders:
        p.add_argument("--model", default=str(model_path()), help="the classifier")
    if "data" in adders:
        p.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="the shared CXR folder")
        p.add_argument("--manifest", help="CSV with path,label[,source,split] (DATA/manifest.csv)")
        p.add_argument("--root", help="folder the paths are relative to (the CSV's)")
    if "split" in adders:
        p.add_argument("--split", help="keep only the rows of this split")
    if "views" in adders:
        g = p.add_mutually_exclusive_group()
        g.add_argument(
            "--views", action="store_true", help="average over the app's 8 test-time views"
        )
        g.add_argument("--single-view", action="store_true", help="score the original image only")
    if "segmenter" in adders:
        p.add_argument("--segmenter", default=str(segmenter_path()), help="the lung segmenter")
    if "alternative" in adders:
        p.add_argument(
            "--record-alternative",
            metavar="NAME",
            help="store this (not committed) model as NAME in the committed model's metrics",
        )
        p.add_argument(
            "--record-into",
            default=str(model_path().with_suffix(".metrics.json")),
            help="the metrics file --record-alternative writes to",
        )
    p.add_argument("--json", help="write the full result here")
    p.add_argument(
        "--record", action="store_true", help="store the result in models/<name>.metrics.json"
    )
    return p


def _add_metrics(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "metrics",
        parents=[_parent("model", "data", "split", "views")],
        help="score a manifest or one split",
        description="Accuracy, balanced accuracy, macro-F1, per-class rates and AUC, "
        "calibration, per-source accuracy and bootstrap 95% intervals. The model predicts "
        "as its JSON says (test-time views or not) unless --views / --single-view. "
        "--record scores val and test of DATA and writes them into the metrics file.",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for ci95")
    return p


def _add_audit(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "audit",
        parents=[_parent("model", "data", "split", "views", "segmenter", "alternative")],
        help="shortcut audit: lungs erased / lungs only, Grad-CAM lung focus",
        description="Scores the manifest as `metrics` does, then audits a stratified sample "
        "of it. --record-alternative (with --ablate) stores a model that was not committed "
        "beside the committed one, for the Trust page's comparison.",
    )
    p.add_argument("--ablate", action="store_true", help="score with the lungs erased / alone")
    p.add_argument("--explain", action="store_true", help="Grad-CAM lung focus, faithfulness")
    p.add_argument(
        "--shortcuts",
        action="store_true",
        help="nih re-saved at 256 px and quex at 384 px (changed answers), and a source probe "
        "on the penultimate features within each class (needs DATA/groups.csv)",
    )
    p.add_argument("--max-images", type=int, help="audit at most this many images")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for ci95")
    return p


def _add_methods(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "methods",
        parents=[_parent("model", "data", "split", "segmenter")],
        help="every heatmap method compared; model-randomisation check",
        description="Every registered heatmap method on the same stratified sample: how far "
        "their hottest regions agree, their lung focus, and how much each map changes when "
        "the network's weights are re-drawn at random (three random copies).",
    )
    p.add_argument(
        "--images", type=int, default=200, help="images to compare on (about 3 s each on 2 cores)"
    )
    return p


def _add_loso(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "loso",
        parents=[_parent("model", "data", "views")],
        help="leave one source out: retrain without each, test on it",
        description="Retrains the model's own recipe without each source in turn and scores "
        "all of that source. With --steps 0 and --epochs at least the model's own, --record "
        "stores it as the full recipe's ('loso_full'), else as 'loso'.",
    )
    p.add_argument("sources", help="comma-separated sources to hold out, e.g. nih,cxnet")
    p.add_argument("--epochs", type=int, default=4, help="epochs of each run")
    p.add_argument("--steps", type=int, default=150, help="steps per epoch; 0 for whole epochs")
    return p


def _add_external(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "external",
        parents=[_parent("model", "data", "views", "alternative")],
        help="the lung set's collections no training image came from",
        description="Scores the lung set's outside collections (OpenIST's normal adults), "
        "checked for duplicates of the manifest's images. --record-alternative adds the "
        "result to an alternative recorded by `audit --ablate --record-alternative`.",
    )
    p.add_argument(
        "lungs", nargs="?", default="../shared/lungs", help="the lung set's folder (%(default)s)"
    )
    return p


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and its subparser for each subcommand."""
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    adders = (_add_metrics, _add_audit, _add_methods, _add_loso, _add_external)
    subparsers = {sp.prog.split()[-1]: sp for sp in (add(sub) for add in adders)}
    return p, subparsers


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parses and checks ``argv``; exits 2 with a message on a bad combination."""
    p, subparsers = build_parser()
    a = p.parse_args(argv)
    _check(subparsers[a.command], a)
    return a


def _check(sub: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """The combinations a subcommand refuses, before any long evaluation."""
    if a.command == "metrics" and a.record:
        options = {"--manifest": a.manifest, "--root": a.root, "--split": a.split}
        options.update({"--views": a.views, "--single-view": a.single_view, "--json": a.json})
        given = [f for f, v in options.items() if v]
        if given:
            sub.error(
                f"--record scores val and test of DATA as the model predicts: leave out {given[0]}"
            )
    if a.command == "audit":
        if a.record_alternative and not a.ablate:
            sub.error(
                "--record-alternative needs --ablate (the comparison is the lungs-erased score)"
            )
        if not (a.ablate or a.explain or a.shortcuts):
            sub.error("audit needs --ablate, --explain, --shortcuts or a mix")
    if getattr(a, "record_alternative", None) and not Path(a.record_into).exists():
        sub.error(f"{a.record_into} does not exist: record the committed model's metrics first")


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns its exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    from cxrlib.evaluate.commands import COMMANDS  # loads TensorFlow: not for --help

    command = f"{PROG} " + " ".join(shlex.quote(x) for x in argv)
    return COMMANDS[a.command](a, command)

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
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlib.core.metrics import read_metrics, write_metrics
from cxrlib.core.settings import DEFAULT_DATA_DIR, model_path, segmenter_path
from cxrlib.infer.views import DEFAULT_VIEWS, View

if TYPE_CHECKING:  # the subcommands load TensorFlow when they run, not for --help
    from cxrlib.infer.classifier import Classifier

logger = logging.getLogger(__name__)

PROG = "python -m cxrlib.evaluate"
#: Subcommand -> (one-line help, description).
SUBCOMMANDS = {
    "metrics": (
        "score a manifest or one split",
        "Accuracy, balanced accuracy, macro-F1, per-class rates and AUC, calibration, "
        "per-source accuracy and bootstrap 95% intervals. The model predicts as its JSON says "
        "(test-time views or not) unless --views / --single-view. --record scores val and test "
        "of DATA and writes them into the metrics file.",
    ),
    "audit": (
        "shortcut audit: lungs erased / lungs only, Grad-CAM lung focus",
        "Scores the manifest as `metrics` does, then audits a stratified sample of it. "
        "--record-alternative (with --ablate) stores a model that was not committed beside "
        "the committed one, for the Trust page's comparison.",
    ),
    "methods": (
        "every heatmap method compared; model-randomisation check",
        "Every registered heatmap method on the same stratified sample: how far their hottest "
        "regions agree, their lung focus, and how much each map changes when the network's "
        "weights are re-drawn at random (three random copies).",
    ),
    "loso": (
        "leave one source out: retrain without each, test on it",
        "Retrains the model's own recipe without each source in turn and scores all of that "
        "source. With --steps 0 and --epochs at least the model's own, --record stores it as "
        "the full recipe's ('loso_full'), else as 'loso'.",
    ),
    "external": (
        "the lung set's collections no training image came from",
        "Scores the lung set's outside collections (OpenIST's normal adults), checked for "
        "duplicates of the manifest's images. --record-alternative adds the result to an "
        "alternative recorded by `audit --ablate --record-alternative`.",
    ),
}


def _add_options(p: argparse.ArgumentParser, name: str) -> None:
    """The options of subcommand ``name``, in the order ``--help`` lists them."""
    p.add_argument("--model", default=str(model_path()), help="the classifier")
    p.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="the shared CXR folder")
    p.add_argument("--manifest", help="CSV with path,label[,source,split] (DATA/manifest.csv)")
    p.add_argument("--root", help="folder the paths are relative to (the CSV's)")
    if name in ("metrics", "audit", "methods"):
        p.add_argument("--split", help="keep only the rows of this split")
    if name != "methods":
        g = p.add_mutually_exclusive_group()
        g.add_argument(
            "--views", action="store_true", help="average over the app's 8 test-time views"
        )
        g.add_argument("--single-view", action="store_true", help="score the original image only")
    if name in ("audit", "methods"):
        p.add_argument("--segmenter", default=str(segmenter_path()), help="the lung segmenter")
    if name in ("audit", "external"):
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
    if name == "audit":
        p.add_argument("--ablate", action="store_true", help="score with the lungs erased / alone")
        p.add_argument("--explain", action="store_true", help="Grad-CAM lung focus, faithfulness")
        p.add_argument(
            "--shortcuts",
            action="store_true",
            help="nih re-saved at 256 px and quex at 384 px (changed answers), and a source "
            "probe on the penultimate features within each class (needs DATA/groups.csv)",
        )
        p.add_argument("--max-images", type=int, help="audit at most this many images")
    if name in ("metrics", "audit"):
        p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for ci95")
    if name == "methods":
        p.add_argument(
            "--images",
            type=int,
            default=200,
            help="images to compare on (about 3 s each on 2 cores)",
        )
    if name == "loso":
        p.add_argument("sources", help="comma-separated sources to hold out, e.g. nih,cxnet")
        p.add_argument("--epochs", type=int, default=4, help="epochs of each run")
        p.add_argument("--steps", type=int, default=150, help="steps per epoch; 0 for whole epochs")
    if name == "external":
        p.add_argument(
            "lungs",
            nargs="?",
            default="../shared/lungs",
            help="the lung set's folder (%(default)s)",
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parses ``argv``, refusing (exit 2) what a subcommand cannot do before it runs."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    subparsers = {}
    for name, (summary, description) in SUBCOMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=summary, description=description)
        _add_options(subparsers[name], name)
    a = parser.parse_args(argv)
    refuse = subparsers[a.command].error
    if a.command == "metrics" and a.record:
        options = {"--manifest": a.manifest, "--root": a.root, "--split": a.split}
        options.update({"--views": a.views, "--single-view": a.single_view, "--json": a.json})
        given = [f for f, v in options.items() if v]
        if given:
            refuse(
                f"--record scores val and test of DATA as the model predicts: leave out {given[0]}"
            )
    if a.command == "audit":
        if a.record_alternative and not a.ablate:
            refuse("--record-alternative needs --ablate (the comparison is the lungs-erased score)")
        if not (a.ablate or a.explain or a.shortcuts):
            refuse("audit needs --ablate, --explain, --shortcuts or a mix")
    if getattr(a, "record_alternative", None) and not Path(a.record_into).exists():
        refuse(f"{a.record_into} does not exist: record the committed model's metrics first")
    return a


# --- the metrics file ---------------------------------------------------------------------


def _write(path: Path, metrics: dict[str, Any]) -> Path:
    """Writes ``metrics`` through the schema, raising before the file is touched."""
    write_metrics(path, read_metrics(metrics, f"{path} (not written)"))
    return path


def merge_loso(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the held-out sources of ``old`` that it did not rerun, and every run's
    command, when both ran the same schedule; else ``new``."""
    if not old or old.get("schedule") != new.get("schedule"):
        return new
    commands = list(old.get("commands") or ([old["command"]] if old.get("command") else []))
    if new.get("command"):
        commands.append(new["command"])
    return {
        **new,
        "sources": {**(old.get("sources") or {}), **(new.get("sources") or {})},
        "commands": commands,
    }


def record_sections(model: str | Path, weights_sha256: str, sections: dict[str, Any]) -> Path:
    """Merges ``sections`` into ``<model>.metrics.json``, dropping what the file holds for
    other weights."""
    path = Path(model).with_suffix(".metrics.json")
    out = read_metrics(path).model_dump(mode="json", exclude_unset=True) if path.exists() else {}
    if out.get("weights_sha256") != weights_sha256:
        out = {}
    for key in ("loso", "loso_full"):
        if key in sections:
            sections = {**sections, key: merge_loso(out.get(key), sections[key])}
    out.update({"model": Path(model).name, "weights_sha256": weights_sha256})
    out.update(sections)
    return _write(path, out)


def _committed(
    path: str | Path, weights_sha256: str, name: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The committed metrics file these weights may join as an alternative, and their
    alternative ``name`` if asked for; ValueError if either is not so."""
    out = read_metrics(path).model_dump(mode="json", exclude_unset=True)
    if out.get("weights_sha256") == weights_sha256:
        raise ValueError(f"{path} is this model's own metrics file: it is no alternative to itself")
    alt = (out.get("alternatives") or {}).get(name) if name else {}
    if not isinstance(alt, dict) or (name and alt.get("weights_sha256") != weights_sha256):
        raise ValueError(
            f"{path} has no alternative {name!r} for these weights: record it with "
            "`python -m cxrlib.evaluate audit --split test --ablate --record-alternative` first"
        )
    return out, alt


def _alternative(res: dict[str, Any], clf: Classifier, command: str) -> dict[str, Any]:
    """What the Trust page compares with the committed model, from an ``audit --ablate``."""
    abl, meta = res["ablation"], clf.meta
    erased = abl["lungs_erased"]
    return {
        "preprocess": meta.get("preprocess") or {},
        "train_config": meta.get("train_config") or {},
        "params": meta.get("params"),
        "keras_backend": meta.get("keras_backend"),
        "weights_sha256": clf.weights_sha256,
        "split": abl.get("split"),
        "n": res["n"],
        "views": len(res.get("views", ())),
        "balanced_accuracy": res["balanced_accuracy"],
        "ci95": (res.get("ci95") or {}).get("balanced_accuracy"),
        "covid_sensitivity": (res["per_class"].get("covid") or {}).get("sensitivity"),
        "ece": res.get("ece"),
        "lungs_erased": {
            "balanced_accuracy": erased.get("balanced_accuracy"),
            "covid_auc": (erased.get("auc") or {}).get("covid"),
        },
        "lungs_only": {"balanced_accuracy": abl["lungs_only"].get("balanced_accuracy")},
        "chance": abl.get("chance"),
        "command": command,
    }


# --- the subcommands ----------------------------------------------------------------------


def _views(a: argparse.Namespace) -> Sequence[View] | None:
    """``--views``: the app's 8 views; ``--single-view``: none; else as the model says."""
    if a.views:
        return DEFAULT_VIEWS
    return () if a.single_view else None


def _manifest(a: argparse.Namespace) -> str:
    return a.manifest or str(Path(a.data) / "manifest.csv")


def _finish(
    a: argparse.Namespace, clf: Classifier, res: dict[str, Any], sections: dict[str, Any]
) -> None:
    """Writes ``--json`` (the result with its sections) and, with ``--record``, the sections."""
    res.update(sections)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    if a.record and sections:
        print(f"wrote {record_sections(a.model, clf.weights_sha256, sections)}")


def _score(a: argparse.Namespace, clf: Classifier) -> dict[str, Any]:
    """The manifest (or its ``--split``) scored and printed as a table."""
    from cxrlib.evaluate.metrics import evaluate_manifest, format_table

    manifest = _manifest(a)
    res = evaluate_manifest(
        clf, manifest, root=a.root, split=a.split, n_boot=a.bootstrap, views=_views(a)
    )
    title = manifest + (f" [{a.split}]" if a.split else "")
    n_views = len(res.get("views", ()))
    print(format_table(res, title=title + (f" (mean over {n_views} views)" if n_views else "")))
    return res


def run_metrics(a: argparse.Namespace, clf: Classifier, command: str) -> None:
    """Scores a manifest; with ``--record``, val and test of DATA into the metrics file."""
    from cxrlib.evaluate.metrics import evaluate_manifest, format_table

    if not a.record:
        return _finish(a, clf, _score(a, clf), {})
    manifest = Path(a.data) / "manifest.csv"
    splits = {}
    for split in ("val", "test"):
        splits[split] = evaluate_manifest(clf, manifest, split=split, n_boot=a.bootstrap)
        logger.info(format_table(splits[split], title=f"== {split} =="))
    sections = {"manifest": manifest.name, "splits": splits}
    logger.info(f"wrote {record_sections(a.model, clf.weights_sha256, sections)}")


def run_audit(a: argparse.Namespace, clf: Classifier, command: str) -> None:
    """The manifest's scores plus the lung ablation, Grad-CAM lung focus and / or shortcuts."""
    import pandas as pd

    from cxrlib.evaluate.audit import format_shortcuts, run_audits, shortcut_checks
    from cxrlib.train.data import read_manifest

    res = _score(a, clf)
    df = read_manifest(_manifest(a), root=a.root, split=a.split, class_names=clf.class_names)
    audits = run_audits(clf, df, a.ablate, a.explain, a.max_images, a.segmenter)
    if a.shortcuts:
        groups = pd.read_csv(Path(a.data) / "groups.csv").set_index("path")["group"]
        audits["shortcuts"] = shortcut_checks(clf, df, groups)
        print(format_shortcuts(audits["shortcuts"]))
    sections = {key: {**val, "split": a.split, "command": command} for key, val in audits.items()}
    _finish(a, clf, res, sections)
    if a.record_alternative:
        out, _ = _committed(a.record_into, clf.weights_sha256)
        out.setdefault("alternatives", {})[a.record_alternative] = _alternative(res, clf, command)
        print(f"wrote {_write(Path(a.record_into), out)}")


def run_methods(a: argparse.Namespace, clf: Classifier, command: str) -> None:
    """Every heatmap method compared on a stratified sample, and randomised."""
    from cxrlib.evaluate.methods import compare_explanations, format_methods
    from cxrlib.infer.lungs import load_segmenter
    from cxrlib.train.data import load_gray, read_manifest, stratified_sample

    df = read_manifest(_manifest(a), root=a.root, split=a.split, class_names=clf.class_names)
    sub = stratified_sample(df, a.images)
    t0 = time.time()
    grays = [load_gray(f) for f in sub["file"]]
    section = compare_explanations(clf, load_segmenter(a.segmenter), grays)
    section.update(seconds=round(time.time() - t0, 1), split=a.split, command=command)
    print(format_methods(section))
    _finish(a, clf, {}, {"explain_methods": section})


def run_loso(a: argparse.Namespace, clf: Classifier, command: str) -> None:
    """Retrains without each source in turn, and scores it."""
    from cxrlib.evaluate.loso import leave_one_source_out, loso_config, loso_section

    cfg = loso_config(clf, a.epochs, a.steps)
    # The held-out sources are also scored as the model predicts (a fresh short-schedule
    # model has no fitted view temperature; accuracy and AUC do not depend on it).
    views = clf.resolve_views(_views(a))
    section = leave_one_source_out(
        _manifest(a), cfg, a.sources.split(","), root=a.root, views=views
    )
    section["command"] = command
    _finish(a, clf, {}, {loso_section(clf, a.epochs, a.steps): section})


def run_external(a: argparse.Namespace, clf: Classifier, command: str) -> None:
    """The lung set's collections that no training image came from."""
    from cxrlib.evaluate.external import external_check, format_external
    from cxrlib.train.data import read_manifest

    training = read_manifest(_manifest(a), root=a.root, class_names=clf.class_names)
    section = external_check(clf, a.lungs, list(training["file"]), _views(a))
    section["command"] = command
    print(format_external(section, clf.class_names))
    _finish(a, clf, {}, {"external": section})
    if a.record_alternative:
        out, alt = _committed(a.record_into, clf.weights_sha256, a.record_alternative)
        # The alternative keeps the figures, not the per-image predictions.
        alt["external"] = {
            **{k: v for k, v in section.items() if k != "collections"},
            "collections": {
                key: {k: v for k, v in rec.items() if k != "predictions"}
                for key, rec in section["collections"].items()
            },
        }
        print(f"wrote {_write(Path(a.record_into), out)}")


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns its exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    from cxrlib.infer.classifier import load_classifier

    clf = load_classifier(a.model)
    if getattr(a, "record_alternative", None):
        # Refused before minutes of scoring, not after them; `external` adds to a recorded one.
        name = a.record_alternative if a.command == "external" else None
        try:
            _committed(a.record_into, clf.weights_sha256, name)
        except ValueError as e:
            print(f"not recorded: {e}", file=sys.stderr)
            return 2
    runs = {
        "metrics": run_metrics,
        "audit": run_audit,
        "methods": run_methods,
        "loso": run_loso,
        "external": run_external,
    }
    runs[a.command](a, clf, f"{PROG} " + " ".join(shlex.quote(x) for x in argv))
    return 0

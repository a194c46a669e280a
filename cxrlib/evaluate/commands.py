"""What each subcommand of ``python -m cxrlib.evaluate`` does, given its parsed arguments.

One function per subcommand (:mod:`cxrlib.evaluate.cli` builds the parser). Each prints
its table, writes ``--json`` and, with ``--record``, merges its section into the model's
metrics file (:mod:`cxrlib.evaluate.record`). ``command`` is the command line, kept with
every recorded section.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cxrlib.evaluate import record
from cxrlib.evaluate.audit import run_audits
from cxrlib.evaluate.external import external_check, format_external
from cxrlib.evaluate.loso import leave_one_source_out, loso_config, loso_section
from cxrlib.evaluate.methods import format_methods, methods_section
from cxrlib.evaluate.metrics import evaluate_manifest, format_table
from cxrlib.evaluate.shortcuts import format_shortcuts, shortcut_checks
from cxrlib.infer.classifier import Classifier, load_classifier
from cxrlib.infer.views import DEFAULT_VIEWS, View
from cxrlib.train.data import read_manifest

logger = logging.getLogger(__name__)


def _views(a: argparse.Namespace) -> Sequence[View] | None:
    """``--views``: the app's 8 views; ``--single-view``: none; else as the model says."""
    if getattr(a, "views", False):
        return DEFAULT_VIEWS
    return () if getattr(a, "single_view", False) else None


def _manifest(a: argparse.Namespace) -> str:
    return a.manifest or str(Path(a.data) / "manifest.csv")


def _refused(e: Exception) -> int:
    print(f"not recorded: {e}", file=sys.stderr)
    return 2


def _finish(
    a: argparse.Namespace, clf: Classifier, res: dict[str, Any], sections: dict[str, Any]
) -> None:
    """Writes ``--json`` (the result with its sections) and, with ``--record``, the sections."""
    res.update(sections)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    if getattr(a, "record", False) and sections:
        print(f"wrote {record.record_sections(a.model, clf.weights_sha256, sections)}")


def save_model_metrics(
    model_path: str | Path,
    data: str | Path,
    n_boot: int = 1000,
) -> Path:
    """Evaluates val and test of the shared manifest; writes ``<model>.metrics.json``."""
    clf = load_classifier(model_path)
    manifest = Path(data) / "manifest.csv"
    splits = {}
    for split in ("val", "test"):
        res = evaluate_manifest(clf, manifest, split=split, n_boot=n_boot)
        logger.info(format_table(res, title=f"== {split} =="))
        splits[split] = res
    sections = {"manifest": manifest.name, "splits": splits}
    path = record.update_metrics_file(model_path, clf.weights_sha256, sections)
    logger.info(f"wrote {path}")
    return path


def _score(a: argparse.Namespace, clf: Classifier) -> dict[str, Any]:
    """The manifest (or its ``--split``) scored and printed as a table."""
    manifest = _manifest(a)
    res = evaluate_manifest(
        clf, manifest, root=a.root, split=a.split, n_boot=a.bootstrap, views=_views(a)
    )
    title = manifest + (f" [{a.split}]" if a.split else "")
    n_views = len(res.get("views", ()))
    print(format_table(res, title=title + (f" (mean over {n_views} views)" if n_views else "")))
    return res


def run_metrics(a: argparse.Namespace, command: str) -> int:
    """``metrics``: scores a manifest; with ``--record``, val and test of DATA into the file."""
    if a.record:
        save_model_metrics(a.model, a.data, n_boot=a.bootstrap)
        return 0
    clf = load_classifier(a.model)
    _finish(a, clf, _score(a, clf), {})
    return 0


def run_audit(a: argparse.Namespace, command: str) -> int:
    """``audit``: the manifest's scores plus the lung ablation and / or Grad-CAM lung focus."""
    clf = load_classifier(a.model)
    if a.record_alternative:
        try:  # refused before minutes of scoring, not after them
            record.alternative_target(a.record_into, clf.weights_sha256)
        except ValueError as e:
            return _refused(e)
    res = _score(a, clf)
    df = read_manifest(_manifest(a), root=a.root, split=a.split, class_names=clf.class_names)
    audits = run_audits(
        clf,
        df,
        ablate=a.ablate,
        explain=a.explain,
        max_images=a.max_images,
        segmenter_path=a.segmenter,
    )
    if a.shortcuts:
        groups = pd.read_csv(Path(a.data) / "groups.csv").set_index("path")["group"]
        audits["shortcuts"] = shortcut_checks(clf, df, groups)
        print(format_shortcuts(audits["shortcuts"]))
    sections = {key: {**val, "split": a.split, "command": command} for key, val in audits.items()}
    _finish(a, clf, res, sections)
    if a.record_alternative:
        alt = record.alternative_record(res, clf.meta, clf.weights_sha256, command)
        print(f"wrote {record.record_alternative(a.record_into, a.record_alternative, alt)}")
    return 0


def run_methods(a: argparse.Namespace, command: str) -> int:
    """``methods``: every heatmap method compared, with the model-randomisation check."""
    clf = load_classifier(a.model)
    df = read_manifest(_manifest(a), root=a.root, split=a.split, class_names=clf.class_names)
    section = methods_section(clf, df, a.images, a.segmenter)
    section.update(split=a.split, command=command)
    print(format_methods(section))
    _finish(a, clf, {}, {"explain_methods": section})
    return 0


def run_loso(a: argparse.Namespace, command: str) -> int:
    """``loso``: retrain without each source in turn, and score it."""
    clf = load_classifier(a.model)
    cfg = loso_config(clf, a.epochs, a.steps)
    # The held-out sources are also scored as the model predicts (a fresh short-schedule
    # model has no fitted view temperature; accuracy and AUC do not depend on it).
    views = clf.resolve_views(_views(a))
    section = leave_one_source_out(
        _manifest(a), cfg, a.sources.split(","), root=a.root, views=views
    )
    section["command"] = command
    _finish(a, clf, {}, {loso_section(clf, a.epochs, a.steps): section})
    return 0


def run_external(a: argparse.Namespace, command: str) -> int:
    """``external``: the lung set's collections that no training image came from."""
    clf = load_classifier(a.model)
    if a.record_alternative:
        try:  # refused before any scoring
            record.recorded_alternative(a.record_into, a.record_alternative, clf.weights_sha256)
        except ValueError as e:
            return _refused(e)
    training = read_manifest(_manifest(a), root=a.root, class_names=clf.class_names)
    section = external_check(clf, a.lungs, list(training["file"]), _views(a))
    section["command"] = command
    print(format_external(section, clf.class_names))
    _finish(a, clf, {}, {"external": section})
    if a.record_alternative:
        path = record.record_alternative_external(
            a.record_into, a.record_alternative, clf.weights_sha256, section
        )
        print(f"wrote {path}")
    return 0


#: Subcommand -> what runs it.
COMMANDS: dict[str, Callable[[argparse.Namespace, str], int]] = {
    "metrics": run_metrics,
    "audit": run_audit,
    "methods": run_methods,
    "loso": run_loso,
    "external": run_external,
}

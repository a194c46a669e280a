"""A classifier's scores on a manifest, the table they print as, and the summaries the
audits use; the numbers themselves are :func:`cxrlib.train.scoring.compute_metrics`'s."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import recall_score

from cxrlib.core.hashing import sha256_bytes
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.pipeline import Decoded, Models, diagnose_image
from cxrlib.infer.views import View
from cxrlib.train.data import load_gray, read_manifest
from cxrlib.train.scoring import compute_metrics


def diagnosed_probabilities(
    classifier: Classifier, files: Sequence[str], views: Sequence[View] | None = None
) -> np.ndarray:
    """Calibrated probabilities ``(N, K)`` of dataset image files, each diagnosed by
    :func:`~cxrlib.infer.pipeline.diagnose_image` (no heatmap). ``views``: None for the
    model's own, ``()`` for the original image alone, else the mean over it and these."""
    if views is not None:
        classifier = copy.copy(classifier)  # shares the weights; only the views differ
        classifier.views = tuple(views)
    models = Models(classifier=classifier)
    rows = []
    for file in files:
        # Read as training reads them, without the upload checks: a split is scored whole,
        # the odd image smaller than an upload may be included.
        gray = load_gray(file)
        decoded = Decoded(sha256_bytes(gray.tobytes()), gray)  # the file is read once
        rows.append(diagnose_image(models, decoded, method=None).probabilities)
    return np.stack(rows) if rows else np.zeros((0, len(classifier.class_names)), np.float32)


def evaluate_manifest(
    classifier: Classifier,
    manifest: str | Path,
    root: str | Path | None = None,
    split: str | None = None,
    n_boot: int = 1000,
    views: Sequence[View] | None = None,
) -> dict[str, Any]:
    """:func:`cxrlib.train.scoring.compute_metrics` of ``classifier`` on a manifest, with the
    per-image probabilities, the views averaged over (``views``: as
    :func:`diagnosed_probabilities`) and the time taken."""
    t0 = time.time()
    df = read_manifest(manifest, root=root, split=split, class_names=classifier.class_names)
    probs = diagnosed_probabilities(classifier, list(df["file"]), views)
    res = compute_metrics(
        df["y"].to_numpy(), probs, classifier.class_names, sources=list(df["source"]), n_boot=n_boot
    )
    res["predictions"] = [
        {"path": p, "label": lab, "source": s, "probs": [round(float(v), 5) for v in pr]}
        for p, lab, s, pr in zip(df["path"], df["label"], df["source"], probs)
    ]
    used = classifier.resolve_views(views)
    if used:
        res["views"] = ["original"] + [v.name for v in used]
    res["seconds"] = round(time.time() - t0, 2)
    return res


def _fmt(v: float | None) -> str:
    return f"{v:>8.4f}" if v is not None else f"{'-':>8}"


def format_table(res: dict[str, Any], title: str = "") -> str:
    """A readable summary of :func:`cxrlib.train.scoring.compute_metrics` output."""
    lines = [title] if title else []
    ci = res.get("ci95", {})

    def with_ci(key: str) -> str:
        v = res[key]
        return f"{v:.4f}" + (f"  [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if key in ci else "")

    lines += [
        f"n = {res['n']}   accuracy {with_ci('accuracy')}   balanced accuracy {with_ci('balanced_accuracy')}",
        f"macro-F1 {res['macro_f1']:.4f}   ECE {res['ece']:.4f}   Brier {res['brier']:.4f}",
        "",
        f"{'class':<11}{'support':>8}{'sens':>8}{'spec':>8}{'PPV':>8}{'NPV':>8}{'F1':>8}{'AUC':>8}",
    ]
    for name, m in res["per_class"].items():
        lines.append(
            f"{name:<11}{m['support']:>8}"
            + "".join(_fmt(m[k]) for k in ("sensitivity", "specificity", "ppv", "npv", "f1", "auc"))
        )
    cm = res["confusion_matrix"]
    lines += [
        "",
        "confusion matrix (rows = true, columns = predicted)",
        " " * 11 + "".join(f"{lab:>11}" for lab in cm["labels"]),
    ]
    for lab, row in zip(cm["labels"], cm["matrix"]):
        lines.append(f"{lab:<11}" + "".join(f"{v:>11}" for v in row))
    if "per_source" in res:
        lines += ["", "per source"]
        for s, m in res["per_source"].items():
            pcs = ", ".join(f"{c} {v:.3f}" for c, v in m["per_class_accuracy"].items())
            lines.append(f"  {s:<13} n={m['n']:<6} accuracy {m['accuracy']:.4f}   ({pcs})")
    adults = res.get("adults")
    if adults:
        pn, nm = adults["pneumonia"], adults["normal"]
        lines += [
            "",
            f"adults ({' + '.join(adults['sources'])}): pneumonia sensitivity "
            f"{pn['sensitivity']:.4f} {pn['ci95'] or ''} (n={pn['n']}), normal specificity "
            f"{nm['specificity']:.4f} {nm['ci95'] or ''} (n={nm['n']})",
        ]
    if "seconds" in res:
        lines.append(f"\n{res['seconds']:.1f} s")
    return "\n".join(lines)


def headline_scores(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1 and per-class sensitivity / AUC (no intervals)."""
    m = compute_metrics(y, probs, class_names, n_boot=0, curves=False)
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"],
        "sensitivity": {c: v["sensitivity"] for c, v in m["per_class"].items()},
        "auc": {c: v["auc"] for c, v in m["per_class"].items()},
    }


def held_out_scores(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """:func:`headline_scores` plus ``n``, and the accuracy and number of images of each
    class present."""
    y = np.asarray(y)
    present = np.unique(y)
    recall = recall_score(y, np.asarray(probs).argmax(1), labels=present, average=None)
    return {
        **headline_scores(y, probs, class_names),
        "n": int(len(y)),
        "per_class_accuracy": {class_names[c]: round(float(r), 4) for c, r in zip(present, recall)},
        "support": {class_names[c]: int(np.sum(y == c)) for c in present},
    }


def summary(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``n``, mean and median of the finite values (``None`` ones skipped)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        return {"n": 0, "mean": None, "median": None}
    return {
        "n": int(len(v)),
        "mean": round(float(v.mean()), 4),
        "median": round(float(np.median(v)), 4),
    }

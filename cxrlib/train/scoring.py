"""Scores of a set of predictions: the metrics record (:func:`compute_metrics`, which the
evaluation writes to the metrics file), macro-F1 and the fitted temperature."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, SupportsFloat

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from cxrlib.core.metrics import ADULT_SOURCES
from cxrlib.infer.classifier import softmax


def _round(x: SupportsFloat | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray) -> tuple[float, list[dict]]:
    """ECE over 15 equal-width confidence bins of the top-class probability."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, 16)
    ece, bins = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            gap = abs(conf[m].mean() - correct[m].mean())
            ece += m.mean() * gap
            bins.append(
                {
                    "lo": round(float(lo), 4),
                    "hi": round(float(hi), 4),
                    "count": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 4),
                    "accuracy": round(float(correct[m].mean()), 4),
                }
            )
    return float(ece), bins


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """sklearn's balanced accuracy, silent about a predicted class absent from ``y`` and about
    ``y`` of one class."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", "A single label was found")
        return float(balanced_accuracy_score(y, pred))


def _bootstrap_ci(
    y: np.ndarray, pred: np.ndarray, n_boot: int, seed: int
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    n = len(y)
    accs, bals = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        yb, pb = y[i], pred[i]
        accs[b] = np.mean(yb == pb)
        bals[b] = _balanced_accuracy(yb, pb)
    return {
        name: [round(float(np.percentile(values, q)), 4) for q in (2.5, 97.5)]
        for name, values in (("accuracy", accs), ("balanced_accuracy", bals))
    }


def _rate_ci(hits: np.ndarray, n_boot: int, seed: int) -> list[float] | None:
    """Percentile bootstrap 95% interval of the share of True in ``hits``."""
    if not len(hits):
        return None
    rng = np.random.default_rng(seed)
    means = rng.choice(hits.astype(float), (n_boot, len(hits))).mean(1)
    return [round(float(np.percentile(means, q)), 4) for q in (2.5, 97.5)]


def _adults(
    y: np.ndarray,
    pred: np.ndarray,
    src: np.ndarray,
    class_names: Sequence[str],
    n_boot: int,
    seed: int,
) -> dict[str, Any] | None:
    """Adult pneumonias called pneumonia (sensitivity) and adult normals called normal
    (specificity) on the :data:`ADULT_SOURCES` images, each with its bootstrap interval."""
    if not {"normal", "pneumonia"} <= set(class_names):
        return None
    adult = np.isin(src, ADULT_SOURCES)
    out: dict[str, Any] = {"sources": [s for s in ADULT_SOURCES if np.any(src == s)]}
    for label, figure in (("pneumonia", "sensitivity"), ("normal", "specificity")):
        c = class_names.index(label)
        rows = adult & (y == c)
        if not rows.any():
            return None
        hits = pred[rows] == c
        out[label] = {
            "n": int(rows.sum()),
            figure: _round(hits.mean()),
            "ci95": _rate_ci(hits, n_boot, seed) if n_boot else None,
            "answers": {name: int(np.sum(pred[rows] == k)) for k, name in enumerate(class_names)},
        }
    return out


def _thin(xs: np.ndarray, ys: np.ndarray, max_points: int = 200) -> tuple[list[float], list[float]]:
    if len(xs) > max_points:
        idx = np.unique(np.linspace(0, len(xs) - 1, max_points).round().astype(int))
        xs, ys = xs[idx], ys[idx]
    return [round(float(v), 4) for v in xs], [round(float(v), 4) for v in ys]


def compute_metrics(
    y: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    sources: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    curves: bool = True,
) -> dict[str, Any]:
    """All the numbers for one set of predictions (true class indices ``y``, probabilities
    ``probs``), as the ``splits`` records of ``models/*.metrics.json`` hold them; undefined
    figures are None. ``sources`` adds the per-source and adult figures, ``n_boot`` bootstrap
    intervals (0: none), ``curves`` ROC and PR points."""
    y = np.asarray(y, int)
    probs = np.asarray(probs, float)
    pred = probs.argmax(1)
    k = len(class_names)
    present = [c for c in range(k) if np.any(y == c)]
    cm = confusion_matrix(y, pred, labels=range(k))
    per_class: dict[str, Any] = {}
    curve_pts: dict[str, Any] = {}
    for c in present:
        record = _class_record(y == c, pred == c, probs[:, c])
        per_class[class_names[c]] = record
        if curves and record["auc"] is not None:
            curve_pts[class_names[c]] = _curves(y == c, probs[:, c])
    ece, bins = expected_calibration_error(probs, y)
    onehot = np.eye(k)[y]
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": _round(np.mean(pred == y)),
        "balanced_accuracy": _round(_balanced_accuracy(y, pred)),
        "macro_f1": _round(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(class_names), "matrix": cm.tolist()},
        "ece": _round(ece),
        "brier": _round(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
        "reliability": bins,
    }
    if sources is not None:
        src = np.asarray(sources)
        out["per_source"] = {  # accuracy per source, overall and per class
            s: {
                "n": int(np.sum(src == s)),
                "accuracy": _round(np.mean(pred[src == s] == y[src == s])),
                "per_class_accuracy": {
                    class_names[c]: _round(np.mean(pred[(src == s) & (y == c)] == c))
                    for c in present
                    if np.any((src == s) & (y == c))
                },
            }
            for s in sorted(set(src.tolist()))
        }
        out["adults"] = _adults(y, pred, src, class_names, n_boot, seed)
    if n_boot:
        out["ci95"] = _bootstrap_ci(y, pred, n_boot, seed)
        for c in present:
            per_class[class_names[c]]["sensitivity_ci95"] = _rate_ci(
                pred[y == c] == c, n_boot, seed
            )
    if curves:
        out["curves"] = curve_pts
    return out


def _class_record(pos: np.ndarray, called: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """One class's figures, one-vs-rest: ``pos`` marks its images, ``called`` those
    predicted as it, ``scores`` its probabilities. Undefined figures are None."""
    (ppv, npv), (sens, spec), (f1, _), _ = precision_recall_fscore_support(
        pos, called, labels=[True, False], zero_division=np.nan
    )
    auc = float(roc_auc_score(pos, scores)) if 0 < pos.sum() < len(pos) else None
    figures = {"sensitivity": sens, "specificity": spec, "ppv": ppv, "npv": npv, "f1": f1}
    return {
        "support": int(pos.sum()),
        **{k: None if np.isnan(v) else _round(v) for k, v in figures.items()},
        "auc": _round(auc),
    }


def _curves(pos: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall points of one class (at most 200 of each)."""
    fpr, tpr, _ = roc_curve(pos, scores)
    prec, rec, _ = precision_recall_curve(pos, scores)
    fx, ty = _thin(fpr, tpr)
    rx, py = _thin(rec[::-1], prec[::-1])
    return {"roc": {"fpr": fx, "tpr": ty}, "pr": {"recall": rx, "precision": py}}


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the classes that occur in ``y`` or ``pred`` (what early stopping watches)."""
    return float(f1_score(y, pred, average="macro", zero_division=0))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the validation negative log-likelihood."""

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))

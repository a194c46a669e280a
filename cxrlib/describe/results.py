"""A split of the metrics file as the Metrics and Validation pages show it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxrlib.core.formatting import pct, pct_range
from cxrlib.core.metrics import Prediction, Split
from cxrlib.describe.prose import frame, join, source_name


@dataclass(frozen=True)
class ThresholdResult:
    """The (K, K) confusion (rows true) and the positive class's rates (None where a
    denominator is empty)."""

    matrix: np.ndarray
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None


def threshold_confusion(
    probs: np.ndarray, labels: np.ndarray, positive: int, threshold: float
) -> ThresholdResult:
    """The confusion of (N, K) ``probs`` against (N,) ``labels`` when ``positive`` (e.g.
    covid) is called wherever its probability reaches ``threshold``, else the likeliest other
    class: the threshold moves images only between the positive class and the rest."""
    p = np.asarray(probs, dtype=np.float64)
    others = p.copy()
    others[:, positive] = -np.inf
    pred = np.where(p[:, positive] >= threshold, positive, others.argmax(axis=1))
    cm = np.zeros((p.shape[1], p.shape[1]), np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), pred), 1)
    tp = int(cm[positive, positive])
    fn, fp = int(cm[positive].sum()) - tp, int(cm[:, positive].sum()) - tp
    tn = int(cm.sum()) - tp - fn - fp

    def div(a: int, b: int) -> float | None:
        return a / b if b else None

    return ThresholdResult(
        cm, div(tp, tp + fn), div(tn, tn + fp), div(tp, tp + fp), div(tn, tn + fn)
    )


def predictions_arrays(
    predictions: Sequence[Prediction], class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, K), labels (N,)) from metrics.json ``predictions`` (unknown labels dropped)."""
    index = {c: i for i, c in enumerate(class_names)}
    rows = [r for r in predictions if r.label in index and len(r.probs) == len(index)]
    probs = np.array([r.probs for r in rows], dtype=np.float64).reshape(-1, len(index))
    labels = np.array([index[str(r.label)] for r in rows], dtype=np.int64)
    return probs, labels


def predictions_table(predictions: Sequence[Prediction], class_names: Sequence[str]) -> Any:
    """Saved predictions with answer, confidence and probabilities, confident mistakes first."""
    names = list(class_names)
    recs = []
    for r in predictions:
        if len(r.probs) != len(names):
            continue
        k = int(np.argmax(r.probs))
        recs.append(
            {
                "path": r.path,
                "label": r.label or "",
                "source": r.source or "",
                "predicted": names[k],
                "confidence": float(r.probs[k]),
                "correct": r.label == names[k],
                **{f"p_{c}": float(p) for c, p in zip(names, r.probs)},
            }
        )
    columns = ["path", "label", "source", "predicted", "confidence", "correct"]
    df = pd.DataFrame(recs, columns=columns + [f"p_{c}" for c in names])
    df = df.sort_values(["correct", "confidence"], ascending=[True, False], kind="stable")
    return df.reset_index(drop=True)


def filter_predictions(
    df: Any,
    labels: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    outcome: str = "all",
) -> Any:
    """Rows of :func:`predictions_table` of these labels and sources (None: all) and
    ``outcome`` ("all", "correct" or "misclassified")."""
    if outcome not in ("all", "correct", "misclassified"):
        raise ValueError(f"unknown outcome {outcome!r}")
    keep = pd.Series(True, index=df.index)
    if labels:
        keep &= df["label"].isin(labels)
    if sources:
        keep &= df["source"].isin(sources)
    if outcome != "all":
        keep &= df["correct"].astype(bool) == (outcome == "correct")
    return df[keep].reset_index(drop=True)


def per_class_table(split: Split) -> Any:
    """Per-class metrics as a DataFrame."""
    fields = {"support", "sensitivity", "specificity", "ppv", "npv", "f1", "auc"}
    rows = [{"class": name, **m.model_dump(include=fields)} for name, m in split.per_class.items()]
    names = {"ppv": "PPV", "npv": "NPV", "f1": "F1", "auc": "AUC"}
    return frame(rows, "class").rename(columns=names)


def per_source_table(split: Split) -> Any:
    """Per-source accuracy and each class's sensitivity."""
    rows = [
        {
            "source": source,
            "n": m.n,
            "accuracy": m.accuracy,
            **{f"{c} sensitivity": v for c, v in m.per_class_accuracy.items()},
        }
        for source, m in split.per_source.items()
    ]
    return frame(rows, "source")


def fmt_ci(value: float | None, ci: Sequence[float] | None = None) -> str:
    """``"91.4% (95% CI 90.2-92.5%)"`` (``"n/a"`` for None)."""
    if value is None:
        return "n/a"
    interval = f" (95% CI {pct_range(ci[0], ci[1], 1)})" if ci and len(ci) == 2 else ""
    return pct(value, 1) + interval


def describe_adults(split: Split) -> str | None:
    """The adult pneumonias found and normals cleared (None without adult figures)."""
    a = split.adults
    if a is None:
        return None
    p, n = a.pneumonia, a.normal
    return (
        f"Adults ({join([source_name(s) for s in a.sources])} images): "
        f"{p.answers.get('pneumonia', 0)} of {p.n} pneumonias called pneumonia, "
        f"{fmt_ci(p.sensitivity, p.ci95)}; {n.answers.get('normal', 0)} of {n.n} normals "
        f"called normal, {fmt_ci(n.specificity, n.ci95)}."
    )


#: How the pages name a split of the metrics file, and what it is.
SPLIT_NAMES = {
    "test": ("internal test split", "held out from training but from the same sources"),
    "val": ("validation split", "used to pick the epoch and the temperature"),
}


def split_order(names: Iterable[str]) -> list[str]:
    """Test, validation, then any other split."""
    names = list(names)
    known = [s for s in SPLIT_NAMES if s in names]
    return known + [s for s in names if s not in known]


def split_label(name: str) -> str:
    """A split as a reader knows it: "internal test split"."""
    return SPLIT_NAMES.get(name, (f"{name} split", ""))[0]


def describe_headline(split: Split, name: str) -> str:
    """The split's headline figures with their 95% intervals."""
    label, what = SPLIT_NAMES.get(name, (f"{name} split", ""))
    sources = sorted(split.per_source)
    made_of = f" from {len(sources)} sources ({join(sources)})" if sources else ""
    ci = split.ci95
    return (
        f"On the **{label}**, {split.n or 0:,} images{made_of}{', ' + what if what else ''}: "
        f"balanced accuracy **{fmt_ci(split.balanced_accuracy, ci.get('balanced_accuracy'))}**, "
        f"accuracy {fmt_ci(split.accuracy, ci.get('accuracy'))}, macro-F1 "
        f"{split.macro_f1 or 0:.3f}."
    )


def describe_reliability(split: Split) -> str | None:
    """The split's calibration figures (None when not recorded)."""
    if split.ece is None:
        return None
    brier = f", Brier score **{split.brier:.3f}**" if split.brier is not None else ""
    return f"Expected calibration error **{split.ece:.3f}**{brier}."

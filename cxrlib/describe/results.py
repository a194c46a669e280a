"""A model's saved results (its metrics file) as the Metrics and Validation pages show them.

Per-class and per-source tables, confidence-interval text, the saved per-image
predictions as a sortable table, and the confusion matrix at a decision threshold
the reader picks. Pure functions of the saved JSON: nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrlib.core import formatting
from cxrlib.core.metrics import Prediction, Split
from cxrlib.describe.words import join, source_name


@dataclass(frozen=True)
class ThresholdResult:
    """Confusion matrix and one-vs-rest numbers at a decision threshold.

    Attributes:
        threshold: The threshold on the positive class's probability.
        matrix: (K, K) counts, rows = true class, columns = predicted class.
        sensitivity: Of the positive class (None without positives).
        specificity: Of the positive class (None without negatives).
        ppv: Positive predictive value (None when nothing is called positive).
        npv: Negative predictive value (None when nothing is called negative).
        n: Number of images.
    """

    threshold: float
    matrix: np.ndarray
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    n: int


def threshold_predictions(probs: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Class decisions when ``positive`` is called at ``p >= threshold``.

    Below the threshold an image gets the most probable of the OTHER classes,
    so the threshold moves images only between the positive class and the rest.

    Args:
        probs: (N, K) probabilities.
        positive: Index of the thresholded class.
        threshold: Decision threshold in [0, 1].

    Returns:
        (N,) predicted class indices.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not 0 <= positive < p.shape[1]:
        raise ValueError(f"probs must be (N, K) with 0 <= positive < K, got {p.shape}")
    others = p.copy()
    others[:, positive] = -np.inf
    fallback = others.argmax(axis=1)
    return np.where(p[:, positive] >= threshold, positive, fallback)


def threshold_confusion(
    probs: np.ndarray, labels: np.ndarray, positive: int, threshold: float
) -> ThresholdResult:
    """Confusion matrix, sensitivity, specificity, PPV and NPV at a threshold.

    Args:
        probs: (N, K) saved per-image probabilities.
        labels: (N,) true class indices.
        positive: Index of the thresholded class (e.g. covid).
        threshold: Decision threshold on its probability.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    k = p.shape[1] if p.ndim == 2 else 0
    pred = threshold_predictions(p, positive, threshold) if len(y) else np.zeros(0, int)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y, pred), 1)
    pos, called = y == positive, pred == positive
    tp = int(np.sum(pos & called))
    fn = int(np.sum(pos & ~called))
    fp = int(np.sum(~pos & called))
    tn = int(np.sum(~pos & ~called))

    def div(a: int, b: int) -> float | None:
        return a / b if b else None

    return ThresholdResult(
        threshold=float(threshold),
        matrix=cm,
        sensitivity=div(tp, tp + fn),
        specificity=div(tn, tn + fp),
        ppv=div(tp, tp + fp),
        npv=div(tn, tn + fn),
        n=int(len(y)),
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
    """A DataFrame of saved predictions: path, label, source, predicted, confidence, correct.

    Sorted misclassified first, then by confidence (most confident first), so
    the most instructive mistakes lead.
    """
    import pandas as pd

    names = list(class_names)
    recs = []
    for r in predictions:
        probs = list(r.probs)
        if len(probs) != len(names):
            continue
        k = int(np.argmax(probs))
        recs.append(
            {
                "path": r.path,
                "label": "" if r.label is None else r.label,
                "source": "" if r.source is None else r.source,
                "predicted": names[k],
                "confidence": float(probs[k]),
                "correct": r.label == names[k],
                **{f"p_{c}": float(p) for c, p in zip(names, probs)},
            }
        )
    cols = ["path", "label", "source", "predicted", "confidence", "correct"] + [
        f"p_{c}" for c in names
    ]
    df = pd.DataFrame(recs, columns=cols)
    if len(df):
        df = df.sort_values(["correct", "confidence"], ascending=[True, False], kind="stable")
    return df.reset_index(drop=True)


def filter_predictions(
    df: Any,
    labels: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    outcome: str = "all",
) -> Any:
    """Rows of :func:`predictions_table` with the chosen true labels, sources and outcome.

    Args:
        df: The table.
        labels: True labels to keep (None or empty: all).
        sources: Sources to keep (None or empty: all).
        outcome: ``"all"``, ``"correct"`` or ``"misclassified"``.
    """
    if outcome not in ("all", "correct", "misclassified"):
        raise ValueError(f"unknown outcome {outcome!r}")
    mask = np.ones(len(df), bool)
    if labels:
        mask &= df["label"].isin(list(labels)).to_numpy()
    if sources:
        mask &= df["source"].isin(list(sources)).to_numpy()
    if outcome == "correct":
        mask &= df["correct"].to_numpy(bool)
    elif outcome == "misclassified":
        mask &= ~df["correct"].to_numpy(bool)
    return df[mask].reset_index(drop=True)


def per_class_table(split: Split) -> Any:
    """Per-class metrics (support, sensitivity, specificity, PPV, NPV, F1, AUC) as a DataFrame."""
    import pandas as pd

    rows = []
    for name, m in split.per_class.items():
        rows.append(
            {
                "class": name,
                "support": m.support,
                "sensitivity": m.sensitivity,
                "specificity": m.specificity,
                "PPV": m.ppv,
                "NPV": m.npv,
                "F1": m.f1,
                "AUC": m.auc,
            }
        )
    return pd.DataFrame(rows).set_index("class") if rows else pd.DataFrame()


def per_source_table(split: Split) -> Any:
    """Per-source accuracy, and per class the share called right (its sensitivity)."""
    import pandas as pd

    rows = []
    for source, m in split.per_source.items():
        row: dict[str, Any] = {"source": source, "n": m.n, "accuracy": m.accuracy}
        for c, v in m.per_class_accuracy.items():
            row[f"{c} sensitivity"] = v
        rows.append(row)
    return pd.DataFrame(rows).set_index("source") if rows else pd.DataFrame()


def fmt_ci(value: float | None, ci: Sequence[float] | None = None, pct: bool = True) -> str:
    """``"91.4% (95% CI 90.2-92.5%)"`` style text (``"n/a"`` for None)."""
    if value is None:
        return "n/a"
    if pct:
        text = formatting.pct(value, 1)
        if ci and len(ci) == 2:
            text += f" (95% CI {formatting.pct_range(ci[0], ci[1], 1)})"
        return text
    text = f"{value:.3f}"
    if ci and len(ci) == 2:
        text += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
    return text


def describe_adults(split: Split) -> str | None:
    """The adult figures in one sentence: pneumonias found and normals called normal, with
    their intervals (None when the split has no adult pneumonias and normals)."""
    a = split.adults
    if a is None:
        return None
    p, n = a.pneumonia, a.normal
    found = p.answers.get("pneumonia", 0)
    cleared = n.answers.get("normal", 0)
    return (
        f"Adults ({join([source_name(s) for s in a.sources])} images): {found} of {p.n} "
        f"pneumonias called pneumonia, {fmt_ci(p.sensitivity, p.ci95)}; {cleared} of {n.n} "
        f"normals called normal, {fmt_ci(n.specificity, n.ci95)}."
    )


#: How the pages name a split of the metrics file, and what it is.
SPLIT_NAMES = {
    "test": ("internal test split", "held out from training but from the same sources"),
    "val": ("validation split", "used to pick the epoch and the temperature"),
}


def split_order(names: Iterable[str]) -> list[str]:
    """The splits of a metrics file in reading order: test, validation, then any other."""
    names = list(names)
    known = [s for s in SPLIT_NAMES if s in names]
    return known + [s for s in names if s not in known]


def split_label(name: str) -> str:
    """A split as a reader knows it: "internal test split"."""
    return SPLIT_NAMES.get(name, (f"{name} split", ""))[0]


def describe_headline(split: Split, name: str) -> str:
    """The split's headline figures with their 95% intervals, and the images and sources
    they were measured on (markdown)."""
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
    """The split's calibration figures in words (None when they were not recorded)."""
    if split.ece is None:
        return None
    brier = f", Brier score **{split.brier:.3f}**" if split.brier is not None else ""
    return f"Expected calibration error **{split.ece:.3f}**{brier}."

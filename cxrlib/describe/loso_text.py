"""Leave one source out (``loso``, ``loso_full``) as a table and in words."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import ADULT_SOURCES, Loso, LosoResult, Metrics
from cxrlib.describe.prose import frame, join, source_name

#: A share of fewer images of a class than this says how many it is of.
FEW_IMAGES = 20


def loso_table(section: Loso) -> Any:
    """One row per held-out source, scored as the app predicts where that was measured."""
    rows, classes = [], set[str]()
    for s, v in section.sources.items():
        scored = v.as_predicted()
        classes.update(scored.per_class_accuracy)
        rows.append(
            {
                "held-out source": s,
                "n": v.n,
                "accuracy": scored.accuracy,
                "balanced accuracy": scored.balanced_accuracy,
                **{f"{c} sensitivity": a for c, a in scored.per_class_accuracy.items()},
                "internal test balanced accuracy": v.internal_test_balanced_accuracy,
            }
        )
    if not rows:
        return pd.DataFrame()
    per_class = [f"{c} sensitivity" for c in sorted(classes)]  # one order for all rows
    df = frame(rows, "held-out source")
    return df[["n", "accuracy", "balanced accuracy", *per_class, "internal test balanced accuracy"]]


def describe_loso_scoring(section: Loso) -> str:
    """The caption of :func:`loso_table`: how its held-out images were scored."""
    averaged = any(v.with_views is not None for v in section.sources.values())
    how = (
        "as this app scores an upload (averaged over the image and its test-time copies)"
        if averaged
        else "on the image alone"
    )
    return (
        f"Held-out images scored {how}; sensitivity is the share of that class it called "
        "right. The last column is the same model on the internal test split, for comparison."
    )


def _class_notes(found: float, n: int | None, auc: float | None) -> str:
    """How many images a share is of (when few) and its AUC: ``" (2 of 8 images; AUC 0.44)"``."""
    few = [f"{round(found * n)} of {n} images"] if n is not None and n < FEW_IMAGES else []
    ranked = [f"AUC {auc:.2f}"] if auc is not None else []
    return f" ({'; '.join(few + ranked)})" if few or ranked else ""


def _source_line(source: str, v: LosoResult, epochs: Any) -> str | None:
    scored = v.as_predicted()
    parts = [
        f"**{pct(a)}** of its {c}{_class_notes(a, v.support.get(c), scored.auc.get(c))}"
        for c, a in scored.per_class_accuracy.items()
        if a is not None
    ]
    if not parts:
        return None
    line = (
        f"Trained without the {source_name(source)} images"
        + (f" ({epochs} epochs)" if epochs else "")
        + f", it found {join(parts)}"
    )
    internal = v.internal_test_balanced_accuracy
    if internal is not None:
        line += (
            f"; the same model scores {pct(internal)} balanced accuracy on the "
            "other sources' internal test images"
        )
    return line + "."


def describe_loso(section: Loso) -> list[str]:
    """One line per held-out source: what a model trained without it found of it."""
    epochs = section.schedule.get("epochs")
    lines = [_source_line(source, v, epochs) for source, v in section.sources.items()]
    return [line for line in lines if line is not None]


def describe_unseen_adults(metrics: Metrics) -> list[str]:
    """The line of each adult source, from the full-length runs where they held it out."""
    lines = []
    for source in ADULT_SOURCES:
        for section in (metrics.loso_full, metrics.loso):
            if section is not None and source in section.sources:
                result = section.sources[source]
                line = _source_line(source, result, section.schedule.get("epochs"))
                if line:
                    lines.append(line)
                break
    return lines

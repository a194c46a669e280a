"""Leave one source out, as a table and in words (the metrics file's ``loso`` and
``loso_full`` sections): what a model trained without one source found of it."""

from __future__ import annotations

from typing import Any

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import ADULT_SOURCES, Loso, LosoResult, Metrics
from cxrlib.describe.words import join, source_name

#: A share of fewer images of a class than this says how many it is of.
FEW_IMAGES = 20


def scores_row(first: dict[str, Any], scores: Any, per_class: dict[str, Any]) -> dict[str, Any]:
    """``first`` then the accuracy, balanced accuracy and per-class ``{c} sensitivity`` of
    one result (its per-class rates in ``per_class``)."""
    row = {
        **first,
        "accuracy": scores.accuracy,
        "balanced accuracy": scores.balanced_accuracy,
    }
    for c, v in per_class.items():
        row[f"{c} sensitivity"] = v
    return row


def loso_table(section: Loso) -> Any:
    """``metrics.json["loso"]``: one row per held-out source.

    Scored as the app predicts (the logits averaged over the test-time views) where that was
    measured (``with_views``), else on the image alone; the other figures stay in the file.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    classes: set[str] = set()
    for s, v in section.sources.items():
        scored = v.as_predicted()
        row = scores_row({"held-out source": s, "n": v.n}, scored, dict(scored.per_class_accuracy))
        classes.update(scored.per_class_accuracy)
        row["internal test balanced accuracy"] = v.internal_test_balanced_accuracy
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    # The classes in one order for all rows.
    order = ["n", "accuracy", "balanced accuracy"] + [f"{c} sensitivity" for c in sorted(classes)]
    df = pd.DataFrame(rows).set_index("held-out source")
    return df[[c for c in [*order, "internal test balanced accuracy"] if c in df.columns]]


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
    """One plain line per held-out source of a leave-one-source-out section (markdown).

    What a model trained without that source found of each of its classes, beside the same
    model's balanced accuracy on the internal test split; figures as the app predicts
    (averaged over the test-time views) where they were measured so.
    """
    epochs = section.schedule.get("epochs")
    lines = [_source_line(source, v, epochs) for source, v in section.sources.items()]
    return [line for line in lines if line is not None]


#: The held-out source that stands for an adult patient at a hospital the model has not seen.
def describe_unseen_adults(metrics: Metrics) -> list[str]:
    """The leave-one-source-out line of each adult source (:data:`ADULT_SOURCES`), from the
    full-length runs where they held it out, else the short ones."""
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

"""Beyond the internal test split: leave one source out (``loso``, ``loso_full``) and the
external check (collections no training image came from), as tables and in words."""

from __future__ import annotations

from typing import Any

from cxrlib.core.formatting import pct, pct_range
from cxrlib.core.metrics import (
    ADULT_SOURCES,
    Collection,
    External,
    Loso,
    LosoResult,
    Metrics,
    SubsetCalls,
)
from cxrlib.describe.prose import frame, join, source_name

#: A share of fewer images of a class than this says how many it is of.
FEW_IMAGES = 20


def loso_table(section: Loso) -> Any:
    """One row per held-out source, scored as the app predicts where that was measured."""
    rows = []
    for s, v in section.sources.items():
        scored = v.as_predicted()
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
    df = frame(rows, "held-out source")
    per_class = sorted(c for c in df.columns if c.endswith(" sensitivity"))  # one order for all
    first, last = ["n", "accuracy", "balanced accuracy"], ["internal test balanced accuracy"]
    return df[first + per_class + last] if rows else df


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
                epochs = section.schedule.get("epochs")
                line = _source_line(source, section.sources[source], epochs)
                if line:
                    lines.append(line)
                break
    return lines


#: How the external table names the subsets of :data:`cxrlib.evaluate.external.SUBSETS`.
EXTERNAL_SUBSETS = {"all": "all", "segmenter_unseen": "not in the segmenter's training"}


def external_records(section: External | None) -> list[tuple[Collection, SubsetCalls]]:
    """``(collection, its "all" subset)`` of each collection with images."""
    collections = section.collections.values() if section else ()
    return [
        (rec, sub) for rec in collections if (sub := rec.subsets.get("all")) is not None and sub.n
    ]


def external_table(section: External | None) -> Any:
    """One row per collection and subset: the share given each answer, and the refusals."""
    rows = []
    for rec, _ in external_records(section):
        for key, sub in rec.subsets.items():
            row: dict[str, Any] = {
                "collection": f"{rec.name} ({rec.label})",
                "images": EXTERNAL_SUBSETS.get(key, key),
                "n": sub.n,
            }
            row.update({f"called {c}": v for c, v in sub.share.items()})
            if key == "all":
                row["refused by the input check"] = rec.input_check_refused
            rows.append(row)
    return frame(rows, ["collection", "images"])


def _answers(sub: SubsetCalls, label: str) -> list[str]:
    """ "'normal' for **58%** (95% CI 52-64%)" per answer given, its own class first."""
    share, parts = sub.share, []
    for c in sorted(share, key=lambda c: (c != label, -(share[c] or 0))):
        value = share[c]
        if value is None or (c != label and not value):
            continue
        low_high = sub.ci95.get(c)
        interval = f" (95% CI {pct_range(low_high[0], low_high[1])})" if low_high else ""
        parts.append(f"'{c}' for **{pct(value)}**{interval}")
    return parts


def describe_external(section: External | None) -> list[str]:
    """One line per collection: what it answered, then what its confident answers, copies and
    input check add."""
    lines = []
    views = section.views if section else None
    for rec, sub in external_records(section):
        parts = _answers(sub, rec.label)
        if not parts:
            continue
        line = (
            f"**{rec.name}** ({rec.description or 'a collection'}): of its "
            f"{sub.n:,} {rec.label} images, from no source it was trained on, it answered "
            + join(parts)
            + (f", averaged over {views} views as the app predicts" if views and views > 1 else "")
            + "."
        )
        sure = sum(v or 0 for c, v in sub.confident_share.items() if c != rec.label)
        if sure and sub.confident_at:
            line += (
                f" {pct(sure)} got a wrong answer with a probability of "
                f"{pct(sub.confident_at)} or more."
            )
        dup = rec.duplicates
        if dup is not None and dup.found == 0 and dup.highest_similarity is not None:
            line += (
                " None of them is a copy of an image in its data (highest thumbnail "
                f"correlation {dup.highest_similarity:.2f}; a copy scores above 0.99)."
            )
        refused = rec.input_check_refused
        if refused == 0:
            line += " The input check let every one through."
        elif refused is not None:
            line += f" The input check refused {refused} of them."
        lines.append(line)
    return lines

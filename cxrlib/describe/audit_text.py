"""The shortcut audit's tables: the model with the lungs erased or kept alone (``ablation``)
and where one heatmap method's maps lie (``explain``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cxrlib.core.formatting import pct
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.metrics import Ablation, Explain, FocusSummary, Shortcuts
from cxrlib.describe.prose import frame, join, prose, source_name

#: The ablation's image versions, in the table's order, and their names.
ABLATION_ROWS = (
    ("original", "original images"),
    ("lungs_erased", "lungs erased"),
    ("lungs_only", "only the lungs kept"),
)

#: How the faithfulness table names its figures.
FAITHFULNESS_COLUMNS = {
    "drop_hot": "confidence drop, hottest area blurred",
    "drop_random": "confidence drop, random area blurred",
    "score": "difference (> 0: the map points at evidence)",
}


def ablation_table(section: Ablation) -> Any:
    """``metrics.json["ablation"]`` as rows original / lungs erased / lungs only: balanced
    accuracy, accuracy, macro-F1 and each class's sensitivity."""
    rows = [
        {
            "images": label,
            "balanced accuracy": s.balanced_accuracy,
            "accuracy": s.accuracy,
            "macro-F1": s.macro_f1,
            **{f"{c} sensitivity": v for c, v in s.sensitivity.items()},
        }
        for key, label in ABLATION_ROWS
        if (s := getattr(section, key)) is not None
    ]
    return frame(rows, "images")


def _focus_table(d: Mapping[str, FocusSummary], label: str) -> Any:
    return frame(
        [{label: k, "n": v.n, "mean": v.mean, "median": v.median} for k, v in d.items()], label
    )


def explain_tables(section: Explain) -> dict[str, Any]:
    """``metrics.json["explain"]`` as tables: lung focus ``"per_class"`` and
    ``"per_source"``, and ``"faithfulness"`` (overall, then per class)."""
    faithful = [("all", section.faithfulness)] if section.faithfulness else []
    faithful += section.faithfulness_per_class.items()
    rows = [{"class": name, **f.to_dict()} for name, f in faithful]
    return {
        "per_class": _focus_table(section.lung_focus_per_class, "true class"),
        "per_source": _focus_table(section.lung_focus_per_source, "source"),
        "faithfulness": frame(rows, "class").rename(columns=FAITHFULNESS_COLUMNS),
    }


def describe_lung_focus(section: Explain) -> str | None:
    """The audit's lung-focus sentence (markdown), or None when no mean was recorded."""
    o = section.lung_focus or FocusSummary()
    if o.mean is None:
        return None
    method = METHOD_LABELS.get(section.method or "", section.method or "")
    flat = section.flat_map_focus.mean if section.flat_map_focus else None
    return (
        f"{method} of the predicted class, {o.n or 0:,} images"
        + (f" of the {section.split} split" if section.split else "")
        + f": on average **{pct(o.mean)}** of the heatmap lies inside the "
        f"lungs (median {pct(o.median or 0)}). "
        + (
            f"A map spread evenly over what the model sees would score **{pct(flat)}** "
            "(the lungs' share of its field of view; higher for a model that sees only "
            "the lung region), so compare the two."
            if flat is not None
            else prose("flat_map_unknown")
        )
    )


def describe_faithfulness(section: Explain) -> str:
    """The caption of the faithfulness table."""
    return (
        "Faithfulness: how much the predicted class's probability falls when the "
        f"hottest {pct(section.fraction or 0.2)} of the image is blurred, against an "
        "equally large random area."
    )


def describe_ablation_size(section: Ablation) -> str | None:
    """The caption of the ablation table (its images and chance), or None without chance."""
    if section.chance is None:
        return None
    return f"{section.n or 0:,} images; chance balanced accuracy {pct(section.chance)}."


def describe_shortcuts(section: Shortcuts) -> list[str]:
    """The resolution swaps and the source probe, a sentence each (markdown)."""
    lines = []
    for source, r in section.resolution.items():
        lines.append(
            f"The {source_name(source)} test images re-saved at {r.longer_side} px: "
            f"**{pct(r.changed)}** of {r.n} answers changed; balanced accuracy "
            f"{pct(r.original.balanced_accuracy)} -> {pct(r.resaved.balanced_accuracy)}."
        )
    for label, p in section.source_probe.items():
        lines.append(
            f"Among the {label} X-rays, a simple model reading the network's internal features "
            f"named the collection ({join([source_name(s) for s in p.sources])}) "
            f"**{pct(p.balanced_accuracy)}** of the time, where guessing gives "
            f"{pct(p.chance)}: the further above guessing, the more the network's view "
            "of an image carries where it was taken."
        )
    return lines

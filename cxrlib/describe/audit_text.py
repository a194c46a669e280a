"""The shortcut audit's tables: the model with the lungs erased or kept alone (``ablation``)
and where one heatmap method's maps lie (``explain``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cxrlib.core.formatting import pct
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.metrics import Ablation, Explain, Faithfulness, FocusSummary, Shortcuts
from cxrlib.describe.loso_text import scores_row
from cxrlib.describe.words import join, source_name

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
    """``metrics.json["ablation"]`` as rows original / lungs erased / lungs only.

    Columns: balanced accuracy, accuracy, macro-F1 and each class's sensitivity.
    """
    import pandas as pd

    rows = []
    for key, label in ABLATION_ROWS:
        s = getattr(section, key)
        if s is None:
            continue
        row = scores_row({"images": label}, s, dict(s.sensitivity))
        rows.append({**row, "macro-F1": s.macro_f1})
    order = ["balanced accuracy", "accuracy", "macro-F1"]
    df = pd.DataFrame(rows).set_index("images") if rows else pd.DataFrame()
    return df[order + [c for c in df.columns if c not in order]] if rows else df


def _summary_rows(d: Mapping[str, FocusSummary], label: str) -> Any:
    import pandas as pd

    rows = [{label: k, "n": v.n, "mean": v.mean, "median": v.median} for k, v in d.items()]
    return pd.DataFrame(rows).set_index(label) if rows else pd.DataFrame()


def _faithfulness_row(name: str, f: Faithfulness) -> dict[str, Any]:
    return {"class": name, **f.model_dump(mode="json", exclude_unset=True)}


def _faithfulness_table(section: Explain) -> Any:
    import pandas as pd

    rows = [_faithfulness_row("all", section.faithfulness)] if section.faithfulness else []
    rows += [_faithfulness_row(c, v) for c, v in section.faithfulness_per_class.items()]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index("class").rename(columns=FAITHFULNESS_COLUMNS)


def explain_tables(section: Explain) -> dict[str, Any]:
    """``metrics.json["explain"]``: lung focus per class and per source, faithfulness.

    Returns:
        ``{"overall": FocusSummary (empty when not recorded), "flat": mean focus of a flat
        map over the model's view (None in older files), "per_class": df, "per_source": df,
        "faithfulness": df (overall + per class), "method": str, "fraction": float}``.
    """
    method = section.method or ""
    return {
        "overall": section.lung_focus or FocusSummary(),
        "flat": section.flat_map_focus.mean if section.flat_map_focus else None,
        "per_class": _summary_rows(section.lung_focus_per_class, "true class"),
        "per_source": _summary_rows(section.lung_focus_per_source, "source"),
        "faithfulness": _faithfulness_table(section),
        "method": METHOD_LABELS.get(method, method),
        "fraction": section.fraction,
    }


def describe_lung_focus(section: Explain) -> str | None:
    """The audit's lung-focus sentence (markdown), or None when no mean was recorded."""
    t = explain_tables(section)
    o = t["overall"]
    if o.mean is None:
        return None
    flat = t["flat"]
    return (
        f"{t['method']} of the predicted class, {o.n or 0:,} images"
        + (f" of the {section.split} split" if section.split else "")
        + f": on average **{pct(o.mean)}** of the heatmap lies inside the "
        f"lungs (median {pct(o.median or 0)}). "
        + (
            f"A map spread evenly over what the model sees would score **{pct(flat)}** "
            "(the lungs' share of its field of view; higher for a model that sees only "
            "the lung region), so compare the two."
            if flat is not None
            else "The lungs cover roughly 30-45% of a chest X-ray, so a map that ignored "
            "anatomy would score about that."
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

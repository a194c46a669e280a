"""The audit sections of the metrics file (``ablation``, ``shortcuts``, ``explain``,
``explain_methods``) as tables and in words."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

import numpy as np

from cxrlib.core.formatting import pct, pct_range
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.metrics import Ablation, Explain, ExplainMethods, FocusSummary, Shortcuts
from cxrlib.describe.prose import frame, join, prose, source_name

#: The ablation's image versions, in the table's order, and their names.
ABLATION_ROWS = (
    ("original", "original images"),
    ("lungs_erased", "lungs erased"),
    ("lungs_only", "only the lungs kept"),
)

FAITHFULNESS_COLUMNS = {
    "drop_hot": "confidence drop, hottest area blurred",
    "drop_random": "confidence drop, random area blurred",
    "score": "difference (> 0: the map points at evidence)",
}

#: Rank correlation with the re-initialised network's map at or above which a method's
#: maps "changed little", and below which "completely" (this project's wording).
STAYS_ALIKE = 0.5
CHANGES_COMPLETELY = 0.2


def ablation_table(section: Ablation) -> Any:
    """The ablation, one row per image version."""
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
    """Lung focus ``"per_class"`` and ``"per_source"``, and ``"faithfulness"`` (overall, then
    per class)."""
    faithful = [("all", section.faithfulness)] if section.faithfulness else []
    faithful += section.faithfulness_per_class.items()
    rows = [
        {"class": name, **f.model_dump(mode="json", exclude_unset=True)} for name, f in faithful
    ]
    return {
        "per_class": _focus_table(section.lung_focus_per_class, "true class"),
        "per_source": _focus_table(section.lung_focus_per_source, "source"),
        "faithfulness": frame(rows, "class").rename(columns=FAITHFULNESS_COLUMNS),
    }


def describe_lung_focus(section: Explain) -> str | None:
    """The lung-focus sentence, or None when no mean was recorded."""
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
    """The caption of the ablation table, or None without chance."""
    if section.chance is None:
        return None
    return f"{section.n or 0:,} images; chance balanced accuracy {pct(section.chance)}."


def describe_shortcuts(section: Shortcuts) -> list[str]:
    """The resolution swaps and the source probe, a sentence each."""
    lines = [
        f"The {source_name(source)} test images re-saved at {r.longer_side} px: "
        f"**{pct(r.changed)}** of {r.n} answers changed; balanced accuracy "
        f"{pct(r.original.balanced_accuracy)} -> {pct(r.resaved.balanced_accuracy)}."
        for source, r in section.resolution.items()
    ]
    return lines + [
        f"Among the {label} X-rays, a simple model reading the network's internal features "
        f"named the collection ({join([source_name(s) for s in p.sources])}) "
        f"**{pct(p.balanced_accuracy)}** of the time, where guessing gives "
        f"{pct(p.chance)}: the further above guessing, the more the network's view "
        "of an image carries where it was taken."
        for label, p in section.source_probe.items()
    ]


#: The one collection of children's X-rays: telling it apart is telling a child from an adult.
CHILDREN_SOURCE = "kermany"


def _named_own_source(section: Shortcuts, source: str) -> float | None:
    """Share of ``source``'s images, over every class's probe, that it named ``source``."""
    right = total = 0
    for probe in section.source_probe.values():
        if source in probe.sources and probe.confusion:
            row = probe.confusion[probe.sources.index(source)]
            right, total = right + row[probe.sources.index(source)], total + sum(row)
    return right / total if total else None


def describe_source_probe_plainly(section: Shortcuts) -> str | None:
    """The source probe in one short sentence for a clinician (the Trust page), or None: the
    class whose collection is named most above guessing, and the children's X-rays."""
    if not section.source_probe:
        return None
    label, probe = max(
        section.source_probe.items(), key=lambda item: item[1].balanced_accuracy - item[1].chance
    )
    text = (
        "Measured: a simple model reading the network's features names a "
        f"{label} X-ray's collection {pct(probe.balanced_accuracy)} of the time "
        f"(guessing: {pct(probe.chance)})"
    )
    children = _named_own_source(section, CHILDREN_SOURCE)
    if children is not None:
        text += f", and {pct(children)} of children's X-rays as children's"
    return text + "."


def methods_table(section: ExplainMethods) -> Any:
    """One row per heatmap method."""
    rows = []
    for m in section.methods:
        mine = [v for k, v in section.pairwise_iou.items() if m in k.split("~") and v is not None]
        r = section.randomised.get(m)
        spread = r.rank_correlation_range if r else None
        rows.append(
            {
                "method": METHOD_LABELS.get(m, m),
                "lung focus": section.lung_focus.get(m),
                "overlap with the other methods (IoU)": (float(np.mean(mine)) if mine else None),
                "random weights: rank correlation": r.rank_correlation if r else None,
                "range over the draws": f"{spread[0]:.2f} to {spread[1]:.2f}" if spread else None,
                "random weights: overlap (IoU)": r.hot_iou if r else None,
            }
        )
    return frame(rows, "method")


#: How the randomisation check words each band of rank correlation, lowest first.
_CHANGED = {
    "completely": "changed completely for {};",
    "partly": "changed partly for {}, which keep some of the image's structure;",
    "alike": "changed little for {}: those maps show the image's structure (edges, contrast) as "
    "much as what the model learnt.",
}


def _randomised_bands(section: ExplainMethods) -> dict[str, list[tuple[str, float]]]:
    bands: dict[str, list[tuple[str, float]]] = {band: [] for band in _CHANGED}
    for m in section.methods:
        r = section.randomised.get(m)
        rho = r.rank_correlation if r else None
        if rho is None:
            continue
        band = list(_CHANGED)[bisect_right((CHANGES_COMPLETELY, STAYS_ALIKE), rho)]
        bands[band].append((METHOD_LABELS.get(m, m), float(rho)))
    return bands


def _named(items: list[tuple[str, float]]) -> str:
    return join([f"{name} ({rho:.2f})" for name, rho in items])


def describe_methods(section: ExplainMethods) -> list[str]:
    """The method comparison and the model-randomisation check, in words."""
    lines = []
    agree = section.agreement
    if agree is not None and agree.mean is not None:
        percent = section.percent if section.percent is not None else 15
        lines.append(
            f"On {section.n or 0:,} images of the {section.split or 'given'} split, the methods' "
            f"hottest {percent:g}% regions overlap by "
            f"**{pct(agree.mean)}** on average (intersection over union of each pair; "
            f"10th-90th percentile {pct_range(agree.p10 or 0, agree.p90 or 0)})."
        )
    bands = _randomised_bands(section)
    if any(bands.values()):
        seeds = section.seeds or (section.seed or 0,)
        drawn = "once" if len(seeds) == 1 else f"{len(seeds)} times"
        text = (
            "**Model-randomisation check**: the same network with its weights re-drawn at "
            f"random ({drawn}) explained the same class. A map that explains *this* model "
            "should change. Mean rank correlation with the random network's map:"
        )
        for band, words in _CHANGED.items():
            if bands[band]:
                text += " " + words.format(_named(bands[band]))
        lines.append(text.rstrip(";") + ("" if text.endswith(".") else "."))
    return lines


def image_driven_note(section: ExplainMethods) -> str | None:
    """The Diagnose page's note on the methods whose maps changed little with random weights;
    None when every method's maps changed."""
    alike = _randomised_bands(section)["alike"]
    if not alike:
        return None
    return (
        f"In the model-randomisation check ({section.n or 0:,} test images, Metrics page, Heatmaps tab), "
        f"the maps of {_named(alike)} kept a rank correlation of {STAYS_ALIKE:g} or more with "
        "those of the same network with random weights: they show the image's structure as "
        "much as what this model learnt."
    )

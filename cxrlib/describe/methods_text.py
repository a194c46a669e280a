"""The heatmap methods compared (the metrics file's ``explain_methods``): how far their
maps agree, and the model-randomisation check, as a table and in words."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlib.core.formatting import pct, pct_range
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.metrics import ExplainMethods
from cxrlib.describe.prose import frame, join

#: Rank correlation with the re-initialised network's map at or above which a method's
#: maps "changed little", and below which "completely" (this project's wording).
STAYS_ALIKE = 0.5
CHANGES_COMPLETELY = 0.2


def _range(r: tuple[float, ...] | None) -> str | None:
    return f"{r[0]:.2f} to {r[1]:.2f}" if r else None


def methods_table(section: ExplainMethods) -> Any:
    """``metrics.json["explain_methods"]``: one row per heatmap method."""
    rows = []
    for m in section.methods:
        mine = [v for k, v in section.pairwise_iou.items() if m in k.split("~") and v is not None]
        r = section.randomised.get(m)
        rows.append(
            {
                "method": METHOD_LABELS.get(m, m),
                "lung focus": section.lung_focus.get(m),
                "overlap with the other methods (IoU)": (float(np.mean(mine)) if mine else None),
                "random weights: rank correlation": r.rank_correlation if r else None,
                "range over the draws": _range(r.rank_correlation_range) if r else None,
                "random weights: overlap (IoU)": r.hot_iou if r else None,
            }
        )
    return frame(rows, "method")


def _randomised_bands(section: ExplainMethods) -> dict[str, list[tuple[str, float]]]:
    bands: dict[str, list[tuple[str, float]]] = {"alike": [], "partly": [], "completely": []}
    for m in section.methods:
        r = section.randomised.get(m)
        rho = r.rank_correlation if r else None
        if rho is None:
            continue
        band = (
            "alike"
            if rho >= STAYS_ALIKE
            else "completely"
            if rho < CHANGES_COMPLETELY
            else "partly"
        )
        bands[band].append((METHOD_LABELS.get(m, m), float(rho)))
    return bands


def _named(items: list[tuple[str, float]]) -> str:
    return join([f"{name} ({rho:.2f})" for name, rho in items])


def _agreement_line(section: ExplainMethods) -> str | None:
    agree = section.agreement
    if agree is None or agree.mean is None:
        return None
    percent = section.percent if section.percent is not None else 15
    return (
        f"On {section.n or 0:,} images of the {section.split or 'given'} split, the methods' "
        f"hottest {percent:g}% regions overlap by "
        f"**{pct(agree.mean)}** on average (intersection over union of each pair; "
        f"10th-90th percentile {pct_range(agree.p10 or 0, agree.p90 or 0)})."
    )


def _randomisation_line(section: ExplainMethods) -> str | None:
    bands = _randomised_bands(section)
    if not any(bands.values()):
        return None
    seeds = section.seeds or (section.seed or 0,)
    drawn = "once" if len(seeds) == 1 else f"{len(seeds)} times"
    text = (
        "**Model-randomisation check**: the same network with its weights re-drawn at "
        f"random ({drawn}) explained the same class. A map that explains *this* model "
        "should change. Mean rank correlation with the random network's map:"
    )
    if bands["completely"]:
        text += f" changed completely for {_named(bands['completely'])};"
    if bands["partly"]:
        text += (
            f" changed partly for {_named(bands['partly'])}, which keep some of the image's "
            "structure;"
        )
    if bands["alike"]:
        text += (
            f" changed little for {_named(bands['alike'])}: those maps show the image's "
            "structure (edges, contrast) as much as what the model learnt."
        )
    return text.rstrip(";") + ("" if text.endswith(".") else ".")


def describe_methods(section: ExplainMethods) -> list[str]:
    """The method comparison and the model-randomisation check, in words."""
    lines = (_agreement_line(section), _randomisation_line(section))
    return [line for line in lines if line is not None]


def image_driven_note(section: ExplainMethods) -> str | None:
    """The Diagnose page's sentence under "Compare all methods" on the methods whose maps
    changed little when the weights were re-drawn; None when every method's maps changed."""
    alike = _randomised_bands(section)["alike"]
    if not alike:
        return None
    return (
        f"In the model-randomisation check ({section.n or 0:,} test images, Metrics page, Heatmaps tab), "
        f"the maps of {_named(alike)} kept a rank correlation of {STAYS_ALIKE:g} or more with "
        "those of the same network with random weights: they show the image's structure as "
        "much as what this model learnt."
    )

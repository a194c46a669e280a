"""The app's sentences (the disclaimer, the result in words, the input check's verdict),
and :func:`md_escape` for user text in Streamlit markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cxrlib.core.formatting import pct, pct_range
from cxrlib.describe.card import COPIES

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.pipeline import Diagnosis, GateVerdict

DISCLAIMER = "Research demo, not for diagnosis"
DISCLAIMER_DETAIL = (
    "CXR Lens is a research and teaching tool, not a medical device: do not use its output "
    "to make decisions about patients."
)

_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&=")


def md_escape(text: str, limit: int = 200) -> str:
    """``text`` shown literally in Streamlit markdown (no links or markup), without control
    characters and at most ``limit`` characters long."""
    clean = "".join(ch for ch in str(text) if ch.isprintable())
    if len(clean) > limit:
        clean = clean[: limit - 1] + "\u2026"
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in clean)


def probability_headline(d: Diagnosis) -> str:
    """The result in one line: most likely class, its probability and its range (markdown)."""
    k = d.predicted_index
    p, (lo, hi) = float(d.probabilities[k]), d.uncertainty[k]
    n = len(d.view_names)
    if d.averaged:
        return (
            f"Most likely: **{d.predicted_name}**, {pct(p)} (the average over the "
            f"image and {n - 1} {COPIES}; they range {pct_range(lo, hi)})"
        )
    return (
        f"Most likely: **{d.predicted_name}**, {pct(p)} "
        f"(range {pct_range(lo, hi)} over {n} {COPIES} of the image)"
    )


def is_unsure(d: Diagnosis) -> bool:
    """The answer is shaky: the top class is under 60 %, less than 20 points ahead of
    the runner-up, or moves by more than 30 points over the test-time views."""
    k = d.predicted_index
    p, (lo, hi) = float(d.probabilities[k]), d.uncertainty[k]
    second = float(np.sort(d.probabilities)[-2])
    return bool(p < 0.6 or p - second < 0.2 or hi - lo > 0.3)


def probability_note(d: Diagnosis) -> str:
    """How the shown probabilities were computed (the chart's caption, the report's line)."""
    n = len(d.view_names)
    if d.averaged:
        made = (
            f"Calibrated probabilities: the model's outputs averaged over the image and {n - 1} "
            f"{COPIES}, temperature-scaled on the validation split."
        )
    else:
        made = "Calibrated probabilities of the image (temperature-scaled on the validation split)."
    return (
        made + f" The black whiskers show the spread over the {n} versions: a wide spread "
        "means an unstable answer."
    )


def gate_text(gate: GateVerdict | None) -> str:
    """The input check's verdict in one sentence."""
    if gate is None:
        return "Not checked (the input check is unavailable)."
    if gate.is_cxr:
        return (
            "Looks like a frontal chest X-ray (its distance from the X-rays the check was "
            f"fitted on is {gate.score:.2f}; over 1.00 is refused)."
        )
    return f"Rejected: not a frontal chest X-ray ({gate.reason}); analysed anyway."

"""The lung-focus verdict: one level and one sentence for the share of a heatmap in the lungs.

Thresholds: the lungs cover roughly 30-45 % of a frontal chest X-ray, so a map that
ignores anatomy puts about that share inside them. ``>= 60 %`` is "good"; ``40-60 %``
is "caution" (no better than a map that ignores the lungs); ``< 40 %`` is "warning"
(most of the attention is elsewhere: text, markers, devices, borders; a shortcut is
likely).
"""

from __future__ import annotations

from cxrlib.core.formatting import pct

FOCUS_GOOD = 0.60
FOCUS_LOW = 0.40
FOCUS_LEVELS: tuple[str, ...] = ("good", "caution", "warning", "unknown")


def _share_text(focus: float, lung_area: float, view_share: float | None) -> str:
    seen = (
        f" and {pct(view_share)} of the region the model sees)." if view_share is not None else ")."
    )
    return (
        f"{pct(focus)} of the heatmap lies inside the lungs "
        f"(which cover {pct(lung_area)} of the image" + seen
    )


def focus_verdict(
    focus: float | None,
    lung_area: float | None,
    heatmap_empty: bool = False,
    view_share: float | None = None,
) -> tuple[str, str]:
    """Level and sentence for a lung-focus value (thresholds in the module docstring).

    Args:
        focus: Share of the heatmap inside the lungs, or None without a mask.
        lung_area: Share of the image covered by the mask, or None.
        heatmap_empty: The heatmap is all zero.
        view_share: For a model that sees only a crop, the lungs' share of that crop
            (what a flat heatmap would score), or None.

    Returns:
        ``(level, text)`` with level in :data:`FOCUS_LEVELS`.
    """
    if focus is None or lung_area is None:
        return "unknown", "Lung focus is not available: no lung segmentation was run."
    if lung_area <= 0:
        return (
            "warning",
            "No lungs were found in this image, so the heatmap cannot be checked against "
            "them. Is this a frontal chest X-ray?",
        )
    if heatmap_empty:
        return "unknown", "The heatmap is empty for this class, so there is nothing to check."
    text = _share_text(focus, lung_area, view_share)
    if focus >= FOCUS_GOOD:
        return "good", text
    if focus >= FOCUS_LOW:
        return (
            "caution",
            text + " Much of the model's attention is outside the lungs; look at the heatmap "
            "before trusting the prediction.",
        )
    return (
        "warning",
        text + " Most of the model's attention is outside the lungs: it may rely on text, "
        "markers, devices or borders instead of the lungs (a shortcut). Do not trust this "
        "prediction.",
    )

"""The Diagnose page's probability chart as inline SVG (laid out by the browser like text),
and the colours and font every chart uses."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from cxrlib.core.formatting import pct, pct_range

#: A class has the same colour on every chart.
CLASS_COLORS = {"covid": "#b5563c", "normal": "#3f7f5f", "pneumonia": "#3f6fa0"}
NEUTRAL = "#9aa7b1"
INK = "#1b2a35"
FONT_FAMILY = "Source Sans Pro, Helvetica, Arial, sans-serif"
WIDTH = 480  # viewBox units: about the column width, so text keeps its size
LABEL_W = 100  # class names
RIGHT_PAD = 12
ROW_H = 45
TOP, BOTTOM = 10, 34  # room for the axis labels
AXIS_MAX = 112.0  # percent: room for the value labels right of a 100% bar
GRID = "#e6ebef"


def class_color(name: str, i: int = 0) -> str:
    """The fixed colour of a class (a neutral palette for unknown names)."""
    palette = ("#8a6d3b", "#6b5b95", "#5b8a8a", "#8a5b6b")
    return CLASS_COLORS.get(name, palette[i % len(palette)])


def _x(pct: float) -> float:
    return LABEL_W + (WIDTH - LABEL_W - RIGHT_PAD) * min(max(pct, 0.0), AXIS_MAX) / AXIS_MAX


def probability_svg(
    class_names: Sequence[str],
    probabilities: np.ndarray | Sequence[float],
    ranges: np.ndarray | Sequence[Sequence[float]] | None,
    predicted: int,
) -> str:
    """One ``<svg>`` of (K,) probabilities, top to bottom, with their (K, 2) test-time
    ranges (or None); ``predicted`` in its colour, the rest gray. Each value is a
    ``<text class="cxr-value">``, each bar has a ``<title>`` with its figures."""
    names = list(class_names)
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (len(names),):
        raise ValueError(f"{len(names)} classes but probabilities of shape {p.shape}")
    lo, hi = p.copy(), p.copy()
    if ranges is not None:
        r = np.asarray(ranges, dtype=float).reshape(len(names), 2)
        lo, hi = np.minimum(r[:, 0], p), np.maximum(r[:, 1], p)
    height = TOP + ROW_H * len(names) + BOTTOM
    plot_bottom = TOP + ROW_H * len(names)
    summary = "Probabilities: " + ", ".join(f"{n} {pct(v)}" for n, v in zip(names, p))
    parts = [
        f'<svg class="cxr-probabilities" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-label="{escape(summary)}" '
        f'style="font-family:{FONT_FAMILY};color:{INK};max-width:{WIDTH}px">'
    ]
    for tick in range(0, 101, 20):
        x = _x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{plot_bottom}" stroke="{GRID}"/>'
            f'<text x="{x:.1f}" y="{plot_bottom + 22}" font-size="13" text-anchor="middle" '
            f'fill="{INK}">{tick}%</text>'
        )
    for i, name in enumerate(names):
        parts.append(_row(i, name, p[i], lo[i], hi[i], i == predicted, ranges is not None))
    parts.append("</svg>")
    return "".join(parts)


def _row(i: int, name: str, v: float, lo: float, hi: float, top: bool, whisker: bool) -> str:
    """One class: its name, bar, whisker and value label."""
    mid = TOP + ROW_H * i + ROW_H / 2
    bar_h = ROW_H * 0.65
    color = class_color(name, i) if top else NEUTRAL
    tip = f"{name}: {pct(v, 1)}"
    if whisker:
        tip += f" (range {pct_range(lo, hi)} over test-time views)"
    out = [
        f"<g><title>{escape(tip)}</title>"
        f'<text x="{LABEL_W - 10}" y="{mid + 5:.1f}" font-size="14" text-anchor="end" '
        f'fill="{INK}">{escape(name)}</text>'
        f'<rect x="{_x(0):.1f}" y="{mid - bar_h / 2:.1f}" width="{_x(100 * v) - _x(0):.1f}" '
        f'height="{bar_h:.1f}" fill="{color}"/>'
    ]
    if whisker:
        a, b = _x(100 * lo), _x(100 * hi)
        out.append(
            f'<path d="M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 7:.1f}V{mid + 7:.1f}'
            f'M{b:.1f} {mid - 7:.1f}V{mid + 7:.1f}" stroke="{INK}" stroke-width="1.5" '
            'fill="none"/>'
        )
    weight = ' font-weight="bold"' if top else ""
    out.append(
        f'<text class="cxr-value" x="{_x(100 * hi) + 8:.1f}" y="{mid + 5:.1f}" font-size="14"'
        f'{weight} fill="{INK}">{pct(v)}</text></g>'
    )
    return "".join(out)

"""Probabilities and shares as the pages, the charts and the PDF write them."""

from __future__ import annotations


def pct(share: float, digits: int = 0) -> str:
    """``0.873`` -> ``"87%"`` (``digits`` decimals: ``"87.3%"``)."""
    return f"{100 * share:.{digits}f}%"


def pct_range(low: float, high: float, digits: int = 0) -> str:
    """``(0.81, 0.9)`` -> ``"81-90%"``."""
    return f"{100 * low:.{digits}f}-{100 * high:.{digits}f}%"


def pct_of(count: int, total: int) -> str:
    """``(23, 40)`` -> ``"58%"``: ``count`` as a share of ``total``, computed from the counts
    (``pct(23 / 40)`` can round the other way at a half)."""
    return f"{100 * count / total:.0f}%"

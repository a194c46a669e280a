"""The one formatter of probabilities and shares."""

from __future__ import annotations

from cxrlib.core.formatting import pct, pct_of, pct_range


def test_pct_and_range() -> None:
    assert pct(0.873) == "87%"
    assert pct(0.873, 1) == "87.3%"
    assert pct(1.0) == "100%"
    assert pct_range(0.81, 0.9) == "81-90%"
    assert pct_range(0.812, 0.9, 1) == "81.2-90.0%"


def test_pct_of_counts_rounds_from_the_counts() -> None:
    assert pct_of(75, 184) == "41%"
    # 23 of 40 is 57.5%: from the counts it rounds to 58%, while the float share 0.575 is
    # 57.4999...% and rounds down, which is why counts are not divided first.
    assert pct_of(23, 40) == "58%"
    assert pct(23 / 40) == "57%"

"""cxrlib.describe.probability_svg: the Diagnose chart draws the numbers it is given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cxrlib.describe import probability_svg as ps

NAMES = ["covid", "normal", "pneumonia"]
SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    # The markup is inline HTML; add the namespace so a strict XML parser reads it.
    return ET.fromstring(svg.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def _bars(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g")]


def test_values_whiskers_and_colours():
    p = np.array([0.1, 0.7, 0.2])
    ranges = np.array([[0.05, 0.2], [0.6, 0.8], [0.15, 0.3]])
    root = _parse(ps.probability_svg(NAMES, p, ranges, predicted=1))
    rows = _bars(root)
    assert [r.find(f"{SVG}text").text for r in rows] == NAMES
    values = [r.find(f"{SVG}text[@class='cxr-value']") for r in rows]
    assert [v.text for v in values] == ["10%", "70%", "20%"]
    assert [v.get("font-weight") for v in values] == [None, "bold", None]
    # Bar lengths are proportional to the probabilities.
    widths = np.array([float(r.find(f"{SVG}rect").get("width")) for r in rows])
    np.testing.assert_allclose(widths / widths[1], p / p[1], rtol=5e-3)  # 0.1-unit rounding
    assert [r.find(f"{SVG}rect").get("fill") for r in rows] == [
        ps.NEUTRAL,
        ps.CLASS_COLORS["normal"],
        ps.NEUTRAL,
    ]
    # Whiskers span the range; labels sit right of them.
    for r, (lo, hi) in zip(rows, ranges):
        a, b = map(
            float, re.match(r"M([\d.]+) [\d.]+H([\d.]+)", r.find(f"{SVG}path").get("d")).groups()
        )
        assert a == pytest.approx(ps._x(100 * lo), abs=0.06)
        assert b == pytest.approx(ps._x(100 * hi), abs=0.06)
        assert float(r.find(f"{SVG}text[@class='cxr-value']").get("x")) > b
    tips = [r.find(f"{SVG}title").text for r in rows]
    assert tips[1] == "normal: 70.0% (range 60-80% over test-time views)"
    assert root.get("aria-label") == "Probabilities: covid 10%, normal 70%, pneumonia 20%"


def test_without_ranges_names_escaped_and_shape_check():
    root = _parse(ps.probability_svg(["a<b", "normal", "pneumonia"], [0.2, 0.3, 0.5], None, 2))
    rows = _bars(root)
    assert all(r.find(f"{SVG}path") is None for r in rows)
    assert rows[0].find(f"{SVG}text").text == "a<b"  # escaped in the markup, read back
    assert rows[2].find(f"{SVG}rect").get("fill") == ps.CLASS_COLORS["pneumonia"]
    with pytest.raises(ValueError):
        ps.probability_svg(NAMES, [0.5, 0.5], None, 0)

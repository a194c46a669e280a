"""cxrlib.describe.methods_text: the heatmap methods compared, as a table and in words."""

from __future__ import annotations

import pytest
from saved_metrics import METHODS_SECTION
from saved_metrics import section as read_section

from cxrlib.describe import methods_text

METHODS = read_section("explain_methods", METHODS_SECTION)


def test_methods_table():
    t = methods_text.methods_table(METHODS)
    assert list(t.index) == ["Grad-CAM", "LayerCAM", "SmoothGrad"]
    shared = t["overlap with the other methods (IoU)"]
    assert shared.tolist() == pytest.approx([0.5, 0.55, 0.25])  # mean of each one's pairs
    assert t["random weights: rank correlation"].tolist() == [0.01, 0.32, 0.59]
    assert t["range over the draws"].iloc[2] == "0.43 to 0.70"
    assert t["range over the draws"].iloc[:2].isna().all()
    assert methods_text.methods_table(read_section("explain_methods", {})).empty


def test_describe_methods_puts_each_method_in_its_band():
    lines = methods_text.describe_methods(METHODS)
    assert "On 200 images of the test split" in lines[0] and "**55%**" in lines[0]
    check = lines[1]
    assert "changed completely for Grad-CAM (0.01)" in check
    assert "changed partly for LayerCAM (0.32)" in check
    assert "changed little for SmoothGrad (0.59)" in check
    note = methods_text.image_driven_note(METHODS)
    assert note is not None and "the maps of SmoothGrad (0.59) kept" in note
    assert "Grad-CAM" not in note and "LayerCAM" not in note
    assert methods_text.describe_methods(read_section("explain_methods", {})) == []

"""cxrlib.describe.audit_text: the audit sections (ablation, shortcuts, heatmap methods)."""

from __future__ import annotations

import pytest
import saved_metrics
from saved_metrics import METHODS_SECTION
from saved_metrics import section as read_section

from cxrlib.describe import audit_text

METHODS = read_section("explain_methods", METHODS_SECTION)


def test_ablation_table_rows_are_the_three_image_versions():
    def scores(bal: float) -> dict:
        return {
            "balanced_accuracy": bal,
            "accuracy": bal - 0.01,
            "macro_f1": bal - 0.02,
            "sensitivity": {"covid": bal + 0.01, "normal": bal},
        }

    section = {"original": scores(0.9), "lungs_erased": scores(0.4), "chance": 1 / 3}
    table = audit_text.ablation_table(read_section("ablation", section))
    # Missing versions (no lungs-only run here) are left out, not shown empty.
    assert list(table.index) == ["original images", "lungs erased"]
    assert list(table.columns) == [
        "balanced accuracy",
        "accuracy",
        "macro-F1",
        "covid sensitivity",
        "normal sensitivity",
    ]
    assert table.loc["lungs erased", "balanced accuracy"] == 0.4
    assert table.loc["original images", "covid sensitivity"] == pytest.approx(0.91)
    assert audit_text.ablation_table(read_section("ablation", {"chance": 1 / 3})).empty


def test_shortcut_sentences_name_the_change_and_chance():
    shortcuts = read_section("shortcuts", saved_metrics.shortcuts())
    first, probe = audit_text.describe_shortcuts(shortcuts)
    assert "re-saved at 256 px: **4%** of 84 answers changed" in first
    assert "80% -> 79%" in first
    assert "**71%** of the time, where guessing gives 50%" in probe
    assert "adult NIH Clinical Center" in probe


def test_methods_table():
    t = audit_text.methods_table(METHODS)
    assert list(t.index) == ["Grad-CAM", "LayerCAM", "SmoothGrad"]
    shared = t["overlap with the other methods (IoU)"]
    assert shared.tolist() == pytest.approx([0.5, 0.55, 0.25])  # mean of each one's pairs
    assert t["random weights: rank correlation"].tolist() == [0.01, 0.32, 0.59]
    assert t["range over the draws"].iloc[2] == "0.43 to 0.70"
    assert t["range over the draws"].iloc[:2].isna().all()
    assert audit_text.methods_table(read_section("explain_methods", {})).empty


def test_describe_methods_puts_each_method_in_its_band():
    lines = audit_text.describe_methods(METHODS)
    assert "On 200 images of the test split" in lines[0] and "**55%**" in lines[0]
    check = lines[1]
    assert "changed completely for Grad-CAM (0.01)" in check
    assert "changed partly for LayerCAM (0.32)" in check
    assert "changed little for SmoothGrad (0.59)" in check
    note = audit_text.image_driven_note(METHODS)
    assert note is not None and "the maps of SmoothGrad (0.59) kept" in note
    assert "Grad-CAM" not in note and "LayerCAM" not in note
    assert audit_text.describe_methods(read_section("explain_methods", {})) == []


def test_the_source_probe_in_plain_words_counts_the_childrens_collection_over_classes():
    probe = {
        "normal": {
            "sources": ["kermany", "nih", "radiography"],
            "balanced_accuracy": 0.55,
            "chance": 1 / 3,
            "confusion": [[9, 0, 1], [0, 2, 8], [1, 1, 8]],
        },
        "pneumonia": {
            "sources": ["kermany", "quex"],
            "balanced_accuracy": 0.6,
            "chance": 0.5,
            "confusion": [[8, 2], [3, 7]],
        },
    }
    section = read_section("shortcuts", {"source_probe": probe})
    text = audit_text.describe_source_probe_plainly(section)
    # The class named most above guessing: normal (+22 points), not pneumonia (+10).
    assert "names a normal X-ray's collection 55% of the time (guessing: 33%)" in text
    assert (
        "and 85% of children's X-rays as children's." in text
    )  # (9 + 8) of (10 + 10), over both classes
    # Without the children's collection, or without its confusion, no sentence about it.
    adults_only = audit_text.describe_source_probe_plainly(
        read_section("shortcuts", saved_metrics.shortcuts())
    )
    assert "normal X-ray's collection 71% of the time (guessing: 50%)." in adults_only
    assert "children" not in adults_only
    assert audit_text.describe_source_probe_plainly(read_section("shortcuts", {})) is None

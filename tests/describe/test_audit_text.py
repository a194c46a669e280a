"""cxrlib.describe.audit_text: the shortcut audit's ablation table."""

from __future__ import annotations

import pytest
import saved_metrics
from saved_metrics import section as read_section

from cxrlib.describe import audit_text


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

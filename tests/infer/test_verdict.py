"""The lung-focus verdict: levels at the thresholds and the sentence the user reads."""

from __future__ import annotations

from cxrlib.infer.focus import FOCUS_GOOD, FOCUS_LEVELS, FOCUS_LOW, focus_verdict


def test_focus_verdict_levels() -> None:
    level, text = focus_verdict(0.84, 0.35)
    assert level == "good" and text.startswith("84% of the heatmap lies inside the lungs")
    assert focus_verdict(0.5, 0.35)[0] == "caution"
    assert focus_verdict(0.2, 0.35)[0] == "warning"
    assert focus_verdict(FOCUS_GOOD, 0.3)[0] == "good"
    assert focus_verdict(FOCUS_LOW, 0.3)[0] == "caution"
    assert focus_verdict(None, None)[0] == "unknown"
    assert focus_verdict(0.0, 0.0)[0] == "warning"  # segmenter found no lungs
    assert focus_verdict(0.0, 0.3, heatmap_empty=True)[0] == "unknown"
    # A lung-crop model: the sentence also gives the lungs' share of what the model sees.
    assert "and 55% of the region the model sees" in focus_verdict(0.7, 0.35, view_share=0.55)[1]


def test_every_verdict_has_a_known_level_and_says_what_to_do() -> None:
    for focus, area in [(0.84, 0.35), (0.5, 0.35), (0.2, 0.35), (None, None), (0.0, 0.0)]:
        level, text = focus_verdict(focus, area)
        assert level in FOCUS_LEVELS and text.endswith((".", "?"))
    assert "look at the heatmap before trusting" in focus_verdict(0.5, 0.35)[1]
    assert focus_verdict(0.2, 0.35)[1].endswith("Do not trust this prediction.")
    assert "(which cover 35% of the image)." in focus_verdict(0.84, 0.35)[1]

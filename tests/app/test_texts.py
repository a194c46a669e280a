"""cxrlib.app.texts: the app's sentences and the escaping of user text."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cxrlib.app import texts
from cxrlib.infer.pipeline import GateVerdict


def test_md_escape_makes_user_text_inert():
    s = texts.md_escape("[x](javascript:alert(1)) **b** <img> $x$ :red[y] a_b.png\x07")
    assert "\x07" not in s
    # No markdown-special character is left unescaped.
    assert re.search(r"(?<!\\)[\[\]()*<>$:_]", s) is None, s
    # Every special character is backslash-escaped, so the visible text is unchanged.
    assert s.replace("\\", "") == "[x](javascript:alert(1)) **b** <img> $x$ :red[y] a_b.png"
    assert len(texts.md_escape("a" * 500)) == 200


def _diagnosis(probs, ranges, averaged: bool):
    from cxrlib.infer.pipeline import Diagnosis

    probs = np.asarray(probs, np.float32)
    names = ("covid", "normal", "pneumonia")
    k = int(np.argmax(probs))
    return Diagnosis(
        class_names=names,
        probabilities=probs,
        predicted_index=k,
        predicted_name=names[k],
        uncertainty=np.asarray(ranges, np.float32),
        view_probabilities=np.tile(probs, (9, 1)),
        view_names=("original",) + tuple(f"v{i}" for i in range(8)),
        target_index=k,
        target_name=names[k],
        method="gradcam",
        heatmap=np.zeros((4, 4), np.float32),
        lung_mask=None,
        lung_focus=None,
        lung_area=None,
        focus_level="unknown",
        focus_verdict="",
        averaged=averaged,
    )


def test_probability_words_say_whether_the_views_were_averaged():
    ranges = [[0.7, 0.9], [0.05, 0.2], [0.0, 0.1]]
    averaged = _diagnosis([0.82, 0.12, 0.06], ranges, True)
    single = _diagnosis([0.82, 0.12, 0.06], ranges, False)
    head = texts.probability_headline(averaged)
    assert "**covid**, 82%" in head and "average over the image and 8" in head
    assert "70-90%" in head
    assert "average" not in texts.probability_headline(single)
    assert "range 70-90% over 9" in texts.probability_headline(single)
    assert "averaged over the image and 8" in texts.probability_note(averaged)
    assert "of the image (temperature" in texts.probability_note(single)


@pytest.mark.parametrize(
    "probs,ranges,unsure",
    [
        ([0.82, 0.12, 0.06], [[0.7, 0.9], [0.05, 0.2], [0.0, 0.1]], False),
        ([0.55, 0.40, 0.05], [[0.5, 0.6], [0.35, 0.45], [0.0, 0.1]], True),  # under 60 %
        ([0.62, 0.38, 0.00], [[0.6, 0.65], [0.35, 0.4], [0.0, 0.0]], False),  # 24 points ahead
        ([0.60, 0.42, 0.00], [[0.6, 0.65], [0.35, 0.4], [0.0, 0.0]], True),  # 18 points ahead
        ([0.85, 0.10, 0.05], [[0.5, 0.9], [0.05, 0.4], [0.0, 0.1]], True),  # range 40 points
    ],
)
def test_is_unsure(probs, ranges, unsure):
    assert texts.is_unsure(_diagnosis(probs, ranges, True)) is unsure


def test_gate_text_gives_the_score_with_its_limit():
    assert "unavailable" in texts.gate_text(None)
    passed = texts.gate_text(GateVerdict(True, 0.42, ""))
    assert "Looks like a frontal chest X-ray" in passed and "0.42; over 1.00 is refused" in passed
    assert "(a photograph); analysed anyway" in texts.gate_text(
        GateVerdict(False, 3, "a photograph")
    )

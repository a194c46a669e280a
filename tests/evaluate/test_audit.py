"""cxrlib.evaluate.audit: lung ablations and explanation summaries."""

from __future__ import annotations

import numpy as np
import pytest
from lung_doubles import BoxSegmenter, images

from cxrlib.evaluate.audit import ablation, ablation_verdict, explanation_summary
from cxrlib.infer.classifier import load_classifier
from cxrlib.infer.focus import flat_map_focus


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_classifier(tiny_model_path)


def test_ablation_original_matches_plain_prediction(tiny):
    grays, y = images()
    res = ablation(tiny, grays, y, [BoxSegmenter().mask(g) for g in grays])
    pred = tiny.predict(grays).argmax(1)
    assert res["original"]["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-4)
    assert res["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert res["n"] == 12 and res["empty_masks"] == 0
    assert set(res) >= {"lungs_erased", "lungs_only", "verdict"}


def test_ablation_with_empty_masks_erases_nothing(tiny):
    grays, y = images()
    res = ablation(tiny, grays, y, [BoxSegmenter(empty=True).mask(g) for g in grays])
    # No lungs found: "lungs erased" is the original image, "lungs only" is a flat image.
    assert res["lungs_erased"] == res["original"]
    assert res["empty_masks"] == 12


def test_verdict_wording_follows_the_numbers():
    assert "something other than the lungs" in ablation_verdict(0.8, 0.95, 1 / 3)
    assert "partly" in ablation_verdict(0.5, 0.95, 1 / 3)
    assert "depend on the lung fields" in ablation_verdict(0.36, 0.95, 1 / 3)


def test_flat_map_focus_is_the_lung_share_of_the_view():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 10:40] = True  # 18% of the image
    assert flat_map_focus(mask) == pytest.approx(0.18)
    assert flat_map_focus(mask, (20, 80, 10, 70)) == pytest.approx(0.5)  # half of the crop


def test_explanation_summary_reports_focus_against_a_flat_map(tiny):
    grays, y = images(6)
    seg = BoxSegmenter()
    res = explanation_summary(tiny, seg, grays, y, ["a", "a", "a", "b", "b", "b"])
    area = np.mean([seg.mask(g).mean() for g in grays])
    assert res["flat_map_focus"]["mean"] == pytest.approx(area, abs=1e-3)
    assert res["n"] == 6 and set(res["lung_focus_per_source"]) == {"a", "b"}
    assert 0 <= res["lung_focus"]["mean"] <= 1


def test_explanation_summary_explains_the_models_own_prediction(tiny, monkeypatch):
    from cxrlib.infer.explain import Explainer

    grays, y = images(4)
    explained = []
    real = Explainer.explain

    def spy(self, gray, method="gradcam", class_index=None):
        explained.append(class_index)
        return real(self, gray, method, class_index)

    monkeypatch.setattr(Explainer, "explain", spy)
    wanted = [2, 0, 1, 2]  # what the model "predicts": not what the original alone says
    monkeypatch.setattr(tiny, "predict", lambda g, *a, **k: np.eye(3)[wanted][: len(g)])
    explanation_summary(tiny, BoxSegmenter(), grays, y, ["a"] * 4)
    assert explained == wanted

"""cxrlib.evaluate.methods: every heatmap method compared, and the randomisation check."""

from __future__ import annotations

import numpy as np
import pytest
from lung_doubles import BoxSegmenter, images

from cxrlib.evaluate import methods
from cxrlib.evaluate.methods import compare_explanations, randomised_classifier
from cxrlib.infer.classifier import load_classifier


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_classifier(tiny_model_path)


def test_randomised_classifier_keeps_the_framing_and_redraws_the_weights(tiny):
    fresh = randomised_classifier(tiny, seed=3)
    old, new = tiny.model.get_weights(), fresh.model.get_weights()
    assert [w.shape for w in old] == [w.shape for w in new]
    assert any(not np.allclose(a, b) for a, b in zip(old, new, strict=True))
    assert fresh.preprocess == tiny.preprocess and fresh.class_names == tiny.class_names
    # Seeded: the same seed draws the same network.
    again = randomised_classifier(tiny, seed=3).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(new, again, strict=True))


def test_compare_explanations(tiny):
    from cxrlib.core.methods import METHODS

    grays, _ = images(3)
    res = compare_explanations(tiny, BoxSegmenter(), grays)
    assert res["n"] == 3 and res["methods"] == list(METHODS) and res["seeds"] == [0, 1, 2]
    a = res["agreement"]
    assert 0 <= a["p10"] <= a["median"] <= a["p90"] <= 1
    # Global average pooling + one dense layer: Grad-CAM++ and LayerCAM coincide.
    assert res["pairwise_iou"]["gradcampp~layercam"] == pytest.approx(1.0)
    for m in METHODS:
        r = res["randomised"][m]
        assert 0 <= r["hot_iou"] <= 1
        if r["rank_correlation"] is not None:
            low, high = r["rank_correlation_range"]
            assert -1 <= low <= r["rank_correlation"] <= high <= 1
        assert 0 <= res["lung_focus"][m] <= 1


def test_compare_explanations_sees_a_network_that_did_not_change(tiny, monkeypatch):
    # With the "randomised" copy being the model itself, every map is unchanged: the
    # check must then report perfect likeness (so a low figure means a real change).
    monkeypatch.setattr(methods, "randomised_classifier", lambda clf, seed=0: clf)
    monkeypatch.setattr(methods, "METHODS", ("gradcam", "layercam"))
    grays, _ = images(2)
    res = compare_explanations(tiny, BoxSegmenter(), grays)
    for m in ("gradcam", "layercam"):
        assert res["randomised"][m]["hot_iou"] == pytest.approx(1.0)
        assert res["randomised"][m]["rank_correlation"] == pytest.approx(1.0)
        assert res["randomised"][m]["rank_correlation_range"] == pytest.approx([1.0, 1.0])

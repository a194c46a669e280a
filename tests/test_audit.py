"""cxrlib.evaluate.audit: ablations, explanation summaries and leave-one-source-out."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.evaluate import audit
from cxrlib.evaluate.audit import (
    ablation,
    ablation_verdict,
    compare_explanations,
    explanation_summary,
    leave_one_source_out,
    randomised_classifier,
)
from cxrlib.infer.focus import flat_map_focus
from cxrlib.infer.classifier import load_classifier
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.classifier import TrainConfig


class BoxSegmenter:
    """A segmenter that 'finds' the same two boxes in every image (a test double)."""

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty

    def mask(self, g: np.ndarray) -> np.ndarray:
        m = np.zeros(g.shape, bool)
        if not self.empty:
            h, w = g.shape
            m[h // 5 : 4 * h // 5, w // 8 : 3 * w // 8] = True
            m[h // 5 : 4 * h // 5, 5 * w // 8 : 7 * w // 8] = True
        return m

    def segment_many(self, grays, conventions):
        return [self.mask(g) for g in grays]


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return load_classifier(tiny_model_path)


def _images(n: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    grays = [rng.integers(0, 255, (180, 150), dtype=np.uint8) for _ in range(n)]
    return grays, np.arange(n) % 3


def test_ablation_original_matches_plain_prediction(tiny):
    grays, y = _images()
    res = ablation(tiny, BoxSegmenter(), grays, y)
    pred = tiny.predict(grays).argmax(1)
    assert res["original"]["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-4)
    assert res["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert res["n"] == 12 and res["empty_masks"] == 0
    assert set(res) >= {"lungs_erased", "lungs_only", "verdict"}


def test_ablation_with_empty_masks_erases_nothing(tiny):
    grays, y = _images()
    res = ablation(tiny, BoxSegmenter(empty=True), grays, y)
    # No lungs found: "lungs erased" is the original image, "lungs only" is a flat image.
    assert res["lungs_erased"] == res["original"]
    assert res["empty_masks"] == 12


def test_verdict_wording_follows_the_numbers():
    assert "something other than the lungs" in ablation_verdict(0.8, 0.95, 1 / 3)
    assert "partly" in ablation_verdict(0.5, 0.95, 1 / 3)
    assert "depend on the lung fields" in ablation_verdict(0.36, 0.95, 1 / 3)


def test_leave_one_source_out_scores_only_the_held_out_source(tiny_manifest, cxr_dir, monkeypatch):
    import pandas as pd

    import cxrlib.evaluate.cli
    from cxrlib.infer.diagnose import DEFAULT_VIEWS

    cfg = TrainConfig(
        arch="small",
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        preprocess=PreprocessConfig(size=64),
    )
    read = []  # (files, views) of every batch of images the audit reads and scores
    real = cxrlib.evaluate.cli.file_view_logits

    def spy(clf, files, views=(), *args, **kwargs):
        read.append((tuple(files), tuple(views)))
        return real(clf, files, views, *args, **kwargs)

    monkeypatch.setattr(cxrlib.evaluate.cli, "file_view_logits", spy)
    views = DEFAULT_VIEWS[:2]
    res = leave_one_source_out(
        tiny_manifest, cfg, ["cxnet"], root=cxr_dir, log=lambda *_: None, views=views
    )
    m = pd.read_csv(tiny_manifest)
    n_held = int((m.source == "cxnet").sum())
    held = res["sources"]["cxnet"]
    assert held["n"] == n_held
    assert set(held["per_class_accuracy"]) == set(m[m.source == "cxnet"].label)
    assert held["support"] == m[m.source == "cxnet"].label.value_counts().to_dict()
    assert 0.0 <= held["accuracy"] <= 1.0
    assert res["schedule"]["epochs"] == 1
    # The held-out source is read once, with the views, and only it gets them.
    held_files = [f for f, _ in read if any("/cxnet/" in x for x in f)]
    assert len(held_files) == 1 and len(held_files[0]) == n_held
    assert [v for _, v in read if v] == [views]
    assert not any("/cxnet/" in x for f, v in read if not v for x in f)
    assert held["with_views"]["n"] == n_held
    # The tiny manifest has no test split: no internal figure, rather than a mean of nothing.
    assert "test" not in set(m.split) and held["internal_test_balanced_accuracy"] is None


def test_flat_map_focus_is_the_lung_share_of_the_view():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 10:40] = True  # 18% of the image
    assert flat_map_focus(mask) == pytest.approx(0.18)
    assert flat_map_focus(mask, (20, 80, 10, 70)) == pytest.approx(0.5)  # half of the crop
    # A lung-mask model sees only its (dilated) mask: here the lungs plus a 10-px ring.
    view = np.zeros((100, 100), bool)
    view[10:90, 0:50] = True
    assert flat_map_focus(mask, view=view) == pytest.approx(1800 / 4000)
    assert flat_map_focus(mask, (20, 80, 10, 70), view) == pytest.approx(1800 / 2400)
    # An empty mask masks nothing (no lungs found): the view is the crop again.
    assert flat_map_focus(mask, (20, 80, 10, 70), np.zeros_like(view)) == pytest.approx(0.5)


def test_explanation_summary_reports_focus_against_a_flat_map(tiny):
    from cxrlib.infer.explain import Explainer

    grays, y = _images(6)
    seg = BoxSegmenter()
    res = explanation_summary(tiny, Explainer(tiny), seg, grays, y, ["a", "a", "a", "b", "b", "b"])
    area = np.mean([seg.mask(g).mean() for g in grays])
    assert res["flat_map_focus"]["mean"] == pytest.approx(area, abs=1e-3)
    assert res["n"] == 6 and set(res["lung_focus_per_source"]) == {"a", "b"}
    assert 0 <= res["lung_focus"]["mean"] <= 1


def test_explanation_summary_explains_the_models_own_prediction(tiny, monkeypatch):
    from cxrlib.infer.explain import Explainer

    grays, y = _images(4)
    explainer = Explainer(tiny)
    explained = []
    real = explainer.explain

    def spy(gray, method="gradcam", class_index=None):
        explained.append(class_index)
        return real(gray, method, class_index)

    monkeypatch.setattr(explainer, "explain", spy)
    wanted = [2, 0, 1, 2]  # what the model "predicts": not what the original alone says
    monkeypatch.setattr(tiny, "predict", lambda g, *a, **k: np.eye(3)[wanted][: len(g)])
    explanation_summary(tiny, explainer, BoxSegmenter(), grays, y, ["a"] * 4)
    assert explained == wanted


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
    from cxrlib.infer.explain import METHODS

    grays, y = _images(3)
    res = compare_explanations(tiny, BoxSegmenter(), grays, y)
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
    monkeypatch.setattr(audit, "randomised_classifier", lambda clf, seed=0: clf)
    grays, y = _images(2)
    res = compare_explanations(tiny, BoxSegmenter(), grays, y, methods=["gradcam", "layercam"])
    for m in ("gradcam", "layercam"):
        assert res["randomised"][m]["hot_iou"] == pytest.approx(1.0)
        assert res["randomised"][m]["rank_correlation"] == pytest.approx(1.0)
        assert res["randomised"][m]["rank_correlation_range"] == pytest.approx([1.0, 1.0])

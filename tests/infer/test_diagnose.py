"""The app pipeline: calibrated probabilities, view ranges, heatmap, lung focus verdict."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from blobs import S, blob_image, blob_model

from cxrlib.core.methods import METHODS
from cxrlib.infer.classifier import Classifier, softmax
from cxrlib.infer.explain import Explainer
from cxrlib.infer.focus import FOCUS_GOOD, FOCUS_LOW, lung_focus
from cxrlib.infer.pipeline import Diagnosis, diagnose
from cxrlib.infer.views import DEFAULT_VIEWS, View
from cxrlib.train.architectures import build_classifier


@pytest.fixture(scope="module")
def clf() -> Classifier:
    """Class 1 = a bright blob somewhere, class 0 = none; temperature 2 to see calibration."""
    return Classifier(
        blob_model(), {"preprocess": {"size": S, "contrast": "none"}, "temperature": 2.0}
    )


@pytest.fixture(scope="module")
def explainer(clf: Classifier) -> Explainer:
    return Explainer(clf, smooth_samples=4)


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A non-square image with the blob in its upper left (y 16 * 1.5, x 16)."""
    return cv2.resize(blob_image(np.random.default_rng(1), (16, 16)), (64, 96))


class BoxSegmenter:
    """Stands in for cxrlib.infer.lungs.LungSegmenter: a fixed rectangle as 'lungs'."""

    def __init__(self, top: int, bottom: int, left: int, right: int) -> None:
        self.box = (top, bottom, left, right)
        self.calls = 0

    def _mask(self, gray: np.ndarray) -> np.ndarray:
        top, bottom, left, right = self.box
        mask = np.zeros(gray.shape[:2], bool)
        mask[top:bottom, left:right] = True
        return mask

    def segment(self, gray: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self._mask(gray)

    def frames(self, grays, margin: float) -> list:
        self.calls += len(grays)
        return [(self.box if g.shape[0] >= self.box[1] else None, self._mask(g)) for g in grays]


def test_probabilities_are_calibrated_and_consistent(
    clf: Classifier, explainer: Explainer, gray: np.ndarray
) -> None:
    d = diagnose(clf, gray, explainer)
    assert isinstance(d, Diagnosis)
    assert d.probabilities.shape == (3,)
    assert d.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(d.probabilities, clf.predict([gray])[0], atol=1e-5)
    logits = clf.logits(clf.prepare(gray)[None])
    np.testing.assert_allclose(d.probabilities, softmax(logits / 2.0)[0], atol=1e-5)
    assert d.predicted_index == int(np.argmax(d.probabilities)) == 1
    assert d.predicted_name == clf.class_names[1] and d.confidence == d.probabilities[1]
    assert d.target_index == 1 and d.target_name == d.predicted_name  # default: predicted


def test_uncertainty_ranges_from_views(
    clf: Classifier, explainer: Explainer, gray: np.ndarray
) -> None:
    d = diagnose(clf, gray, explainer)
    v = d.view_probabilities
    assert v.shape == (1 + len(DEFAULT_VIEWS), 3)
    assert d.view_names[0] == "original" and len(d.view_names) == len(v)
    np.testing.assert_allclose(v.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[0], d.probabilities)
    np.testing.assert_allclose(d.uncertainty[:, 0], v.min(axis=0))
    np.testing.assert_allclose(d.uncertainty[:, 1], v.max(axis=0))
    assert (d.uncertainty[:, 0] <= d.probabilities + 1e-7).all()
    assert (d.probabilities <= d.uncertainty[:, 1] + 1e-7).all()
    assert np.ptp(v, axis=0).max() > 1e-4  # the views really differ
    # Each view's probabilities are the model's on that view of the image.
    geo = cv2.resize(gray, (S, S), interpolation=cv2.INTER_AREA)
    for i, view in enumerate(DEFAULT_VIEWS, start=1):
        np.testing.assert_allclose(v[i], clf.probabilities(view.apply(geo)[None])[0], atol=1e-5)


def test_class_choice(clf: Classifier, explainer: Explainer, gray: np.ndarray) -> None:
    base = diagnose(clf, gray, explainer)
    maps = {}
    for k in range(3):
        d = diagnose(clf, gray, explainer, class_index=k)
        assert d.target_index == k and d.target_name == clf.class_names[k]
        np.testing.assert_allclose(d.probabilities, base.probabilities)
        assert d.predicted_index == base.predicted_index
        # The batched pass gives the same map as explaining the image alone.
        np.testing.assert_allclose(d.heatmap, explainer.explain(gray, "gradcam", k), atol=1e-4)
        maps[k] = d.heatmap
    assert not np.allclose(maps[0], maps[1])
    np.testing.assert_array_equal(base.heatmap, maps[1])


def test_deterministic_and_picklable(
    clf: Classifier, explainer: Explainer, gray: np.ndarray
) -> None:
    seg = BoxSegmenter(0, 48, 0, 32)
    a = diagnose(clf, gray, explainer, seg)
    b = diagnose(clf, gray.copy(), explainer, seg)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    assert a.lung_focus == b.lung_focus and a.focus_verdict == b.focus_verdict
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.heatmap, a.heatmap)
    np.testing.assert_array_equal(c.lung_mask, a.lung_mask)
    np.testing.assert_array_equal(c.probabilities, a.probabilities)
    assert (c.predicted_name, c.lung_focus, c.focus_verdict) == (
        a.predicted_name,
        a.lung_focus,
        a.focus_verdict,
    )
    assert a.heatmap.shape == gray.shape and a.heatmap.dtype == np.float32
    assert 0 <= a.heatmap.min() and a.heatmap.max() <= 1


def test_lung_focus_with_a_segmenter(
    clf: Classifier, explainer: Explainer, gray: np.ndarray
) -> None:
    # 'Lungs' over the blob (upper left): the heatmap lies inside them.
    on = BoxSegmenter(0, 48, 0, 32)
    d = diagnose(clf, gray, explainer, on)
    assert on.calls == 1
    assert d.lung_mask is not None and d.lung_mask.dtype == bool
    assert d.lung_mask.shape == gray.shape
    assert d.lung_focus == pytest.approx(lung_focus(d.heatmap, d.lung_mask))
    assert d.lung_area == pytest.approx(0.25)
    assert d.lung_focus >= FOCUS_GOOD and d.focus_level == "good"
    assert d.focus_verdict.startswith(f"{round(100 * d.lung_focus)}% of the heatmap lies inside")
    # 'Lungs' in the opposite corner: most of the map is outside them.
    off = diagnose(clf, gray, explainer, BoxSegmenter(48, 96, 32, 64))
    assert off.lung_focus < FOCUS_LOW and off.focus_level == "warning"
    # No segmenter: nothing claimed.
    none = diagnose(clf, gray, explainer)
    assert none.lung_mask is None and none.lung_focus is None and none.lung_area is None
    assert none.focus_level == "unknown"


@pytest.mark.parametrize("method", [m for m in METHODS if m != "gradcam"])
def test_other_methods(
    clf: Classifier, explainer: Explainer, gray: np.ndarray, method: str
) -> None:
    ref = diagnose(clf, gray, explainer)
    d = diagnose(clf, gray, explainer, method=method, class_index=1)
    assert d.method == method
    np.testing.assert_allclose(d.probabilities, ref.probabilities, atol=1e-5)
    np.testing.assert_allclose(d.view_probabilities, ref.view_probabilities, atol=1e-5)
    np.testing.assert_allclose(d.heatmap, explainer.explain(gray, method, 1), atol=1e-4)


def test_views() -> None:
    img = np.zeros((50, 50), np.uint8)
    img[25, 25] = 200
    np.testing.assert_array_equal(View("same").apply(img), img)
    moved = View("right", shift=(0.1, 0.0)).apply(img)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (25, 30)
    ramp = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (50, 1))
    assert View("dark", gamma=1.5).apply(ramp).astype(int).sum() < ramp.astype(int).sum()
    assert View("zoom", scale=1.2).apply(ramp).shape == ramp.shape


def test_bad_arguments(clf: Classifier, explainer: Explainer, gray: np.ndarray) -> None:
    other = Classifier(
        build_classifier(S, "small", width=4, head_filters=8, seed=1),
        {"preprocess": {"size": S, "contrast": "none"}},
    )
    with pytest.raises(ValueError, match="different classifier"):
        diagnose(other, gray, explainer)
    with pytest.raises(ValueError, match="out of range"):
        diagnose(clf, gray, explainer, class_index=3)
    with pytest.raises(ValueError, match="unknown method"):
        diagnose(clf, gray, explainer, method="rise")


def test_lung_crop_model_sees_the_box_and_maps_back(clf: Classifier) -> None:
    """A lung-crop model sees only the segmenter's box: the blob image pasted into a
    larger canvas with bright 'text' around it is the same input as the blob image
    alone, and its heatmap comes back inside the box, on the blob."""
    rng = np.random.default_rng(3)
    blob = blob_image(rng, (40, 20))
    canvas = np.full((160, 140), 250, np.uint8)  # bright border "text" the model must not see
    canvas[50:114, 30:94] = blob
    seg = BoxSegmenter(50, 114, 30, 94)
    meta = {
        "preprocess": {"size": S, "contrast": "none", "lung_crop": True, "lung_margin": 0.0},
        "temperature": 2.0,
    }
    cropped = Classifier(clf.model, meta, segmenter=seg)
    np.testing.assert_array_equal(cropped.prepare(canvas), clf.prepare(blob))
    np.testing.assert_allclose(cropped.predict([canvas]), clf.predict([blob]), atol=1e-6)
    asked = seg.calls
    d = diagnose(cropped, canvas, Explainer(cropped))
    assert seg.calls == asked + 1 and d.model_crop == seg.box  # the lungs: asked once
    np.testing.assert_allclose(d.probabilities, clf.predict([blob])[0], atol=1e-5)
    assert d.heatmap.shape == canvas.shape
    outside = np.ones(canvas.shape, bool)
    outside[50:114, 30:94] = False
    assert d.heatmap[outside].max() == 0
    # Inside the box: exactly the map of the blob image on its own.
    alone = Explainer(clf).explain(blob)
    np.testing.assert_allclose(d.heatmap[50:114, 30:94], alone, atol=1e-4)
    y, x = np.unravel_index(np.argmax(d.heatmap), d.heatmap.shape)
    assert abs(y - 90) <= 14 and abs(x - 50) <= 14  # the blob: (40, 20) inside the box
    # The lung-focus sentence also says how much of the model's view is lung
    # (here the 'lungs' are the whole box, so a flat map would already score 100%).
    with_lungs = diagnose(cropped, canvas, Explainer(cropped), seg)
    assert "and 100% of the region the model sees" in with_lungs.focus_verdict
    # An image where no lungs are found keeps its whole frame.
    small = blob_image(rng, None)
    assert cropped.crop_boxes([small]) == [None]
    np.testing.assert_array_equal(cropped.prepare(small), clf.prepare(small))


def test_a_model_with_test_time_views_predicts_their_average(
    clf: Classifier, gray: np.ndarray
) -> None:
    names = [v.name for v in DEFAULT_VIEWS]
    meta = {**clf.meta, "test_time_views": {"views": names, "temperature": 1.5}}
    averaging = Classifier(clf.model, meta)
    d = diagnose(averaging, gray, Explainer(averaging, smooth_samples=4))
    single = diagnose(clf, gray, Explainer(clf, smooth_samples=4))
    assert d.averaged and not single.averaged
    assert len(d.view_names) == 1 + len(names)
    # The app, the batch CLI and the evaluation give the same probabilities.
    np.testing.assert_allclose(d.probabilities, averaging.predict([gray])[0], atol=1e-5)
    # Every view scaled by the averaging temperature; the average is of their logits.
    logits = np.log(single.view_probabilities) * 2.0  # softmax(z / 2), up to a constant
    np.testing.assert_allclose(d.view_probabilities, softmax(logits / 1.5), atol=1e-4)
    np.testing.assert_allclose(d.probabilities, softmax(logits.mean(0) / 1.5), atol=1e-4)
    assert not np.allclose(d.probabilities, single.probabilities, atol=1e-3)
    assert (d.uncertainty[:, 0] <= d.probabilities + 1e-6).all()
    assert d.target_index == d.predicted_index  # the heatmap explains what is shown


@pytest.mark.parametrize("method", METHODS)
def test_heatmap_explains_the_average_when_the_original_disagrees(
    clf: Classifier, gray: np.ndarray, method: str
) -> None:
    class Contrarian(Classifier):
        """An average that always favours the original's least likely class."""

        def combine_views(self, view_logits):
            probs, per_view = super().combine_views(view_logits)
            return softmax(-10.0 * probs), per_view

    odd = Contrarian(clf.model, clf.meta)
    explainer = Explainer(odd, smooth_samples=4)
    d = diagnose(odd, gray, explainer, method=method)
    original = int(np.argmax(d.view_probabilities[0]))
    assert d.predicted_index != original
    assert d.target_index == d.predicted_index
    np.testing.assert_allclose(
        d.heatmap, explainer.explain(gray, method, d.predicted_index), atol=1e-4
    )

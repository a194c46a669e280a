"""Heatmaps: shapes and ranges, localisation on a purpose-trained model, fast path == tf-keras-vis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from blobs import S, blob_image, blob_model

from cxrlib.core.methods import METHOD_LABELS, METHODS
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.explain import Explainer, get_explainer, method_class
from cxrlib.infer.heatmaps.base import CamMethod, normalize_map

#: The methods computed by the compiled CAM pass (tf-keras-vis is their reference).
FAST_METHODS = tuple(m for m in METHODS if issubclass(method_class(m), CamMethod))

META = {"preprocess": {"size": S, "contrast": "none"}, "temperature": 1.0}


def train_blob_classifier() -> Classifier:
    return Classifier(blob_model(), META)


@pytest.fixture(scope="module")
def clf() -> Classifier:
    c = train_blob_classifier()
    rng = np.random.default_rng(1)
    test = [blob_image(rng, (20, 40)) for _ in range(5)] + [blob_image(rng, None) for _ in range(5)]
    pred = c.predict(test).argmax(axis=1)
    assert (pred == [1] * 5 + [0] * 5).all(), "the blob model did not learn its task"
    return c


@pytest.fixture(scope="module")
def explainer(clf: Classifier) -> Explainer:
    return Explainer(clf, smooth_samples=8)


def stretched(img: np.ndarray, h: int = 96, w: int = 64) -> np.ndarray:
    """The same picture at a non-square size (prepare() squashes it back to 64x64)."""
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def test_method_names(explainer: Explainer) -> None:
    assert METHODS[:5] == ("gradcam", "gradcampp", "layercam", "scorecam", "smoothgrad")
    assert set(METHOD_LABELS) == set(METHODS) == set(explainer.methods)
    assert FAST_METHODS == explainer.fast_methods == ("gradcam", "gradcampp", "layercam")


@pytest.mark.parametrize("method", METHODS)
def test_map_shape_finite_range(explainer: Explainer, method: str) -> None:
    gray = stretched(blob_image(np.random.default_rng(2), (40, 20)), h=90, w=70)
    hm = explainer.explain(gray, method, class_index=1)
    assert hm.shape == gray.shape
    assert hm.dtype == np.float32
    assert np.isfinite(hm).all()
    assert hm.min() >= 0.0 and hm.max() <= 1.0
    assert hm.max() > 0.99  # normalised, not an empty map


@pytest.mark.parametrize("method", FAST_METHODS)
def test_peak_lies_on_the_blob(explainer: Explainer, method: str) -> None:
    rng = np.random.default_rng(3)
    for cy, cx in [(14, 14), (14, 50), (50, 14), (50, 50), (32, 14)]:
        gray = stretched(blob_image(rng, (cy, cx)))  # 96 x 64: y scaled by 1.5
        hm = explainer.explain(gray, method, class_index=1)
        assert hm.shape == (96, 64)
        py, px = np.unravel_index(np.argmax(hm), hm.shape)
        # Back in the 64 x 64 picture the model saw (8 x 8 CAM cells of 8 px).
        peak = np.array([py / 1.5, px])
        d_blob = np.hypot(*(peak - (cy, cx)))
        d_mirror = np.hypot(*(peak - (S - 1 - cy, S - 1 - cx)))
        assert d_blob <= 16, (method, (cy, cx), (py, px))
        assert d_blob < d_mirror - 10
        # Most of the map's mass is near the blob, not spread over the image.
        yy, xx = np.mgrid[0:96, 0:64]
        near = np.hypot(yy / 1.5 - cy, xx - cx) <= 20
        assert hm[near].sum() / hm.sum() > 0.6, (method, (cy, cx))


@pytest.mark.parametrize("method", FAST_METHODS)
def test_fast_path_equals_tf_keras_vis(clf: Classifier, explainer: Explainer, method: str) -> None:
    """Compared at feature resolution (tf-keras-vis expand_cam=False), both min-max normalised."""
    rng = np.random.default_rng(4)
    inputs = [blob_image(rng, (20, 44)), blob_image(rng, (48, 12)), blob_image(rng, None)]
    nontrivial = 0
    for x in inputs:
        for c in (0, 1, 2):
            raw, target = explainer.raw(x, method, c)
            assert target == c
            # Un-normalised: the same numbers.
            ref_raw = explainer.reference(x, method, c, expand_cam=False, normalize=False)
            assert raw.shape == ref_raw.shape == (8, 8)
            scale = max(float(np.abs(ref_raw).max()), 1e-12)
            np.testing.assert_allclose(raw, ref_raw, rtol=1e-4, atol=1e-5 * scale)
            # Normalised (tf-keras-vis adds 1e-7 to the range, which only matters for
            # near-empty maps): the same map.
            ref = explainer.reference(x, method, c, expand_cam=False)
            if np.ptp(ref_raw) > 1e-2:
                np.testing.assert_allclose(normalize_map(raw), ref, atol=1e-4)
                nontrivial += 1
    assert nontrivial >= 5
    # Default target: the predicted class, as tf-keras-vis is told explicitly.
    x = inputs[0]
    raw, target = explainer.raw(x, method)
    assert target == int(np.argmax(clf.logits(x[None])[0])) == 1
    np.testing.assert_allclose(
        normalize_map(raw), explainer.reference(x, method, target), atol=1e-4
    )


@pytest.mark.parametrize("method", FAST_METHODS)
def test_full_resolution_agrees_with_tf_keras_vis(explainer: Explainer, method: str) -> None:
    """At input size the upsamplers differ (scipy zoom vs OpenCV), so only close, not equal."""
    x = blob_image(np.random.default_rng(5), (22, 40))
    raw = explainer.raw(x, method, 1)[0].astype(np.float32)
    ours = normalize_map(cv2.resize(raw, (S, S), interpolation=cv2.INTER_LINEAR))
    ref = explainer.reference(x, method, 1, expand_cam=True)
    assert ours.shape == ref.shape == (S, S)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.95


def test_batched_smoothgrad_equals_tf_keras_vis(explainer: Explainer) -> None:
    """The same noise through one batched call == tf-keras-vis's per-sample loop."""
    x = blob_image(np.random.default_rng(11), (40, 22))
    state = np.random.get_state()
    ours, target = explainer.raw(x, "smoothgrad", 1)
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])  # global RNG untouched
    assert target == 1 and ours.shape == (S, S)
    ref = explainer.reference(x, "smoothgrad", 1, normalize=False)  # seeds numpy's global RNG
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * float(ref.max()))
    np.testing.assert_allclose(normalize_map(ours), normalize_map(ref), atol=1e-4)
    other_seed = Explainer(explainer.classifier, smooth_samples=8, seed=1)
    assert not np.allclose(other_seed.raw(x, "smoothgrad", 1)[0], ours)


def test_batch_items_are_independent(explainer: Explainer) -> None:
    rng = np.random.default_rng(6)
    xs = np.stack([blob_image(rng, (16, 16)), blob_image(rng, None), blob_image(rng, (50, 40))])
    batch = explainer.fast_cams(xs, [1, 0, 1])
    assert batch.logits.shape == (3, 3)
    assert list(batch.targets) == [1, 0, 1]
    for i, c in enumerate([1, 0, 1]):
        one = explainer.fast_cams(xs[i], c)
        for m in FAST_METHODS:
            np.testing.assert_allclose(batch.cam(m)[i], one.cam(m)[0], rtol=1e-4, atol=1e-6)


def test_default_class_is_predicted_and_classes_differ(explainer: Explainer) -> None:
    gray = stretched(blob_image(np.random.default_rng(7), (30, 16)))
    assert explainer.raw(explainer.classifier.prepare(gray), "gradcam")[1] == 1
    hm = explainer.explain(gray, "gradcam")
    np.testing.assert_array_equal(hm, explainer.explain(gray, "gradcam", 1))
    assert not np.allclose(hm, explainer.explain(gray, "gradcam", 0))


def test_deterministic_smoothgrad_and_scorecam(explainer: Explainer) -> None:
    gray = blob_image(np.random.default_rng(8), (30, 30))
    for m in ("smoothgrad", "scorecam"):
        np.testing.assert_array_equal(explainer.explain(gray, m, 1), explainer.explain(gray, m, 1))


def test_scorecam_prints_no_progress_bar(explainer: Explainer, capfd) -> None:
    # tf-keras-vis scores Score-CAM's masked inputs with model.predict: no progress bar
    # may reach the app's server log or the CLI's output.
    capfd.readouterr()
    explainer.explain(blob_image(np.random.default_rng(9), (20, 40)), "scorecam", 1)
    out, err = capfd.readouterr()
    assert "step" not in out and "step" not in err


def test_get_explainer_builds_one_per_classifier(clf: Classifier, explainer: Explainer) -> None:
    gray = stretched(blob_image(np.random.default_rng(9), (44, 44)), h=80, w=64)
    assert get_explainer(clf) is get_explainer(clf)
    np.testing.assert_allclose(get_explainer(clf).explain(gray), explainer.explain(gray))


def test_bad_arguments(explainer: Explainer) -> None:
    gray = blob_image(np.random.default_rng(10), None)
    with pytest.raises(ValueError, match="unknown method"):
        explainer.explain(gray, "rise")
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(gray, "gradcam", class_index=3)
    with pytest.raises(ValueError, match="model input"):
        explainer.raw(np.zeros((32, 32), np.float32), "gradcam")

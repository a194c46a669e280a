"""Lung focus and the confidence-drop faithfulness check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from blobs import S, blob_image, blob_model

from cxrlib.infer.classifier import Classifier
from cxrlib.infer.focus import (
    ConfidenceDrop,
    confidence_drops,
    heatmap_to_input,
    hot_region_ious,
    lung_focus,
    mean_over_pairs,
)
from cxrlib.infer.preprocess import PreprocessConfig, heatmap_to_image


# ------------------------------------------------------------------ lung_focus
def test_lung_focus_inside_outside_half() -> None:
    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True
    inside = np.zeros((40, 60), np.float32)
    inside[15:25, 20:40] = np.random.default_rng(0).random((10, 20)) + 0.1
    assert lung_focus(inside, mask) == pytest.approx(1.0)
    outside = np.zeros((40, 60), np.float32)
    outside[0:8, :] = 1.0
    assert lung_focus(outside, mask) == pytest.approx(0.0)
    half = np.zeros((40, 60), np.float32)
    half[12, 20:30] = 1.0  # inside
    half[2, 20:30] = 1.0  # outside
    assert lung_focus(half, mask) == pytest.approx(0.5)
    weighted = np.zeros((40, 60), np.float32)
    weighted[12, 20] = 3.0  # inside, three times the mass
    weighted[2, 20] = 1.0
    assert lung_focus(weighted, mask) == pytest.approx(0.75)


def confidence_drop(clf, gray, heatmap, class_index, fraction=0.2, rng=None):
    """One image's :func:`confidence_drops`."""
    return confidence_drops(clf, [gray], [heatmap], [class_index], fraction, rng)[0]


def test_lung_focus_edge_cases() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    assert lung_focus(np.zeros((10, 10)), mask) == 0.0  # no mass: 0, not NaN
    hm = np.zeros((10, 10))
    hm[1, 1] = 1.0
    hm[8, 8] = -5.0  # negative values carry no mass
    hm[7, 7] = np.nan
    assert lung_focus(hm, mask) == 1.0
    assert lung_focus(hm, mask.astype(np.uint8)) == 1.0
    assert lung_focus(hm, np.zeros((10, 10), bool)) == 0.0
    with pytest.raises(ValueError):
        lung_focus(np.ones((10, 10)), np.ones((10, 11), bool))


def test_heatmap_to_input_inverts_heatmap_to_image() -> None:
    cfg = PreprocessConfig(size=32, geometry="pad", contrast="none")
    model_map = np.zeros((32, 32), np.float32)
    model_map[8:24, 4:12] = 1.0  # inside the image box of a wide image
    image_map = heatmap_to_image(model_map, (50, 100), cfg)
    back, valid = heatmap_to_input(image_map, (50, 100), cfg)
    assert valid[8:24].all() and not valid[:8].any() and not valid[24:].any()
    assert np.abs(back - model_map)[valid].mean() < 0.05
    assert back[~valid].max() == 0


# ------------------------------------------------------------- confidence drop
@pytest.fixture(scope="module")
def clf() -> Classifier:
    """Class 1 = a bright blob somewhere, class 0 = none."""
    return Classifier(
        blob_model(), {"preprocess": {"size": S, "contrast": "none"}, "temperature": 1.0}
    )


def gaussian_map(shape: tuple[int, int], centre: tuple[float, float], r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * r * r)).astype(np.float32)


def test_confidence_drop_rewards_the_right_map(clf: Classifier) -> None:
    rng = np.random.default_rng(1)
    drops_right, drops_wrong = [], []
    for cy, cx in [(16, 16), (16, 48), (48, 20), (44, 46)]:
        small = blob_image(rng, (cy, cx))
        gray = cv2.resize(small, (64, 96))  # non-square: y x 1.5
        right = gaussian_map(gray.shape, (cy * 1.5, cx), 10)
        wrong = gaussian_map(gray.shape, ((S - cy) * 1.5, S - cx), 10)
        d_right = confidence_drop(clf, gray, right, 1, rng=np.random.default_rng(0))
        d_wrong = confidence_drop(clf, gray, wrong, 1, rng=np.random.default_rng(0))
        assert isinstance(d_right, ConfidenceDrop)
        assert d_right.p_original == pytest.approx(clf.predict([gray])[0, 1], abs=1e-6)
        assert d_right.p_original > 0.9
        assert d_right.p_random == pytest.approx(d_wrong.p_random)  # same random areas
        drops_right.append(d_right)
        drops_wrong.append(d_wrong)
    # Hiding the blob removes the evidence; hiding the opposite corner does not.
    assert np.mean([d.drop_hot for d in drops_right]) > 0.5
    assert np.mean([d.drop_hot for d in drops_wrong]) < 0.2
    assert all(r.score > w.score for r, w in zip(drops_right, drops_wrong))
    assert np.mean([d.score for d in drops_right]) > 0.3


def test_confidence_drops_batched_equals_single(clf: Classifier) -> None:
    rng = np.random.default_rng(2)
    grays = [blob_image(rng, (20, 20)), blob_image(rng, None), blob_image(rng, (40, 50))]
    maps = [
        gaussian_map((S, S), (20, 20), 8),
        gaussian_map((S, S), (30, 30), 8),
        rng.random((S, S)),
    ]
    classes = [1, 0, 1]
    many = confidence_drops(clf, grays, maps, classes, rng=np.random.default_rng(5), batch_size=4)
    gen = np.random.default_rng(5)  # the same random areas, drawn in the same order
    for g, m, c, d in zip(grays, maps, classes, many):
        one = confidence_drop(clf, g, m, c, rng=gen)
        assert d.class_index == c
        for f in ("p_original", "p_hot", "p_random"):
            assert getattr(d, f) == pytest.approx(getattr(one, f), abs=1e-5)
    assert confidence_drops(clf, [], [], []) == []


def test_confidence_drop_arguments(clf: Classifier) -> None:
    gray = blob_image(np.random.default_rng(3), None)
    with pytest.raises(ValueError):
        confidence_drop(clf, gray, np.ones((S, S)), 0, fraction=0.0)
    with pytest.raises(ValueError):
        confidence_drop(clf, gray, np.ones((10, 10)), 0)
    d = confidence_drop(clf, gray, np.zeros((S, S)), 0, fraction=0.3)
    for p in (d.p_original, d.p_hot, d.p_random):
        assert 0.0 <= p <= 1.0
    assert d.drop_hot == pytest.approx(d.p_original - d.p_hot)
    assert d.score == pytest.approx(d.drop_hot - d.drop_random)


def _disc(cy: int, cx: int, size: int = 64, r: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * r * r)).astype(np.float32)


def hot_region_agreement(maps):
    """How far the maps agree, as the Compare-methods view computes it."""
    return mean_over_pairs(hot_region_ious(maps))


def test_hot_region_agreement():
    a, far, near = _disc(16, 16), _disc(48, 48), _disc(16, 20)
    assert hot_region_agreement([a, a.copy()]) == pytest.approx(1.0)
    assert hot_region_agreement([a, far]) == pytest.approx(0.0)
    partial = hot_region_agreement([a, near])
    assert 0.3 < partial < 0.9
    # The mean over pairs: (a, a) agree fully, each with `far` not at all.
    assert hot_region_agreement([a, a, far]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least two"):
        hot_region_agreement([a])
    with pytest.raises(ValueError, match="differ in shape"):
        hot_region_agreement([a, _disc(10, 10, size=32)])


def test_hot_region_ious_is_a_symmetric_pair_table():
    a, far, near = _disc(16, 16), _disc(48, 48), _disc(16, 20)
    ious = hot_region_ious([a, far, near])
    assert ious.shape == (3, 3)
    np.testing.assert_allclose(ious, ious.T)
    np.testing.assert_allclose(np.diag(ious), 1.0)
    assert ious[0, 1] == 0.0 and 0.3 < ious[0, 2] < 0.9
    assert hot_region_agreement([a, far, near]) == pytest.approx(ious[np.triu_indices(3, 1)].mean())

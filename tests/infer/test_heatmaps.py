"""Heatmap methods as plug-ins: the registry, the base class, every method alike, occlusion.

Parametrised over every registered method (pytorch-grad-cam style), so a method added
to :data:`cxrlib.core.methods.REGISTRY` is tested here without a new line.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from blobs import S, blob_image, blob_model

from cxrlib.core import methods as registry
from cxrlib.core.methods import METHOD_LABELS, METHODS, MethodSpec
from cxrlib.infer.classifier import Classifier, softmax
from cxrlib.infer.explain import Explainer, method_class
from cxrlib.infer.heatmaps.base import (
    CamMethod,
    ExplainedModel,
    HeatmapMethod,
    normalize_map,
)
from cxrlib.infer.heatmaps.gradcam import GradCAM
from cxrlib.infer.heatmaps.occlusion import OcclusionSensitivity, patch_starts

META = {"preprocess": {"size": S, "contrast": "none"}, "temperature": 1.0}


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(blob_model(), META)


@pytest.fixture(scope="module")
def explainer(clf: Classifier) -> Explainer:
    return Explainer(clf, smooth_samples=8)


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A non-square image with the blob at (y 40 * 1.4, x 20 * 1.1)."""
    return cv2.resize(blob_image(np.random.default_rng(2), (40, 20)), (70, 90))


# ------------------------------------------------------------------- registry
def test_every_registered_method_resolves_to_a_heatmap_method() -> None:
    assert list(METHOD_LABELS) == list(METHODS) == list(registry.REGISTRY)
    assert len(set(METHOD_LABELS.values())) == len(METHODS)  # labels tell methods apart
    assert METHOD_LABELS["occlusion"] == "Occlusion sensitivity"
    for key in METHODS:
        cls = method_class(key)
        assert issubclass(cls, HeatmapMethod) and not getattr(cls, "__abstractmethods__", None)
    with pytest.raises(ValueError, match="unknown method 'rise'"):
        method_class("rise")


def test_the_registry_loads_no_tensorflow() -> None:
    code = (
        "import sys, cxrlib.core.methods, cxrlib.infer.heatmaps; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_cam_is_one_weighting_over_the_shared_pass() -> None:
    for key in ("gradcampp", "layercam"):
        cls = method_class(key)
        assert issubclass(cls, GradCAM) and "weights" in vars(cls)
        assert not {"raw", "compute", "cam", "__init__"} & set(vars(cls))
    assert issubclass(GradCAM, CamMethod)
    assert not issubclass(method_class("occlusion"), CamMethod)


def test_a_method_on_its_own_equals_the_explainers(clf: Classifier, explainer: Explainer) -> None:
    x = blob_image(np.random.default_rng(3), (20, 44))
    own = method_class("layercam")(ExplainedModel(clf))  # a compiled pass of its own
    raw, target = own.raw(x, 1)
    np.testing.assert_allclose(raw, explainer.raw(x, "layercam", 1)[0], rtol=1e-5, atol=1e-7)
    assert target == 1
    with pytest.raises(ValueError, match="not a fast-path method"):
        explainer.fast_cams(x).cam("occlusion")
    with pytest.raises(ValueError, match="no tf-keras-vis reference"):
        explainer.reference(x, "occlusion", 1)


class CentreMethod(HeatmapMethod):
    """A plug-in written for this test: a disc in the middle of the input."""

    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        yy, xx = np.mgrid[0 : xb.shape[1], 0 : xb.shape[2]]
        return (np.hypot(yy - xb.shape[1] / 2, xx - xb.shape[2] / 2) < 8).astype(np.float32)


def test_one_registry_line_plugs_a_method_in(clf: Classifier, monkeypatch) -> None:
    spec = MethodSpec("Centre disc", f"{__name__}:CentreMethod")
    monkeypatch.setitem(registry.REGISTRY, "centre", spec)
    monkeypatch.setattr(registry, "METHODS", (*registry.METHODS, "centre"))
    monkeypatch.setattr("cxrlib.infer.explain.METHODS", registry.METHODS)
    explainer = Explainer(clf)
    assert "centre" in explainer.methods and "centre" not in explainer.fast_methods
    hm = explainer.explain(np.zeros((64, 64), np.uint8), "centre")
    assert hm[32, 32] == 1 and hm[0, 0] == 0


def test_method_options_reach_their_class(clf: Classifier) -> None:
    occ = OcclusionSensitivity(ExplainedModel(clf), patch=0.5, stride=0.25)
    assert len(occ.boxes()) == 9
    assert Explainer(clf, seed=3).method("smoothgrad").seed == 3  # type: ignore[attr-defined]


# ------------------------------------------------------- every method, alike
@pytest.mark.parametrize("method", METHODS)
def test_map_is_image_sized_finite_and_normalised(
    explainer: Explainer, gray: np.ndarray, method: str
) -> None:
    hm = explainer.explain(gray, method, 1)
    assert explainer.raw(explainer.classifier.prepare(gray), method, 1)[1] == 1
    assert hm.shape == gray.shape and hm.dtype == np.float32
    assert np.isfinite(hm).all() and hm.min() >= 0.0 and hm.max() <= 1.0
    assert hm.max() == pytest.approx(1.0)  # normalised, not an empty map


@pytest.mark.parametrize("method", METHODS)
def test_map_is_deterministic(explainer: Explainer, gray: np.ndarray, method: str) -> None:
    np.testing.assert_array_equal(
        explainer.explain(gray, method, 1), explainer.explain(gray.copy(), method, 1)
    )


@pytest.mark.parametrize("method", METHODS)
def test_map_depends_on_the_class(explainer: Explainer, gray: np.ndarray, method: str) -> None:
    blob, background = explainer.explain(gray, method, 1), explainer.explain(gray, method, 0)
    assert not np.allclose(blob, background, atol=1e-3)
    # The default explains the predicted class (the blob).
    np.testing.assert_array_equal(explainer.explain(gray, method), blob)


def test_normalize_map_edge_cases() -> None:
    assert not normalize_map(np.zeros((4, 5))).any()
    assert not normalize_map(np.full((4, 5), 3.0)).any()
    m = normalize_map(np.array([[np.nan, 1.0], [np.inf, 3.0]]))
    assert np.isfinite(m).all()
    np.testing.assert_allclose(m, [[0, 1 / 3], [0, 1]], atol=1e-6)
    np.testing.assert_allclose(normalize_map(np.array([[2.0, 4.0, 6.0]])), [[0, 0.5, 1]])


# ------------------------------------------------------------------ occlusion
def test_patches_cover_the_whole_input() -> None:
    assert list(patch_starts(160, 40, 20)) == [0, 20, 40, 60, 80, 100, 120]
    assert list(patch_starts(10, 4, 4)) == [0, 4, 6]  # the last one flush with the edge
    assert list(patch_starts(8, 16, 8)) == [0]
    for size, patch, stride in [(160, 40, 20), (64, 16, 8), (37, 9, 5)]:
        covered = np.zeros(size, bool)
        for s in patch_starts(size, patch, stride):
            covered[s : s + patch] = True
        assert covered.all()


class RegionClassifier:
    """Stands in for a Classifier: p(class 1) rises with the brightness of one square
    of the input, and nothing else of the image matters."""

    temperature = 1.0

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.box = box
        self.model = SimpleNamespace(input_shape=(None, S, S, 1), output_shape=(None, 2))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return softmax(self.logits(batch) / self.temperature)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        top, bottom, left, right = self.box
        x = np.asarray(batch, np.float32).reshape(len(batch), S, S)
        z = (x[:, top:bottom, left:right].mean(axis=(1, 2)) - 80.0) / 20.0
        return np.stack([np.zeros_like(z), z], axis=1)


def test_occlusion_is_hot_where_hiding_costs_the_answer() -> None:
    box = (40, 52, 8, 20)  # the only evidence: a bright square low on the left
    x = np.full((S, S), 60, np.float32)
    x[40:52, 8:20] = 200
    occ = OcclusionSensitivity(ExplainedModel(RegionClassifier(box)))  # type: ignore[arg-type]
    raw, target = occ.raw(x)
    assert target == 1 and raw.shape == (S, S)
    assert raw.min() >= 0
    y, xx = np.unravel_index(np.argmax(raw), raw.shape)
    assert 40 <= y < 52 and 8 <= xx < 20
    # A pixel none of whose patches touch the square is cold: hiding it changes nothing.
    touching = np.zeros((S, S), bool)
    for top, left, side in occ.boxes():
        if top < 52 and top + side > 40 and left < 20 and left + side > 8:
            touching[top : top + side, left : left + side] = True
    assert raw[~touching].max() == 0 and raw[touching].max() > 0.1
    # Hiding a dark square raises the probability: no pixel gains heat from that.
    dark = np.full((S, S), 120, np.float32)
    dark[40:52, 8:20] = 30
    assert not occ.raw(dark, 1)[0].any()


class FaintRegionClassifier(RegionClassifier):
    """The same evidence at the scale of a freshly initialised network's logits."""

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return (super().logits(batch) * 1e-9).astype(np.float32)


def test_occlusion_sees_a_network_with_tiny_logits() -> None:
    # The randomisation check explains re-initialised networks, whose logits hardly
    # differ: float32 probabilities would all be 1/2 and the map empty.
    x = np.full((S, S), 60, np.float32)
    x[40:52, 8:20] = 200
    faint = FaintRegionClassifier((40, 52, 8, 20))
    assert np.ptp(faint.probabilities(np.stack([x, np.full_like(x, 60)]))) == 0
    raw, _ = OcclusionSensitivity(ExplainedModel(faint)).raw(x, 1)  # type: ignore[arg-type]
    y, xx = np.unravel_index(np.argmax(raw), raw.shape)
    assert raw.max() > 0 and 40 <= y < 52 and 8 <= xx < 20


def test_occlusion_finds_the_blob(explainer: Explainer) -> None:
    rng = np.random.default_rng(5)
    for cy, cx in [(14, 14), (14, 50), (50, 14), (50, 50), (32, 32)]:
        hm = explainer.explain(blob_image(rng, (cy, cx)), "occlusion", 1)
        # The map is made of patch-sized steps: the centre of its hottest step.
        peak = np.argwhere(hm >= 0.95).mean(axis=0)
        assert np.hypot(*(peak - (cy, cx))) <= 8, ((cy, cx), peak)
        yy, xx = np.mgrid[0:S, 0:S]
        near = np.hypot(yy - cy, xx - cx) <= 20
        assert hm[near].sum() / hm.sum() > 0.6, (cy, cx)


def test_occlusion_is_one_batch_of_copies_at_the_models_input_size() -> None:
    for size in (64, 160, 224):
        context = SimpleNamespace(size=size)
        boxes = OcclusionSensitivity(context).boxes()  # type: ignore[arg-type]
        assert len(boxes) == 49 and boxes[-1][0] + boxes[-1][2] == size

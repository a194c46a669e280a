"""cxrlib.infer.pipeline: bytes -> decoded -> input gate -> lung mask -> diagnosis, cached."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from app_helpers import ROOT, png_of
from PIL import Image

from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import ImageError
from cxrlib.core.hashing import sha256_bytes
from cxrlib.core.timings import COUNTERS
from cxrlib.infer import pipeline


@pytest.fixture(scope="module")
def models(tiny_model_path, segmenter_path) -> pipeline.Models:  # noqa: F811
    """The tiny fixture classifier with its explainer and the committed segmenter (if any)."""
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import load_segmenter

    clf = load_classifier(tiny_model_path)
    seg = load_segmenter(segmenter_path) if segmenter_path.exists() else None
    return pipeline.Models(
        classifier=clf,
        explainer=Explainer(clf),
        segmenter=seg,
        model_path=tiny_model_path,
        segmenter_path=segmenter_path,
    )


def test_decode_never_raises_and_keeps_only_display_pixels():
    bad = pipeline.decode(b"%PDF-1.4 nope", "x.png")
    assert not bad.ok and "PDF" in bad.error
    big = np.tile(np.arange(256, dtype=np.uint8), (2000, 8))  # 2000 x 2048
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    d = pipeline.decode(buf.getvalue(), "big.png")
    assert d.ok and max(d.pixels.shape) == pipeline.DISPLAY_MAX_SIDE
    assert any("analysed and shown at" in n for n in d.notices)
    assert d.meta["width"] == 2048 and d.format == "PNG"
    small = pipeline.decode(png_of("covid_cxnet_265.jpg"))
    assert small.ok and small.sha256 == sha256_bytes(png_of("covid_cxnet_265.jpg"))


def test_decode_is_cached_by_image_hash():
    data, cache = png_of("covid_cxnet_330.jpg"), LRUCache()
    before = COUNTERS["decodes"]
    first = pipeline.decode(data, "a.png", cache=cache)
    again = pipeline.decode(data, "b.png", cache=cache)
    assert again is first and COUNTERS["decodes"] == before + 1
    assert cache.get(("decoded", sha256_bytes(data))) is first


def test_same_weights_fed_another_way_are_another_model_for_the_cache(models):
    from cxrlib.infer.classifier import Classifier

    clf = models.classifier
    masked_meta = {**clf.meta, "preprocess": {**clf.meta["preprocess"], "lung_margin": 0.1}}
    masked = dataclasses.replace(models, classifier=Classifier(clf.model, masked_meta))
    warmer = dataclasses.replace(
        models, classifier=Classifier(clf.model, {**clf.meta, "temperature": 9.0})
    )
    views = {"views": ["darker", "zoom in"], "temperature": 1.1}
    averaging = dataclasses.replace(
        models, classifier=Classifier(clf.model, {**clf.meta, "test_time_views": views})
    )
    ids = {models.model_id, masked.model_id, warmer.model_id, averaging.model_id}
    assert len(ids) == 4 and all(i.startswith(clf.weights_sha256) for i in ids)
    again = dataclasses.replace(models, classifier=Classifier(clf.model, dict(clf.meta)))
    assert again.model_id == models.model_id
    assert pipeline.Models().model_id == ""


def test_diagnose_image_caches_per_image_method_and_class(models, heatmap_calls, monkeypatch):  # noqa: F811
    segmenter, passes = models.segmenter, []
    if segmenter is not None:
        segmenter.forget_images()
        real = segmenter.forward
        monkeypatch.setattr(segmenter, "forward", lambda b: passes.append(len(b)) or real(b))
    cache = LRUCache()
    decoded = pipeline.decode(png_of("normal_kermany_tr_IM-0675-0001.jpg"))
    heatmap_calls["n"] = 0
    counted = COUNTERS["heatmaps"]
    first = pipeline.diagnose_image(models, decoded, "gradcam", cache=cache)
    assert heatmap_calls["n"] == 1 and COUNTERS["heatmaps"] == counted + 1
    # The predicted class asked for explicitly is the same entry.
    same = pipeline.diagnose_image(models, decoded, "gradcam", first.predicted_index, cache)
    assert same is first and heatmap_calls["n"] == 1
    other = (first.predicted_index + 1) % len(first.class_names)
    second = pipeline.diagnose_image(models, decoded, "gradcam", other, cache)
    assert heatmap_calls["n"] == 2 and second.target_index == other
    pipeline.diagnose_image(models, decoded, "gradcampp", cache=cache)
    assert heatmap_calls["n"] == 3 and COUNTERS["heatmaps"] == counted + 3
    np.testing.assert_allclose(second.probabilities, first.probabilities, atol=1e-6)
    assert first.heatmap.shape == decoded.pixels.shape
    if segmenter is not None:  # one segmentation per image, whatever the method or class
        assert passes == [1] and first.lung_mask is not None
        np.testing.assert_array_equal(second.lung_mask, first.lung_mask)


def test_probabilities_alone_compute_no_heatmap(models, heatmap_calls):  # noqa: F811
    decoded = pipeline.decode(png_of("pneumonia_nih_00001200_000.jpg"))
    heatmap_calls["n"], counted = 0, COUNTERS["heatmaps"]
    # No explainer is needed, and none is called.
    bare = pipeline.diagnose_image(dataclasses.replace(models, explainer=None), decoded, None)
    assert heatmap_calls["n"] == 0 and COUNTERS["heatmaps"] == counted
    assert bare.heatmap is None and bare.lung_mask is None and bare.lung_focus is None
    assert bare.method == "" and bare.focus_verdict == ""
    full = pipeline.diagnose_image(models, decoded, "gradcam")
    assert heatmap_calls["n"] == 1 and full.heatmap is not None
    assert bare.predicted_index == full.predicted_index
    np.testing.assert_allclose(bare.probabilities, full.probabilities, atol=1e-6)
    np.testing.assert_allclose(bare.uncertainty, full.uncertainty, atol=1e-6)


def test_diagnose_image_without_a_model_or_pixels_raises(models):
    decoded = pipeline.decode(png_of("covid_cxnet_265.jpg"))
    with pytest.raises(RuntimeError, match="no classifier"):
        pipeline.diagnose_image(pipeline.Models(), decoded)
    with pytest.raises(ValueError, match="not decoded"):
        pipeline.diagnose_image(models, pipeline.decode(b"nope"))


def test_check_input_is_cached_per_image_and_gate():
    calls = []

    def gate(gray, colourfulness=None):
        calls.append(gray.shape)
        return pipeline.GateVerdict(False, 2.5, "a photograph")

    decoded, cache = pipeline.decode(png_of("covid_cxnet_265.jpg")), LRUCache()
    assert pipeline.check_input(pipeline.Models(), decoded, cache) is None  # no gate
    stub = pipeline.Models(gate=gate, gate_path=Path("stub.npz"))
    verdict = pipeline.check_input(stub, decoded, cache)
    assert verdict == pipeline.GateVerdict(False, 2.5, "a photograph")
    assert pipeline.check_input(stub, decoded, cache) == verdict and len(calls) == 1
    other = dataclasses.replace(stub, gate_path=Path("other.npz"))
    pipeline.check_input(other, decoded, cache)
    assert len(calls) == 2


def test_analyse_runs_the_whole_line_once(models):
    from cxrlib.infer.gate import load_gate

    gate_file = ROOT / "models" / "ood.npz"
    if gate_file.exists():
        fitted = load_gate(gate_file)
        models = dataclasses.replace(models, gate=fitted.assess, gate_path=gate_file)
    data, cache = png_of("pneumonia_nih_00007408_000.jpg"), LRUCache()
    result = pipeline.analyse(data, models, "chest.png", "layercam", cache=cache)
    assert result.decoded.ok and result.decoded.sha256 == sha256_bytes(data)
    assert (result.gate is not None) == gate_file.exists()
    if result.gate is not None:
        assert result.gate.is_cxr, result.gate.reason
    d = result.diagnosis
    assert d.method == "layercam" and np.isclose(float(d.probabilities.sum()), 1.0, atol=1e-4)
    assert d.heatmap.shape == result.decoded.pixels.shape
    counted = COUNTERS["heatmaps"], COUNTERS["decodes"]
    again = pipeline.analyse(data, models, "chest.png", "layercam", cache=cache)
    assert again.diagnosis is d and (COUNTERS["heatmaps"], COUNTERS["decodes"]) == counted
    with pytest.raises(ImageError):
        pipeline.analyse(b"%PDF-1.4 nope", models, "x.png")


def test_a_model_server_answers_for_the_models_once_per_image_method_and_class():
    from cxrlib.core.errors import ModelServerError

    asked = []

    class Server:
        url = "http://stub"

        def diagnose(self, data, filename="", method="gradcam", class_index=None):
            asked.append((method, class_index))
            return pipeline.GateVerdict(True, 0.5, ""), f"{method}:{class_index}", sha

    data = png_of("covid_cxnet_265.jpg")
    sha = sha256_bytes(data)
    remote, cache = pipeline.Models(remote=Server()), LRUCache()
    decoded = pipeline.decode(data)
    assert pipeline.check_input(remote, decoded, cache, data=data).score == 0.5
    assert pipeline.diagnose_image(remote, decoded, cache=cache, data=data) == "gradcam:None"
    assert pipeline.diagnose_image(remote, decoded, "layercam", 1, cache, data=data) == "layercam:1"
    assert asked == [("gradcam", None), ("layercam", 1)]
    assert pipeline.analyse(data, remote, cache=cache).diagnosis == "gradcam:None"
    assert len(asked) == 2
    with pytest.raises(ValueError, match="bytes"):
        pipeline.diagnose_image(remote, decoded, "gradcampp")
    sha = "another image"
    with pytest.raises(ModelServerError, match="another image"):
        pipeline.diagnose_image(remote, decoded, "gradcampp", data=data)

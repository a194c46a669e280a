"""cxrlib.app.state: the pages' logic without Streamlit."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from app_helpers import SAMPLES, png_of
from saved_metrics import metrics_with

from cxrlib.app import state as appstate


def test_safe_image_path_stays_inside_the_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"x")
    (tmp_path.parent / "secret.txt").write_text("no")
    assert appstate.safe_image_path(tmp_path, "images/x.jpg") == (tmp_path / "images/x.jpg")
    assert appstate.safe_image_path(tmp_path, "../secret.txt") is None
    assert appstate.safe_image_path(tmp_path, "/etc/passwd") is None
    assert appstate.safe_image_path(tmp_path, "images/missing.jpg") is None


def test_lru_cache_bounds_and_computes_once():
    cache = appstate.LRUCache(max_items=3, max_bytes=10_000)
    calls = []
    for i in range(5):
        cache.get_or_compute(i, lambda i=i: calls.append(i) or np.zeros(10, np.uint8))
    assert len(cache) == 3 and 0 not in cache and 4 in cache
    cache.get_or_compute(4, lambda: calls.append("again"))
    assert "again" not in calls
    cache.put("big", np.zeros(9_000, np.uint8))
    cache.put("big2", np.zeros(9_000, np.uint8))
    assert "big" not in cache and "big2" in cache and cache.nbytes <= 10_000


def test_lru_cache_concurrent_callers_compute_once():
    cache = appstate.LRUCache()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return 42

    threads = [threading.Thread(target=lambda: cache.get_or_compute("k", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and cache.get("k") == 42


def test_decode_upload_never_raises_and_keeps_only_display_pixels():
    bad = appstate.decode_upload(b"%PDF-1.4 nope", "x.png")
    assert not bad.ok and "PDF" in bad.error
    big = np.tile(np.arange(256, dtype=np.uint8), (2000, 8))  # 2000 x 2048
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    d = appstate.decode_upload(buf.getvalue(), "big.png")
    assert d.ok and max(d.pixels.shape) == appstate.DISPLAY_MAX_SIDE
    assert any("analysed and shown at" in n for n in d.notices)
    assert d.meta["width"] == 2048 and d.format == "PNG"
    small = appstate.decode_upload(png_of("covid_cxnet_265.jpg"))
    assert small.ok and small.sha256 == appstate.sha256_bytes(png_of("covid_cxnet_265.jpg"))


def test_samples_are_permissive_every_class_and_small():
    samples = appstate.list_samples()
    assert len(samples) >= 12
    assert {s.label for s in samples} == {"covid", "normal", "pneumonia"}
    for s in samples:
        assert s.source in {"kermany", "cxnet", "ieee8023", "nih"}
        assert "NC" not in s.license and "unknown" not in s.license.lower()
        assert s.file in (SAMPLES / "PROVENANCE.md").read_text()
        decoded = appstate.decode_upload(s.path.read_bytes(), s.file)
        assert decoded.ok, (s.file, decoded.error)
    total = sum(p.stat().st_size for p in SAMPLES.iterdir() if p.is_file())
    assert total <= 3_000_000
    assert any(s.file.endswith(".dcm") for s in samples)


def test_run_diagnosis_caches_per_image_method_and_class(app_env, heatmap_calls):
    res = appstate.get_resources()
    assert res.classifier is not None and res.explainer is not None
    heatmap_calls["n"] = 0  # loading traces the model once on a synthetic image
    cache = appstate.LRUCache()
    decoded = appstate.decode_upload(png_of("normal_kermany_tr_IM-0675-0001.jpg"))
    first = appstate.run_diagnosis(res, cache, decoded, "gradcam")
    assert heatmap_calls["n"] == 1
    # The predicted class asked for explicitly is the same entry.
    same = appstate.run_diagnosis(res, cache, decoded, "gradcam", first.predicted_index)
    assert same is first and heatmap_calls["n"] == 1
    other = (first.predicted_index + 1) % len(first.class_names)
    second = appstate.run_diagnosis(res, cache, decoded, "gradcam", other)
    assert heatmap_calls["n"] == 2 and second.target_index == other
    appstate.run_diagnosis(res, cache, decoded, "gradcampp")
    assert heatmap_calls["n"] == 3
    np.testing.assert_allclose(second.probabilities, first.probabilities, atol=1e-6)
    assert first.heatmap.shape == decoded.pixels.shape


def test_same_weights_fed_another_way_are_another_model_for_the_cache(app_env):
    import dataclasses

    from cxrlib.infer.classifier import Classifier

    res = appstate.get_resources()
    clf = res.classifier
    masked_meta = {**clf.meta, "preprocess": {**clf.meta["preprocess"], "lung_mask": True}}
    masked = dataclasses.replace(res, classifier=Classifier(clf.model, masked_meta))
    warmer = dataclasses.replace(
        res, classifier=Classifier(clf.model, {**clf.meta, "temperature": 9.0})
    )
    views = {"views": ["darker", "zoom in"], "temperature": 1.1}
    averaging = dataclasses.replace(
        res, classifier=Classifier(clf.model, {**clf.meta, "test_time_views": views})
    )
    ids = {res.model_id, masked.model_id, warmer.model_id, averaging.model_id}
    assert len(ids) == 4 and all(i.startswith(clf.weights_sha256) for i in ids)
    again = dataclasses.replace(res, classifier=Classifier(clf.model, dict(clf.meta)))
    assert again.model_id == res.model_id


def test_report_bytes_from_a_diagnosis(app_env):
    from cxrlib.infer.overlay import overlay

    res = appstate.get_resources()
    cache = appstate.LRUCache()
    decoded = appstate.decode_upload(png_of("covid_cxnet_265.jpg"))
    d = appstate.run_diagnosis(res, cache, decoded, "gradcam")
    over = overlay(decoded.pixels, d.heatmap, 0.5, "jet")
    pdf = appstate.report_bytes(res, decoded, d, over, "gradcam", {"opacity": "0.50"})
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    png = appstate.png_bytes(over)
    assert png.startswith(b"\x89PNG")


def test_missing_models_are_reported_not_raised(tmp_path):
    res = appstate.load_resources(tmp_path / "none.keras", tmp_path / "none_seg.keras", gate=False)
    assert res.classifier is None and res.segmenter is None
    assert "classifier" in res.errors and "segmenter" in res.errors
    assert res.device == "CPU" or res.device.startswith("GPU: ")


def test_device_description_matches_tensorflow():
    import tensorflow as tf

    text = appstate.device_description()
    if tf.config.list_physical_devices("GPU"):
        assert text.startswith("GPU: ")
    else:
        assert text == "CPU"


def test_md_escape_makes_user_text_inert():
    s = appstate.md_escape("[x](javascript:alert(1)) **b** <img> $x$ :red[y] a_b.png\x07")
    assert "\x07" not in s
    # No markdown-special character is left unescaped.
    assert re.search(r"(?<!\\)[\[\]()*<>$:_]", s) is None, s
    # Every special character is backslash-escaped, so the visible text is unchanged.
    assert s.replace("\\", "") == "[x](javascript:alert(1)) **b** <img> $x$ :red[y] a_b.png"
    assert len(appstate.md_escape("a" * 500)) == 200


def test_every_gallery_sample_passes_the_committed_gate():
    from app_helpers import ROOT

    if not (ROOT / "models" / "ood.npz").exists():
        pytest.skip("no committed OOD gate")
    from cxrlib.infer import gate as ood

    gate = ood.load_gate(ROOT / "models" / "ood.npz")
    for s in appstate.list_samples():
        d = appstate.decode_upload(s.path.read_bytes(), s.file)
        verdict = gate.assess(d.pixels, d.colourfulness)
        assert verdict.is_cxr, (s.file, verdict.reason)


def _diagnosis(probs, ranges, averaged: bool):
    from cxrlib.infer.diagnose import Diagnosis

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
    head = appstate.probability_headline(averaged)
    assert "**covid**, 82%" in head and "average over the image and 8" in head
    assert "70-90%" in head
    assert "average" not in appstate.probability_headline(single)
    assert "range 70-90% over 9" in appstate.probability_headline(single)
    assert "averaged over the image and 8" in appstate.probability_note(averaged)
    assert "of the image (temperature" in appstate.probability_note(single)


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
    assert appstate.is_unsure(_diagnosis(probs, ranges, True)) is unsure


def test_answer_record_follows_the_metrics_file(tmp_path):
    import json
    import os

    res = appstate.Resources(model_path=tmp_path / "m.keras")
    assert appstate.answer_record(res, "normal") == []  # no metrics file: no box
    path = tmp_path / "m.metrics.json"
    path.write_text(json.dumps(metrics_with({("nih", "normal"): {"normal": 3}}, {})))
    assert "(3 of 3)" in appstate.answer_record(res, "normal")[0]
    path.write_text(json.dumps(metrics_with({("nih", "normal"): {"normal": 2, "covid": 2}}, {})))
    os.utime(path, (1, 1))  # a new version, whatever the clock's resolution
    assert "(2 of 2)" in appstate.answer_record(res, "normal")[0]
    assert appstate.answer_record(res, "covid")[0].count("0 of 2") == 1

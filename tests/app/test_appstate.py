"""cxrlib.appstate: the pages' logic without Streamlit."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from app_helpers import SAMPLES, png_of

from cxrlib import appstate


def test_threshold_rule_moves_images_only_to_and_from_the_positive_class():
    probs = np.array(
        [
            [0.50, 0.30, 0.20],
            [0.30, 0.20, 0.50],
            [0.10, 0.60, 0.30],
            [0.45, 0.10, 0.45],
        ]
    )
    assert appstate.threshold_predictions(probs, 0, 0.5).tolist() == [0, 2, 1, 2]
    assert appstate.threshold_predictions(probs, 0, 0.3).tolist() == [0, 0, 1, 0]
    assert appstate.threshold_predictions(probs, 0, 0.9).tolist() == [1, 2, 1, 2]


def test_threshold_confusion_counts_and_rates():
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # covid, called covid
            [0.4, 0.5, 0.1],  # covid, called covid only at t <= 0.4
            [0.2, 0.7, 0.1],  # normal
            [0.35, 0.05, 0.6],  # pneumonia, called covid at t <= 0.35
        ]
    )
    y = np.array([0, 0, 1, 2])
    r = appstate.threshold_confusion(probs, y, 0, 0.5)
    assert r.matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert r.sensitivity == pytest.approx(0.5)
    assert r.specificity == pytest.approx(1.0)
    assert r.ppv == pytest.approx(1.0)
    assert r.npv == pytest.approx(2 / 3)
    low = appstate.threshold_confusion(probs, y, 0, 0.3)
    assert low.matrix.tolist() == [[2, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert low.sensitivity == 1.0 and low.specificity == pytest.approx(0.5)
    assert low.matrix.sum() == r.matrix.sum() == 4


def test_threshold_sweep_is_monotone_on_random_data():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=300)
    y = rng.integers(0, 3, size=300)
    sens = [appstate.threshold_confusion(probs, y, 0, t).sensitivity for t in np.linspace(0, 1, 21)]
    spec = [appstate.threshold_confusion(probs, y, 0, t).specificity for t in np.linspace(0, 1, 21)]
    assert all(a >= b for a, b in zip(sens, sens[1:]))
    assert all(a <= b for a, b in zip(spec, spec[1:]))
    assert sens[0] == 1.0 and spec[0] == 0.0


def test_threshold_with_no_positives_gives_none():
    r = appstate.threshold_confusion(np.array([[0.2, 0.8, 0.0]]), np.array([1]), 0, 0.5)
    assert r.sensitivity is None and r.specificity == 1.0 and r.ppv is None


def test_predictions_table_puts_confident_mistakes_first():
    preds = [
        {"path": "a.jpg", "label": "covid", "source": "s1", "probs": [0.9, 0.05, 0.05]},
        {"path": "b.jpg", "label": "normal", "source": "s1", "probs": [0.6, 0.3, 0.1]},
        {"path": "c.jpg", "label": "normal", "source": "s2", "probs": [0.8, 0.1, 0.1]},
        {"path": "d.jpg", "label": "pneumonia", "source": "s2", "probs": [0.1, 0.1, 0.8]},
    ]
    df = appstate.predictions_table(preds, ["covid", "normal", "pneumonia"])
    assert df["path"].tolist() == ["c.jpg", "b.jpg", "a.jpg", "d.jpg"]
    assert df["correct"].tolist() == [False, False, True, True]
    assert df.loc[0, "predicted"] == "covid" and df.loc[0, "confidence"] == pytest.approx(0.8)
    wrong = appstate.filter_predictions(df, outcome="misclassified")
    assert wrong["path"].tolist() == ["c.jpg", "b.jpg"]
    s2 = appstate.filter_predictions(df, labels=["normal"], sources=["s2"])
    assert s2["path"].tolist() == ["c.jpg"]
    assert len(appstate.filter_predictions(df, outcome="correct")) == 2
    with pytest.raises(ValueError):
        appstate.filter_predictions(df, outcome="maybe")


def test_safe_image_path_stays_inside_the_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"x")
    (tmp_path.parent / "secret.txt").write_text("no")
    assert appstate.safe_image_path(tmp_path, "images/x.jpg") == (tmp_path / "images/x.jpg")
    assert appstate.safe_image_path(tmp_path, "../secret.txt") is None
    assert appstate.safe_image_path(tmp_path, "/etc/passwd") is None
    assert appstate.safe_image_path(tmp_path, "images/missing.jpg") is None


def test_train_counts_table():
    meta = {"train_counts": {"kermany/normal": 10, "kermany/pneumonia": 30, "cxnet/covid": 5}}
    df = appstate.train_counts_table(meta)
    assert df.loc["kermany", "pneumonia"] == 30
    assert df.loc["cxnet", "normal"] == 0
    assert df.loc["total", "total"] == 45
    assert appstate.train_counts_table({}).empty


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

    from cxrlib.model import Classifier

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
    from cxrlib.overlay import overlay

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
    from cxrlib import ood

    gate = ood.load_gate(ROOT / "models" / "ood.npz")
    for s in appstate.list_samples():
        d = appstate.decode_upload(s.path.read_bytes(), s.file)
        verdict = gate.assess(d.pixels, d.colourfulness)
        assert verdict.is_cxr, (s.file, verdict.reason)


def test_describe_preprocessing_names_the_framing() -> None:
    base = {"size": 160, "geometry": "resize", "contrast": "clahe", "border_crop": 0.08}
    text = appstate.describe_preprocessing(base)
    assert "crop 8% of each border" in text and "squash to 160 x 160" in text
    lung = appstate.describe_preprocessing({**base, "lung_crop": True, "lung_margin": 0.04})
    assert "lung fields" in lung and "4%" in lung and "border" not in lung and "mask" not in lung
    masked = appstate.describe_preprocessing(
        {**base, "lung_crop": True, "lung_mask": True, "mask_dilation": 0.02}
    )
    assert "outside the lung mask (widened by 2% of the image)" in masked
    assert "pad to 96" in appstate.describe_preprocessing({"size": 96, "geometry": "pad"})


def test_describe_training_names_sampling_and_each_augmentation_in_use() -> None:
    from cxrlib.augment import AugmentConfig

    text = appstate.describe_training(
        {"sampling_power": 0.5, "sampling_floor": 1, "augment": AugmentConfig().to_dict()}
    )
    assert "n^0.5" in text and "under" not in text
    assert "rotation ±10 deg" in text and "JPEG artefacts (20%)" in text
    assert "letters and arrows" in text and "blanked" not in text
    erase = AugmentConfig(p_erase_lungs=0.15, p_jpeg=0).to_dict()
    text = appstate.describe_training(
        {"sampling_power": 0.25, "sampling_floor": 50, "augment": erase}
    )
    assert "no-opinion (uniform) target (15%)" in text and "JPEG" not in text
    assert "under 50 images" in text
    off = {k: 0 for k in AugmentConfig().to_dict()}
    assert appstate.describe_training({"augment": off}).endswith("no augmentation.")
    assert "moving average" not in text
    mixed = appstate.describe_training({"augment": {**off, "mixup": 0.2}})
    assert mixed.endswith(
        "augmentation: mixup (images and labels of two images blended, Beta(0.2) weights)."
    )
    averaged = appstate.describe_training({"augment": off, "ema": 0.998})
    assert averaged.endswith("no augmentation; weights kept as a moving average (decay 0.998).")


def test_describe_architecture_names_the_trunk_and_its_width() -> None:
    mobilenet = appstate.describe_architecture({"arch": "mobilenetv2", "alpha": 0.5})
    assert "MobileNetV2" in mobilenet and "width 0.5" in mobilenet
    assert "32-64-128 filters" in appstate.describe_architecture({"arch": "resnet", "width": 32})
    assert "48-96-192 filters" in appstate.describe_architecture({"arch": "resnet", "width": 48})
    # A JSON without a width does not get one made up.
    assert "filters" not in appstate.describe_architecture({"arch": "resnet"})
    assert appstate.describe_architecture({"arch": "small"}) == "`small`"


def _diagnosis(probs, ranges, averaged: bool):
    from cxrlib.diagnose import Diagnosis

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


def test_describe_calibration_names_the_views_and_both_temperatures():
    plain = appstate.describe_calibration({"temperature": 1.3166})
    assert "T = 1.317" in plain and "scored once" in plain
    meta = {
        "temperature": 1.3166,
        "test_time_views": {
            "views": ["shift right", "darker"],
            "temperature": 1.2221,
            "val_one_view": {"balanced_accuracy": 0.9059},
            "val_averaged": {"balanced_accuracy": 0.9151},
        },
    }
    text = appstate.describe_calibration(meta)
    for needed in ("2 slightly shifted", "shift right, darker", "over the 3", "T = 1.222"):
        assert needed in text, needed
    assert "0.906 with the image alone, 0.915 averaged" in text and "T = 1.317" in text


def test_describe_scoring_says_how_the_saved_predictions_were_made():
    views = ["original", "shift right", "darker"]
    assert "image and 2 slightly shifted" in appstate.describe_scoring({"views": views})
    assert "scored once" in appstate.describe_scoring({})


def test_loso_table_scores_as_the_app_predicts_where_that_was_measured():
    section = {
        "schedule": {"epochs": 3},
        "sources": {
            "nih": {
                "n": 501,
                "accuracy": 0.18,
                "balanced_accuracy": 0.18,
                "per_class_accuracy": {"normal": 0.31, "pneumonia": 0.04},
                "with_views": {
                    "accuracy": 0.17,
                    "balanced_accuracy": 0.16,
                    "per_class_accuracy": {"normal": 0.30, "pneumonia": 0.03},
                },
                "internal_test_balanced_accuracy": 0.82,
            },
            "cxnet": {"n": 507, "accuracy": 0.71, "per_class_accuracy": {"covid": 0.71}},
        },
    }
    table = appstate.loso_table(section)
    assert list(table.index) == ["nih", "cxnet"]
    assert list(table.columns) == [
        "n",
        "accuracy",
        "balanced accuracy",
        "covid sensitivity",
        "normal sensitivity",
        "pneumonia sensitivity",
        "internal test balanced accuracy",
    ]
    # The view-averaged figures where measured, the one-view figures where not.
    assert (
        table.loc["nih", "accuracy"] == 0.17 and table.loc["nih", "pneumonia sensitivity"] == 0.03
    )
    assert (
        table.loc["cxnet", "accuracy"] == 0.71 and table.loc["cxnet", "covid sensitivity"] == 0.71
    )
    assert np.isnan(table.loc["cxnet", "normal sensitivity"])
    assert appstate.loso_table({"sources": {}}).empty


def test_making_commands_lists_training_then_each_later_step():
    meta = {
        "command": "python -m cxrlib.train --data D --out M",
        "post_training": {"command": "python -m cxrlib.calibrate --model M/c.keras"},
        "test_time_views": {"views": ["darker"], "command": "python -m cxrlib.calibrate --views"},
    }
    assert appstate.making_commands(meta).splitlines() == [
        "python -m cxrlib.train --data D --out M",
        "python -m cxrlib.calibrate --model M/c.keras",
        "python -m cxrlib.calibrate --views",
    ]
    assert appstate.making_commands({}).startswith("python -m cxrlib.train")


def test_describe_loso_says_what_each_held_out_model_found_per_class():
    section = {
        "schedule": {"epochs": 14, "steps_per_epoch": 0},
        "sources": {
            "nih": {
                "per_class_accuracy": {"normal": 0.6, "pneumonia": 0.1},
                "auc": {"normal": 0.56, "pneumonia": 0.64},
                "internal_test_balanced_accuracy": 0.913,
                # As the app predicts: these figures win over the one-view ones.
                "with_views": {
                    "per_class_accuracy": {"normal": 0.62, "pneumonia": 0.08},
                    "auc": {"normal": 0.56, "pneumonia": 0.63},
                },
            },
            "somewhere": {"per_class_accuracy": {"covid": 0.75}},
            "empty": {"per_class_accuracy": {}},
        },
    }
    nih, other = appstate.describe_loso(section)
    assert nih.startswith("Trained without the adult NIH Clinical Center images (14 epochs)")
    assert "**62%** of its normal (AUC 0.56) and **8%** of its pneumonia (AUC 0.63)" in nih
    assert nih.endswith("91% balanced accuracy on the internal test split.")
    # An unnamed source keeps its id; no AUC and no internal figure, no words for them.
    assert (
        other == "Trained without the somewhere images (14 epochs), it found **75%** of its covid."
    )
    assert appstate.describe_loso({"sources": {}}) == []


def _metrics_with(groups: dict[tuple[str, str], dict[str, int]], loso: dict) -> dict:
    """A metrics file whose test split holds ``groups[(source, label)][answer]`` images."""
    names = ["covid", "normal", "pneumonia"]
    preds, matrix = [], np.zeros((3, 3), int)
    for (source, label), answers in groups.items():
        for answer, n in answers.items():
            probs = [0.8 if c == answer else 0.1 for c in names]
            preds += [{"path": "x", "label": label, "source": source, "probs": probs}] * n
            matrix[names.index(label), names.index(answer)] += n
    test = {"predictions": preds, "confusion_matrix": {"labels": names, "matrix": matrix.tolist()}}
    return {"splits": {"test": test}, "loso": {"sources": loso}}


def test_track_record_of_an_answer():
    metrics = _metrics_with(
        {
            ("nih", "pneumonia"): {"normal": 12, "pneumonia": 18},  # 40% answered normal
            ("kermany", "normal"): {"normal": 21, "pneumonia": 4},  # 16%: under 20%
            ("kermany", "pneumonia"): {"normal": 4, "pneumonia": 21},  # 16%: under 20%
            ("cxnet", "covid"): {"normal": 10},  # all of them, but a group of 10
        },
        loso={"a": {"accuracy": 0.4, "with_views": {"accuracy": 0.5}}, "b": {"accuracy": 0.7}},
    )
    metrics["loso"]["schedule"] = {"epochs": 3, "steps_per_epoch": 120}
    r = appstate.track_record(metrics, "normal")
    assert (r.calls, r.right) == (12 + 21 + 4 + 10, 21)
    assert r.confusions == (("nih", "pneumonia", 12, 30),)
    # The views-averaged held-out accuracy where recorded, as the app predicts.
    assert r.held_out_accuracy == pytest.approx(0.6) and r.held_out_sources == 2
    lines = appstate.describe_track_record(r)
    assert "**45%** of its 'normal' answers were right (21 of 47)" in lines[0]
    assert "right on **60%** of the left-out images" in lines[1] and "2 sources" in lines[1]
    assert "shortened to 3 epochs of 120 steps" in lines[1]
    assert lines[2] == (
        "Known confusion: it also answered 'normal' for 12 of 30 adult NIH Clinical Center "
        "pneumonia images in the test split."
    )
    p = appstate.track_record(metrics, "pneumonia")
    assert (p.calls, p.right, p.confusions) == (18 + 4 + 21, 18 + 21, ())
    assert appstate.track_record(metrics, "other") is None
    assert appstate.track_record(None, "normal") is None
    without_loso = appstate.track_record(
        _metrics_with({("nih", "normal"): {"normal": 3}}, {}), "normal"
    )
    assert without_loso.held_out_accuracy is None
    assert len(appstate.describe_track_record(without_loso)) == 1


def test_answer_record_follows_the_metrics_file(tmp_path):
    import json
    import os

    res = appstate.Resources(model_path=tmp_path / "m.keras")
    assert appstate.answer_record(res, "normal") == []  # no metrics file: no box
    path = tmp_path / "m.metrics.json"
    path.write_text(json.dumps(_metrics_with({("nih", "normal"): {"normal": 3}}, {})))
    assert "(3 of 3)" in appstate.answer_record(res, "normal")[0]
    path.write_text(json.dumps(_metrics_with({("nih", "normal"): {"normal": 2, "covid": 2}}, {})))
    os.utime(path, (1, 1))  # a new version, whatever the clock's resolution
    assert "(2 of 2)" in appstate.answer_record(res, "normal")[0]
    assert appstate.answer_record(res, "covid")[0].count("0 of 2") == 1


def _alternative(bal: float, erased: float, split: str = "test", arch: str = "resnet") -> dict:
    return {
        "preprocess": {"size": 128, "lung_crop": False},
        "train_config": {"arch": arch, "width": 64},
        "params": 2846787,
        "split": split,
        "balanced_accuracy": bal,
        "covid_sensitivity": 0.9,
        "lungs_erased": {"balanced_accuracy": erased, "covid_auc": 0.8},
    }


def test_comparisons_set_each_alternative_against_the_committed_model():
    meta = {
        "preprocess": {"size": 160, "lung_crop": True},
        "train_config": {"arch": "mobilenetv2", "alpha": 0.5},
        "params": 173747,
    }
    metrics = {
        "splits": {"test": {"balanced_accuracy": 0.912, "per_class": {"covid": {"sensitivity": 0.895}}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.352, "auc": {"covid": 0.525}}},
        "alternatives": {
            "whole": _alternative(0.933, 0.653),
            "masked": _alternative(0.887, 0.374),
            "level": _alternative(0.920, 0.38),
            "on val": _alternative(0.99, 0.99, split="val"),
        },
    }  # fmt: skip
    rows = appstate.comparisons(meta, metrics)
    # The committed model first, then the alternatives by name; another split is left out.
    assert [r.name for r in rows] == ["this app's model", "level", "masked", "whole"]
    assert rows[0].described == "the lung box, MobileNetV2 (width 0.5), 160 px"
    assert rows[3].described == "the whole image, ResNet (64 filters first), 128 px"
    assert (rows[0].balanced_accuracy, rows[0].erased_covid_auc) == (0.912, 0.525)
    table = appstate.comparison_table(rows)
    assert table.loc["whole", "lungs erased: bal. accuracy"] == 0.653
    assert table.loc["this app's model", "COVID sensitivity"] == 0.895
    assert table.loc["whole", "parameters"] == "2.85 M"
    ours, level, masked, whole, why = appstate.describe_comparisons(rows)
    assert ours.startswith("**This app's model** (the lung box") and "chance 33%" in ours
    assert "91.2% balanced accuracy" in ours and "35% with the lungs erased" in ours
    # Higher inside and well above the committed model with the lungs erased: read outside.
    assert "93.3% balanced accuracy" in whole and "65% with the lungs erased" in whole
    assert "30 points higher with the lungs erased" in whole and "Not the model used" in whole
    # Higher, but within the margin with the lungs erased: the ablation cannot tell.
    assert "does not tell it apart" in level and "Not the model used" not in level
    assert "88.7% balanced accuracy" in masked and "Lower on the internal test split" in masked
    # Why reading outside the lungs counts against a model: said once, after the models.
    assert why.startswith("Why that counts against a model") and "new hospital" in why
    assert len(appstate.describe_comparisons([r for r in rows if r.name != "whole"])) == 3
    # Nothing to compare with: no lines, no rows.
    assert appstate.comparisons(meta, {"splits": metrics["splits"]}) == []
    assert appstate.describe_comparisons(rows[:1]) == []

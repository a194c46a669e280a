"""The metrics of a set of predictions, checked against numbers worked out by hand,
and the probabilities of image files as the app predicts."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.evaluate.metrics import format_table
from cxrlib.train.scoring import compute_metrics, expected_calibration_error

CLASSES = ("covid", "normal", "pneumonia")


def _probs(pred: list[int], conf: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), 3), (1 - conf) / 2)
    p[np.arange(len(pred)), pred] = conf
    return p


def test_hand_computed_confusion_and_rates():
    # true:  c c c n n n p p   (c=0, n=1, p=2)
    # pred:  c c n n n c p n
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = [0, 0, 1, 1, 1, 0, 2, 1]
    res = compute_metrics(y, _probs(pred), CLASSES, n_boot=0, curves=False)
    assert res["confusion_matrix"]["matrix"] == [[2, 1, 0], [1, 2, 0], [0, 1, 1]]
    assert res["n"] == 8
    assert res["accuracy"] == pytest.approx(5 / 8, abs=1e-4)
    # per-class recall 2/3, 2/3, 1/2 -> balanced accuracy 11/18
    assert res["balanced_accuracy"] == pytest.approx(11 / 18, abs=1e-4)
    covid = res["per_class"]["covid"]
    # covid: TP 2, FN 1, FP 1, TN 4
    assert covid["sensitivity"] == pytest.approx(2 / 3, abs=1e-4)
    assert covid["specificity"] == pytest.approx(4 / 5, abs=1e-4)
    assert covid["ppv"] == pytest.approx(2 / 3, abs=1e-4)
    assert covid["npv"] == pytest.approx(4 / 5, abs=1e-4)
    assert covid["f1"] == pytest.approx(2 / 3, abs=1e-4)
    pneu = res["per_class"]["pneumonia"]
    # pneumonia: TP 1, FN 1, FP 0, TN 6
    assert pneu["ppv"] == pytest.approx(1.0)
    assert pneu["npv"] == pytest.approx(6 / 7, abs=1e-4)
    # F1s: covid 2/3, normal 2*2/(4+2+1)=4/7, pneumonia 2/3
    assert res["macro_f1"] == pytest.approx((2 / 3 + 4 / 7 + 2 / 3) / 3, abs=1e-4)


def test_brier_and_ece_by_hand():
    y = np.array([0, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
    res = compute_metrics(y, p, CLASSES, n_boot=0, curves=False)
    brier = ((0.1**2 + 0.05**2 + 0.05**2) + (0.6**2 + 0.7**2 + 0.1**2)) / 2
    assert res["brier"] == pytest.approx(brier, abs=1e-4)
    # two bins: conf 0.9 correct (gap 0.1), conf 0.6 wrong (gap 0.6) -> ECE 0.35
    ece, bins = expected_calibration_error(p, y)
    assert ece == pytest.approx(0.35)
    assert sum(b["count"] for b in bins) == 2


def test_subset_of_classes_and_undefined_values():
    # Only normal and pneumonia present: covid gets no per-class entry,
    # balanced accuracy averages over the two present classes.
    y = np.array([1, 1, 2, 2])
    p = _probs([1, 0, 2, 2])
    res = compute_metrics(y, p, CLASSES, n_boot=0)
    assert set(res["per_class"]) == {"normal", "pneumonia"}
    assert res["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    # A single-class manifest has no defined AUC or specificity.
    one = compute_metrics(np.array([2, 2]), _probs([2, 1]), CLASSES, n_boot=0)
    assert one["per_class"]["pneumonia"]["auc"] is None
    assert one["per_class"]["pneumonia"]["specificity"] is None


def test_auc_and_curves_perfect_ranking():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.7, 0.2, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.6, 0.2],
            [0.1, 0.1, 0.8],
            [0.3, 0.1, 0.6],
        ]
    )
    res = compute_metrics(y, p, CLASSES, n_boot=50)
    assert all(m["auc"] == 1.0 for m in res["per_class"].values())
    roc = res["curves"]["covid"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    lo, hi = res["ci95"]["accuracy"]
    assert lo <= res["accuracy"] <= hi


def test_per_source_accuracy():
    y = np.array([0, 0, 1, 1])
    res = compute_metrics(y, _probs([0, 1, 1, 1]), CLASSES, sources=["a", "a", "b", "b"], n_boot=0)
    assert res["per_source"]["a"] == {"n": 2, "accuracy": 0.5, "per_class_accuracy": {"covid": 0.5}}
    assert res["per_source"]["b"]["accuracy"] == 1.0
    assert "per source" in format_table(res)


def test_view_average_is_the_apps_prediction(tmp_path):
    import cv2
    from blobs import blob_image, blob_model

    from cxrlib.evaluate.metrics import diagnosed_probabilities
    from cxrlib.infer.classifier import Classifier, softmax
    from cxrlib.infer.pipeline import diagnose
    from cxrlib.infer.views import DEFAULT_VIEWS

    # A purpose-trained model (class 1 = a bright blob) whose outputs the views do move.
    meta = {"preprocess": {"size": 64, "contrast": "none"}, "temperature": 2.0}
    clf = Classifier(blob_model(), meta)
    names = [v.name for v in DEFAULT_VIEWS]
    averaging = Classifier(
        clf.model, {**meta, "test_time_views": {"views": names, "temperature": 1.5}}
    )
    rng = np.random.default_rng(3)
    grays = [blob_image(rng, (8, 8)), blob_image(rng, (56, 30)), blob_image(rng, None)]
    files = []
    for k, g in enumerate(grays):
        files.append(str(tmp_path / f"{k}.png"))
        cv2.imwrite(files[-1], g)
    # The app's per-view logits (up to a constant per image), from its own diagnosis.
    z = np.stack([np.log(diagnose(clf, g).view_probabilities) * 2.0 for g in grays])
    # A model that averages: its own prediction, the app's, at its own temperature.
    own = diagnosed_probabilities(averaging, files)
    np.testing.assert_allclose(own, softmax(z.mean(axis=1) / 1.5), atol=1e-4)
    np.testing.assert_allclose(
        own, np.stack([diagnose(averaging, g).probabilities for g in grays]), atol=1e-5
    )
    np.testing.assert_allclose(
        diagnosed_probabilities(averaging, files, views=()), softmax(z[:, 0] / 2.0), atol=1e-4
    )
    # Views asked of a model without them: the same average at the model's temperature.
    got = diagnosed_probabilities(clf, files, views=DEFAULT_VIEWS)
    np.testing.assert_allclose(got, softmax(z.mean(axis=1) / 2.0), atol=1e-4)
    single = diagnosed_probabilities(clf, files)
    np.testing.assert_allclose(single, clf.predict(grays), atol=1e-5)
    assert np.abs(got - single).max() > 1e-3  # the average is not the single view

"""cxrlib.describe.results: the saved metrics as the Metrics and Validation pages show them."""

from __future__ import annotations

import numpy as np
import pytest
from saved_metrics import split

from cxrlib.describe import results


def test_threshold_rule_moves_images_only_to_and_from_the_positive_class():
    probs = np.array(
        [
            [0.50, 0.30, 0.20],
            [0.30, 0.20, 0.50],
            [0.10, 0.60, 0.30],
            [0.45, 0.10, 0.45],
        ]
    )

    def answers(threshold: float) -> list[int]:
        # Each image alone, labelled covid: its answer is the column of its one count.
        one = [results.threshold_confusion(p[None], np.array([0]), 0, threshold) for p in probs]
        return [int(r.matrix[0].argmax()) for r in one]

    assert answers(0.5) == [0, 2, 1, 2]
    assert answers(0.3) == [0, 0, 1, 0]
    assert answers(0.9) == [1, 2, 1, 2]


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
    r = results.threshold_confusion(probs, y, 0, 0.5)
    assert r.matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert r.sensitivity == pytest.approx(0.5)
    assert r.specificity == pytest.approx(1.0)
    assert r.ppv == pytest.approx(1.0)
    assert r.npv == pytest.approx(2 / 3)
    low = results.threshold_confusion(probs, y, 0, 0.3)
    assert low.matrix.tolist() == [[2, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert low.sensitivity == 1.0 and low.specificity == pytest.approx(0.5)
    assert low.matrix.sum() == r.matrix.sum() == 4


def test_threshold_sweep_is_monotone_on_random_data():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=300)
    y = rng.integers(0, 3, size=300)
    sens = [results.threshold_confusion(probs, y, 0, t).sensitivity for t in np.linspace(0, 1, 21)]
    spec = [results.threshold_confusion(probs, y, 0, t).specificity for t in np.linspace(0, 1, 21)]
    assert all(a >= b for a, b in zip(sens, sens[1:]))
    assert all(a <= b for a, b in zip(spec, spec[1:]))
    assert sens[0] == 1.0 and spec[0] == 0.0


def test_threshold_with_no_positives_gives_none():
    r = results.threshold_confusion(np.array([[0.2, 0.8, 0.0]]), np.array([1]), 0, 0.5)
    assert r.sensitivity is None and r.specificity == 1.0 and r.ppv is None


def test_predictions_table_puts_confident_mistakes_first():
    preds = [
        {"path": "a.jpg", "label": "covid", "source": "s1", "probs": [0.9, 0.05, 0.05]},
        {"path": "b.jpg", "label": "normal", "source": "s1", "probs": [0.6, 0.3, 0.1]},
        {"path": "c.jpg", "label": "normal", "source": "s2", "probs": [0.8, 0.1, 0.1]},
        {"path": "d.jpg", "label": "pneumonia", "source": "s2", "probs": [0.1, 0.1, 0.8]},
    ]
    saved = split({"predictions": preds}).predictions
    df = results.predictions_table(saved, ["covid", "normal", "pneumonia"])
    assert df["path"].tolist() == ["c.jpg", "b.jpg", "a.jpg", "d.jpg"]
    assert df["correct"].tolist() == [False, False, True, True]
    assert df.loc[0, "predicted"] == "covid" and df.loc[0, "confidence"] == pytest.approx(0.8)
    wrong = results.filter_predictions(df, outcome="misclassified")
    assert wrong["path"].tolist() == ["c.jpg", "b.jpg"]
    s2 = results.filter_predictions(df, labels=["normal"], sources=["s2"])
    assert s2["path"].tolist() == ["c.jpg"]
    assert len(results.filter_predictions(df, outcome="correct")) == 2
    with pytest.raises(ValueError):
        results.filter_predictions(df, outcome="maybe")


def test_per_source_table_gives_each_class_its_sensitivity():
    saved = {
        "per_source": {
            "nih": {"n": 84, "accuracy": 0.595, "per_class_accuracy": {"normal": 0.867, "pneumonia": 0.282}},
            "cxnet": {"n": 76, "accuracy": 0.908, "per_class_accuracy": {"covid": 0.908}},
        }
    }  # fmt: skip
    table = results.per_source_table(split(saved))
    assert list(table.index) == ["nih", "cxnet"]
    assert table.loc["nih", "pneumonia sensitivity"] == 0.282
    # A class a source does not have is missing (the page shows a dash), not zero.
    assert np.isnan(table.loc["cxnet", "pneumonia sensitivity"])
    assert results.per_source_table(split({})).empty


def test_adult_figures_count_the_adult_sources_only_and_carry_intervals():
    from cxrlib.train.scoring import compute_metrics

    names = ("covid", "normal", "pneumonia")
    # nih / quex pneumonias: 3 of 4 called pneumonia (one called normal); their normals: 1 of
    # 2 called normal. Kermany's are children's: they must not count.
    y = [2, 2, 2, 2, 1, 1, 2, 1]
    pred = [2, 2, 1, 2, 1, 2, 1, 2]
    src = ["nih", "quex", "quex", "nih", "quex", "nih", "kermany", "kermany"]
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    rec = compute_metrics(np.array(y), probs, names, sources=src, n_boot=200)
    adults = split(rec).adults
    assert (adults.pneumonia.n, adults.pneumonia.sensitivity) == (4, 0.75)
    assert (adults.normal.n, adults.normal.specificity) == (2, 0.5)
    assert adults.pneumonia.answers == {"covid": 0, "normal": 1, "pneumonia": 3}
    lo, hi = adults.pneumonia.ci95
    assert 0 <= lo <= 0.75 <= hi <= 1
    text = results.describe_adults(split(rec))
    assert "3 of 4 pneumonias called pneumonia, 75.0% (95% CI" in text
    assert "1 of 2 normals called normal, 50.0%" in text
    # Without adult images there is no adult sentence.
    no_adults = compute_metrics(np.array(y[-2:]), probs[-2:], names, sources=src[-2:], n_boot=0)
    assert results.describe_adults(split(no_adults)) is None


def test_the_headline_names_its_split_sources_and_intervals():
    saved = {
        "n": 2428,
        "accuracy": 0.886,
        "balanced_accuracy": 0.883,
        "macro_f1": 0.8808,
        "ci95": {"accuracy": [0.873, 0.899], "balanced_accuracy": [0.869, 0.897]},
        "per_source": {
            "quex": {"n": 217, "accuracy": 0.5},
            "cxnet": {"n": 76, "accuracy": 0.9},
        },
    }
    text = results.describe_headline(split(saved), "test")
    assert text.startswith("On the **internal test split**, 2,428 images from 2 sources")
    assert "(cxnet and quex), held out from training but from the same sources" in text
    assert "balanced accuracy **88.3% (95% CI 86.9-89.7%)**" in text
    assert "accuracy 88.6% (95% CI 87.3-89.9%), macro-F1 0.881." in text
    # An unknown split keeps its name; no sources, no list.
    other = results.describe_headline(split({"n": 5, "accuracy": 0.4}), "holdout")
    assert other.startswith("On the **holdout split**, 5 images: ")


def test_splits_read_test_first():
    assert results.split_order(["val", "extra", "test"]) == ["test", "val", "extra"]
    assert results.split_label("val") == "validation split"


def test_describe_reliability_says_ece_and_brier_when_recorded():
    text = results.describe_reliability(split({"ece": 0.0104, "brier": 0.175}))
    assert text == "Expected calibration error **0.010**, Brier score **0.175**."
    assert results.describe_reliability(split({})) is None

"""cxrlib.describe.figures: the Plotly figures hold the numbers they are given."""

from __future__ import annotations

import numpy as np
from saved_metrics import split

from cxrlib.describe import figures

NAMES = ["covid", "normal", "pneumonia"]


def test_confusion_figure_counts_and_row_normalised():
    cm = [[8, 2, 0], [1, 9, 0], [0, 0, 0]]
    counts = figures.confusion_figure(cm, NAMES)
    assert counts.data[0].text[0][0] == "8"
    norm = figures.confusion_figure(cm, NAMES, normalise=True)
    z = np.asarray(norm.data[0].z)
    np.testing.assert_allclose(z[0], [0.8, 0.2, 0.0])
    np.testing.assert_allclose(z[2], [0, 0, 0])  # empty row: zeros, not NaN
    assert norm.data[0].text[1][1] == "90.0%"


def test_training_curves_train_and_val_per_panel():
    history = {
        "loss": [1.0, 0.8],
        "val_loss": [1.1, 0.9],
        "accuracy": [0.5, 0.6],
        "val_accuracy": [0.4, 0.55],
        "macro_f1": [0.4, 0.5],
        "val_macro_f1": [0.3, 0.45],
    }
    fig = figures.training_curves(history)
    assert len(fig.data) == 6
    names = {(t.name, tuple(t.y)) for t in fig.data}
    assert ("validation", (1.1, 0.9)) in names and ("train", (0.4, 0.5)) in names


def test_roc_pr_reliability_and_source_figures():
    curves = {
        "covid": {
            "roc": {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]},
            "pr": {"recall": [0, 0.8, 1], "precision": [1, 0.9, 0.3]},
        },
    }
    test = split({"curves": curves, "per_class": {"covid": {"auc": 0.912}}})
    roc = figures.roc_figure(test.curves, test.per_class)
    assert roc.data[0].name == "covid (AUC 0.912)" and list(roc.data[0].y) == [0, 0.8, 1]
    pr = figures.pr_figure(test.curves)
    assert list(pr.data[0].y) == [1, 0.9, 0.3]
    bins = [
        {"lo": 0.0, "hi": 0.5, "count": 0, "confidence": 0, "accuracy": 0},
        {"lo": 0.5, "hi": 1.0, "count": 10, "confidence": 0.8, "accuracy": 0.7},
    ]
    rel = figures.reliability_figure(split({"reliability": bins}).reliability, 0.05)
    assert list(rel.data[0].y) == [0.7] and "ECE 0.050" in rel.layout.title.text
    per_source = {"a": {"n": 10, "accuracy": 0.9}, "b": {"n": 5, "accuracy": 0.5}}
    src = figures.per_source_figure(split({"per_source": per_source}).per_source)
    np.testing.assert_allclose(src.data[0].x, [90, 50])
    assert src.data[0].y[0] == "a (n=10)"

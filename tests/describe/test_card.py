"""cxrlib.describe.card: the model card as one Markdown file (Mitchell et al. 2019)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from saved_metrics import METHODS_SECTION, external, shortcuts, typed

from cxrlib.describe import card, results
from cxrlib.describe.prose import caveats, prose

ROOT = Path(__file__).resolve().parents[2]
MITCHELL = [
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
]

TEST = {
    "n": 6,
    "accuracy": 0.5,
    "balanced_accuracy": 0.5,
    "macro_f1": 0.45,
    "ci95": {"balanced_accuracy": [0.2, 0.8]},
    "per_class": {"covid": {"support": 2, "sensitivity": 0.5, "auc": 0.75}},
    "confusion_matrix": {"labels": ["covid", "normal"], "matrix": [[1, 1], [2, 2]]},
    "ece": 0.123,
    "brier": 0.4,
    "reliability": [{"lo": 0.5, "hi": 0.6, "count": 4, "confidence": 0.55, "accuracy": 0.25}],
    "per_source": {"nih": {"n": 6, "accuracy": 0.5, "per_class_accuracy": {"normal": 0.5}}},
}
META = {
    "train_counts": {"nih/normal": 170, "nih/pneumonia": 166},
    "n_train": 336,
    "preprocess": {"size": 160, "lung_crop": True},
    "train_config": {"arch": "mobilenetv2", "alpha": 0.5},
    "weights_sha256": "abc123",
}


@pytest.fixture
def text() -> str:
    metrics = typed(
        {
            "splits": {"test": TEST},
            "external": external({"normal": 3, "covid": 1}),
            "explain_methods": METHODS_SECTION,
        }
    )
    return card.model_card_markdown(META, metrics, "cxr_classifier.keras")


def test_the_card_has_mitchells_sections_in_order(text):
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[: len(MITCHELL)] == MITCHELL
    assert text.startswith(f"# {card.TITLE}\n")
    assert prose("not_for_diagnosis") in text


def test_the_card_carries_the_numbers_behind_each_figure(text):
    assert results.describe_headline(typed({"splits": {"test": TEST}}).test, "test") in text
    assert "| true \\ predicted | covid | normal |" in text
    assert "| normal | 2 | 2 |" in text  # the confusion matrix's counts
    assert "Calibration: Expected calibration error **0.123**, Brier score **0.400**." in text
    assert "| 0.50-0.60 | 4 | 55.0% | 25.0% |" in text  # the reliability diagram's bins
    assert "| nih | 6 | 50.0% | 50.0% |" in text  # accuracy by source
    assert "**A collection it never trained on.**" in text and "OpenIST" in text
    assert "changed little for SmoothGrad (0.59)" in text
    assert "| nih | 170 | 166 | 336 | Adults, NIH" in text  # the training data
    assert "`abc123`" in text and "crop to the lung fields" in text  # model details


def test_the_caveats_name_their_evidence(text):
    for c in caveats():
        assert f"- **{c.title}.** {c.body} Evidence: the Metrics page, tab *{c.tab}*." in text


def test_the_source_probe_in_words_follows_the_caveat_about_shortcuts():
    metrics = typed({"splits": {"test": TEST}, "shortcuts": shortcuts()})
    (probe,) = card.caveat_figures(metrics)["Shortcut audit"]
    assert "normal X-ray's collection 71% of the time (guessing: 50%)" in probe
    text = card.model_card_markdown(META, metrics, "m.keras")
    (line,) = [line for line in text.splitlines() if probe in line]
    assert line.startswith("- **It can be right for the wrong reasons.**")
    assert line.endswith("Evidence: the Metrics page, tab *Shortcut audit*.")
    assert card.caveat_figures(typed({"splits": {"test": TEST}})) == {}


def test_the_committed_model_has_a_card():
    from cxrlib.core.metrics import read_metrics

    path = ROOT / "models" / "cxr_classifier.keras"
    if not path.with_suffix(".metrics.json").exists():
        pytest.skip("no committed metrics file")
    meta = json.loads(path.with_suffix(".json").read_text())
    metrics = read_metrics(json.loads(path.with_suffix(".metrics.json").read_text()))
    text = card.model_card_markdown(meta, metrics, path.name)
    assert "### Internal test split" in text and "### Validation split" in text
    assert "Leave one source out, the full recipe" in text


def test_the_adult_patient_lines_put_the_seen_hospitals_before_the_unseen():
    import numpy as np

    from cxrlib.train.scoring import compute_metrics

    names = ("covid", "normal", "pneumonia")
    y, pred = [2, 2, 1, 1], [2, 1, 1, 2]
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    scored = compute_metrics(np.array(y), probs, names, sources=["nih", "quex"] * 2, n_boot=20)
    nih = {"nih": {"per_class_accuracy": {"pneumonia": 0.1}}}
    metrics = typed({"splits": {"test": scored}, "loso_full": {"sources": nih}})
    seen, unseen = card.adult_patient_lines(metrics)
    assert seen == results.describe_adults(metrics.test)
    assert unseen.startswith(
        "**An adult collection it did not train on.** Trained without the adult NIH"
    )
    assert "**10%** of its pneumonia" in unseen
    assert card.adult_patient_lines(typed({"splits": {"test": TEST}})) == []
    text = card.model_card_markdown(META, metrics, "m.keras")
    assert f"### {card.ADULT_PATIENT}\n\n- {seen}\n- {unseen}" in text

"""cxrlib.describe.comparison: the committed model against the alternatives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from saved_metrics import external, typed
from saved_metrics import section as read_section

from cxrlib.describe import comparison


def comparisons(meta: dict, metrics: dict) -> list[comparison.Comparison]:
    return comparison.comparisons(meta, typed(metrics))


def reseeded(meta: dict, alt: dict) -> int | None:
    return comparison.reseeded(meta, read_section("alternatives", {"alt": alt})["alt"])


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
    rows = comparisons(meta, metrics)
    # The committed model first, then the alternatives by name; another split is left out.
    assert [r.name for r in rows] == ["this app's model", "level", "masked", "whole"]
    assert rows[0].described == "the lung box, MobileNetV2 (width 0.5), 160 px"
    assert rows[3].described == "the whole image, ResNet (64 filters first), 128 px"
    assert (rows[0].balanced_accuracy, rows[0].erased_covid_auc) == (0.912, 0.525)
    table = comparison.comparison_table(rows)
    assert table.loc["whole", "lungs erased: bal. accuracy"] == 0.653
    assert table.loc["this app's model", "COVID sensitivity"] == 0.895
    assert table.loc["whole", "parameters"] == "2.85 M"
    ours, level, masked, whole = comparison.describe_comparisons(rows)
    assert ours.startswith("**This app's model** (the lung box") and "chance 33%" in ours
    assert "91.2% balanced accuracy" in ours and "35% with the lungs erased" in ours
    # Higher inside and well above the committed model with the lungs erased: read outside.
    assert "93.3% balanced accuracy" in whole and "65% with the lungs erased" in whole
    assert "30 points higher with the lungs erased" in whole and "Not the model used" in whole
    # Higher, but within the margin with the lungs erased: the ablation cannot tell.
    assert "does not tell it apart" in level and "Not the model used" not in level
    assert "88.7% balanced accuracy" in masked and "Lower on the internal test split" in masked
    # Why reading outside the lungs counts against a model: said once, where one does.
    assert [r.name for r in comparison.reads_outside(rows)] == ["whole"]
    assert "new hospital" in comparison.comparison_note(rows)
    assert comparison.comparison_note([r for r in rows if r.name != "whole"]) is None
    # Nothing to compare with: no lines, no rows.
    assert comparisons(meta, {"splits": metrics["splits"]}) == []
    assert comparison.describe_comparisons(rows[:1]) == []


def test_the_comparison_says_where_an_alternative_did_better_outside():
    meta = {"preprocess": {"size": 160, "lung_crop": True}, "train_config": {"arch": "mobilenetv2"}}
    metrics = {
        "splits": {"test": {"balanced_accuracy": 0.91, "per_class": {}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.35}},
        "external": external({"normal": 159, "covid": 116}),
        "alternatives": {
            "whole": {
                **_alternative(0.92, 0.46),
                "external": external({"normal": 187, "covid": 88}),
            },
            "close": {
                **_alternative(0.90, 0.36),
                "external": external({"normal": 165, "covid": 110}),
            },
            "unmeasured": _alternative(0.93, 0.60),
        },
    }
    rows = {r.name: r for r in comparisons(meta, metrics)}
    assert rows["this app's model"].outside == (("OpenIST", "normal", 0.5782),)
    assert rows["unmeasured"].outside == ()
    lines = {
        line.split("**")[1]: line for line in comparison.describe_comparisons(list(rows.values()))
    }
    assert lines["whole"].endswith(
        "On OpenIST's normal images, which neither model trained on, it did better: 68% called "
        "normal, against 58%."
    )
    assert "OpenIST" not in lines["close"]  # 60% against 58%: within the margin
    assert "OpenIST" not in lines["unmeasured"]
    table = comparison.comparison_table(list(rows.values()))
    assert "points the other way" in comparison.comparison_note(list(rows.values()))
    # Only where an alternative did better outside does the note say so.
    unmeasured = dataclasses.replace(rows["whole"], outside=())
    others = [r for r in rows.values() if r.name != "whole"]
    assert "points the other way" not in comparison.comparison_note([*others, unmeasured])
    assert list(table.columns)[3] == "OpenIST normals called normal"  # before the rest
    column = table["OpenIST normals called normal"]
    assert column["whole"] == pytest.approx(0.68) and np.isnan(column["unmeasured"])


def test_a_reseeded_copy_of_the_recipe_is_shown_as_chance_not_as_a_rival():
    recipe = {"arch": "mobilenetv2", "alpha": 0.5, "augment": {"p_jpeg": 0.2}}
    pre = {"size": 160, "lung_crop": True}
    meta = {"preprocess": pre, "train_config": {**recipe, "seed": 0, "steps_per_epoch": None}}
    # Another seed (and schedule bookkeeping), the same settings: the same recipe.
    later = {**recipe, "seed": 1, "steps_per_epoch": 100}
    copy = {**_alternative(0.93, 0.50), "preprocess": pre, "train_config": later}
    copy["external"] = external({"normal": 176, "covid": 99})
    assert reseeded(meta, copy) == 1
    # Anything else that differs makes it another recipe; so does the same seed.
    assert reseeded(meta, {**copy, "train_config": {**later, "ema": 0.998}}) is None
    assert reseeded(meta, {**copy, "train_config": {**later, "sampling_floor": 1}}) is None
    assert reseeded(meta, {**copy, "preprocess": {**pre, "lung_margin": 0.12}}) is None
    other_aug = {**later, "augment": {"p_jpeg": 0.2, "p_tone": 0.5}}
    assert reseeded(meta, {**copy, "train_config": other_aug}) is None
    assert reseeded(meta, {**copy, "train_config": {**later, "seed": 0}}) is None
    assert reseeded(meta, _alternative(0.93, 0.5)) is None
    # Trained through another Keras backend it is not chance alone; through the one the
    # committed model's record predates (TensorFlow), it still is.
    assert reseeded(meta, {**copy, "keras_backend": "jax"}) is None
    assert reseeded(meta, {**copy, "keras_backend": "tensorflow"}) == 1
    metrics = {
        "splits": {"test": {"balanced_accuracy": 0.912, "per_class": {}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.352}},
        "external": external({"normal": 159, "covid": 116}),
        "alternatives": {"seed 1": copy, "whole": _alternative(0.93, 0.50)},
    }
    rows = {r.name: r for r in comparisons(meta, metrics)}
    assert rows["seed 1"].reseeded == 1 and rows["whole"].reseeded is None
    lines = {
        line.split("**")[1]: line for line in comparison.describe_comparisons(list(rows.values()))
    }
    # Higher inside, higher erased, better outside: for a rival all three would be said;
    # for a reseeded copy they are what chance does.
    assert "trained again with seed 1: how far each figure moves by chance alone" in lines["seed 1"]
    assert "64% of OpenIST's normal images called normal" in lines["seed 1"]
    assert "did better" not in lines["seed 1"] and "Not the model used" not in lines["seed 1"]
    assert "Not the model used" in lines["whole"]
    assert [r.name for r in comparison.reads_outside(list(rows.values()))] == ["whole"]
    # Where a rival did better outside, the note says how far the seed alone moved it there.
    better = {
        **metrics["alternatives"]["whole"],
        "external": external({"normal": 187, "covid": 88}),
    }
    metrics["alternatives"]["whole"] = better
    note = comparison.comparison_note(comparisons(meta, metrics))
    assert "points the other way" in note
    assert note.endswith(
        "moved that collection's figure by 6 points: differences of that size there are chance."
    )
    # A copy that moved it by no more than the margin adds nothing.
    copy["external"] = external({"normal": 165, "covid": 110})
    assert "another seed" not in comparison.comparison_note(comparisons(meta, metrics))


def test_the_committed_records_state_every_training_setting():
    # The comparison reads a recipe off the records as they are, so they must spell out every
    # setting: the committed model's as the current training config writes it, and each
    # alternative's with the same keys.
    import json

    from cxrlib.core.metrics import read_metrics
    from cxrlib.train.config import TrainConfig

    models = Path(__file__).resolve().parents[2] / "models"
    meta = json.loads((models / "cxr_classifier.json").read_text())
    tc = meta["train_config"]
    assert TrainConfig.model_validate(tc).model_dump(mode="json") == tc
    assert meta["preprocess"] == tc["preprocess"]
    alternatives = read_metrics(models / "cxr_classifier.metrics.json").alternatives
    assert alternatives
    for alt in alternatives.values():
        assert alt.train_config.keys() == tc.keys()
        assert alt.train_config["augment"].keys() == tc["augment"].keys()
        assert alt.preprocess == alt.train_config["preprocess"]
        assert alt.preprocess.keys() == tc["preprocess"].keys()
    # The reseeded copy among them is told apart from the rivals by its recipe alone.
    seeds = {name: comparison.reseeded(meta, alt) for name, alt in alternatives.items()}
    assert {name: s for name, s in seeds.items() if s is not None} == {"the same recipe, seed 1": 1}


def test_an_alternative_scored_before_the_split_changed_is_left_out():
    metrics = {
        "splits": {"test": {"n": 2428, "balanced_accuracy": 0.883, "per_class": {}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.35}},
        "alternatives": {
            "old split": {**_alternative(0.92, 0.46), "n": 2211},
            "this split": {**_alternative(0.90, 0.40), "n": 2428},
        },
    }
    assert [r.name for r in comparisons({}, metrics)] == ["this app's model", "this split"]

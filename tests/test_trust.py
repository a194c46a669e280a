"""cxrlib.describe.trust: the shortcut audit's tables, the comparison and the track record."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from saved_metrics import METHODS_SECTION, metrics_with

from cxrlib.describe import trust


def test_ablation_table_rows_are_the_three_image_versions():
    def scores(bal: float) -> dict:
        return {
            "balanced_accuracy": bal,
            "accuracy": bal - 0.01,
            "macro_f1": bal - 0.02,
            "sensitivity": {"covid": bal + 0.01, "normal": bal},
        }

    section = {"original": scores(0.9), "lungs_erased": scores(0.4), "chance": 1 / 3}
    table = trust.ablation_table(section)
    # Missing versions (no lungs-only run here) are left out, not shown empty.
    assert list(table.index) == ["original images", "lungs erased"]
    assert list(table.columns) == [
        "balanced accuracy",
        "accuracy",
        "macro-F1",
        "covid sensitivity",
        "normal sensitivity",
    ]
    assert table.loc["lungs erased", "balanced accuracy"] == 0.4
    assert table.loc["original images", "covid sensitivity"] == pytest.approx(0.91)
    assert trust.ablation_table({"chance": 1 / 3}).empty


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
    table = trust.loso_table(section)
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
    assert "as this app scores an upload" in trust.describe_loso_scoring(section)
    one_view = {"sources": {"cxnet": section["sources"]["cxnet"]}}
    assert "scored on the image alone" in trust.describe_loso_scoring(one_view)
    assert trust.loso_table({"sources": {}}).empty


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
            "figures": {"per_class_accuracy": {"normal": 0.25}, "support": {"normal": 8}},
            "empty": {"per_class_accuracy": {}},
        },
    }
    nih, other, figures = trust.describe_loso(section)
    # A share of a handful of images says how many.
    assert "**25%** of its normal (2 of 8 images)" in figures
    assert nih.startswith("Trained without the adult NIH Clinical Center images (14 epochs)")
    assert "**62%** of its normal (AUC 0.56) and **8%** of its pneumonia (AUC 0.63)" in nih
    assert nih.endswith("91% balanced accuracy on the other sources' internal test images.")
    # An unnamed source keeps its id; no AUC and no internal figure, no words for them.
    assert (
        other == "Trained without the somewhere images (14 epochs), it found **75%** of its covid."
    )
    assert trust.describe_loso({"sources": {}}) == []


def test_track_record_of_an_answer():
    metrics = metrics_with(
        {
            ("nih", "pneumonia"): {"normal": 12, "pneumonia": 18},  # 40% answered normal
            ("kermany", "normal"): {"normal": 21, "pneumonia": 4},  # 16%: under 20%
            ("kermany", "pneumonia"): {"normal": 4, "pneumonia": 21},  # 16%: under 20%
            ("cxnet", "covid"): {"normal": 10},  # all of them, but a group of 10
        },
        loso={"a": {"accuracy": 0.4, "with_views": {"accuracy": 0.5}}, "b": {"accuracy": 0.7}},
    )
    metrics["loso"]["schedule"] = {"epochs": 3, "steps_per_epoch": 120}
    r = trust.track_record(metrics, "normal")
    assert (r.calls, r.right) == (12 + 21 + 4 + 10, 21)
    assert r.confusions == (("nih", "pneumonia", 12, 30),)
    # The views-averaged held-out accuracy where recorded, as the app predicts.
    assert r.held_out_accuracy == pytest.approx(0.6) and r.held_out_sources == 2
    lines = trust.describe_track_record(r)
    assert "**45%** of its 'normal' answers were right (21 of 47)" in lines[0]
    assert "right on **60%** of the left-out images" in lines[1] and "2 sources" in lines[1]
    assert "shortened to 3 epochs of 120 steps" in lines[1]
    assert lines[2] == (
        "Known confusion: it also answered 'normal' for 12 of 30 adult NIH Clinical Center "
        "pneumonia images in the test split."
    )
    p = trust.track_record(metrics, "pneumonia")
    assert (p.calls, p.right, p.confusions) == (18 + 4 + 21, 18 + 21, ())
    assert trust.track_record(metrics, "other") is None
    assert trust.track_record(None, "normal") is None
    without_loso = trust.track_record(
        metrics_with({("nih", "normal"): {"normal": 3}}, {}), "normal"
    )
    assert without_loso.held_out_accuracy is None
    assert len(trust.describe_track_record(without_loso)) == 1
    assert r.missed_elsewhere == ()  # no full-length runs recorded


def test_track_record_warns_of_a_class_missed_at_a_held_out_hospital():
    metrics = metrics_with({("nih", "normal"): {"normal": 3}}, {})
    metrics["loso_full"] = {
        "sources": {
            "nih": {
                "per_class_accuracy": {"normal": 0.60, "pneumonia": 0.10},
                # As the app predicts: these figures win over the one-view ones.
                "with_views": {"per_class_accuracy": {"normal": 0.62, "pneumonia": 0.08}},
            },
            "radiography": {"per_class_accuracy": {"covid": 0.80, "normal": 0.26}},
        }
    }
    normal = trust.track_record(metrics, "normal")
    # A disease missed matters to a 'normal' answer (its own class, normal, does not).
    assert normal.missed_elsewhere == (("nih", "pneumonia", 0.08),)
    assert trust.describe_track_record(normal)[-1] == (
        "Trained in full without the adult NIH Clinical Center images, it found only **8%** "
        "of their pneumonia: at a hospital it has not seen, a 'normal' answer does not rule "
        "pneumonia out."
    )
    # Normal chests missed matter to a disease answer; another disease missed does not.
    covid = trust.track_record(metrics, "covid")
    assert covid.missed_elsewhere == (("radiography", "normal", 0.26),)
    assert trust.describe_track_record(covid)[-1].endswith(
        "it called only **26%** of their normal chest X-rays normal: at a hospital it has "
        "not seen, a 'covid' answer may be a normal chest X-ray."
    )
    assert trust.track_record(metrics, "pneumonia").missed_elsewhere == covid.missed_elsewhere
    # Two held-out sources that miss the same class: one line, the most missed first.
    metrics["loso_full"]["sources"]["kermany"] = {"per_class_accuracy": {"normal": 0.1}}
    lines = trust.describe_track_record(trust.track_record(metrics, "pneumonia"))
    assert lines[-1] == (
        "Trained in full without the paediatric Guangzhou images, it called only **10%** of "
        "their normal chest X-rays normal; without the COVID-19 Radiography Database images, "
        "**26%**: at a hospital it has not seen, a 'pneumonia' answer may be a normal chest X-ray."
    )
    del metrics["loso_full"]["sources"]["kermany"]
    # A share of a handful of images is not quoted (where the count was recorded).
    metrics["loso_full"]["sources"]["figures"] = {
        "per_class_accuracy": {"normal": 0.125, "pneumonia": 0.18},
        "support": {"normal": 8, "pneumonia": 71},
    }
    assert ("figures", "pneumonia", 0.18) in trust.track_record(metrics, "normal").missed_elsewhere
    assert "figures" not in {s for s, _, _ in trust.track_record(metrics, "covid").missed_elsewhere}
    del metrics["loso_full"]["sources"]["figures"]
    # Found half the time or more: no warning.
    metrics["loso_full"]["sources"]["radiography"]["per_class_accuracy"]["normal"] = 0.5
    assert trust.track_record(metrics, "covid").missed_elsewhere == ()


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
    rows = trust.comparisons(meta, metrics)
    # The committed model first, then the alternatives by name; another split is left out.
    assert [r.name for r in rows] == ["this app's model", "level", "masked", "whole"]
    assert rows[0].described == "the lung box, MobileNetV2 (width 0.5), 160 px"
    assert rows[3].described == "the whole image, ResNet (64 filters first), 128 px"
    assert (rows[0].balanced_accuracy, rows[0].erased_covid_auc) == (0.912, 0.525)
    table = trust.comparison_table(rows)
    assert table.loc["whole", "lungs erased: bal. accuracy"] == 0.653
    assert table.loc["this app's model", "COVID sensitivity"] == 0.895
    assert table.loc["whole", "parameters"] == "2.85 M"
    ours, level, masked, whole = trust.describe_comparisons(rows)
    assert ours.startswith("**This app's model** (the lung box") and "chance 33%" in ours
    assert "91.2% balanced accuracy" in ours and "35% with the lungs erased" in ours
    # Higher inside and well above the committed model with the lungs erased: read outside.
    assert "93.3% balanced accuracy" in whole and "65% with the lungs erased" in whole
    assert "30 points higher with the lungs erased" in whole and "Not the model used" in whole
    # Higher, but within the margin with the lungs erased: the ablation cannot tell.
    assert "does not tell it apart" in level and "Not the model used" not in level
    assert "88.7% balanced accuracy" in masked and "Lower on the internal test split" in masked
    # Why reading outside the lungs counts against a model: said once, where one does.
    assert [r.name for r in trust.reads_outside(rows)] == ["whole"]
    assert "new hospital" in trust.comparison_note(rows)
    assert trust.comparison_note([r for r in rows if r.name != "whole"]) is None
    # Nothing to compare with: no lines, no rows.
    assert trust.comparisons(meta, {"splits": metrics["splits"]}) == []
    assert trust.describe_comparisons(rows[:1]) == []


def _external(
    called: dict[str, int], unseen: dict[str, int] | None = None, confident: int = 0
) -> dict:
    """An ``external`` section whose collection got ``called[c]`` answers of each class,
    ``confident`` of its COVID answers with a probability of 0.95."""
    from cxrlib.evaluate.external import answers

    names = ("covid", "normal", "pneumonia")

    def subset(counts):
        pred = np.repeat([names.index(c) for c in counts], list(counts.values()))
        probs = np.full((len(pred), 3), 0.1)
        probs[np.arange(len(pred)), pred] = 0.8
        probs[np.flatnonzero(pred == 0)[:confident]] = [0.95, 0.03, 0.02]
        return answers(probs, names)

    subsets = {"all": subset(called)}
    if unseen:
        subsets["segmenter_unseen"] = subset(unseen)
    return {
        "views": 9,
        "collections": {
            "openist_normal": {
                "name": "OpenIST",
                "description": "normal adults of a teaching website",
                "label": "normal",
                "population": "adult",
                "n": sum(called.values()),
                "subsets": subsets,
                "input_check_refused": 1,
                "duplicates": {"found": 0, "highest_similarity": 0.953},
            }
        },
    }


def test_external_check_in_words_and_as_a_table():
    section = _external({"normal": 159, "covid": 116}, {"normal": 47, "covid": 36}, confident=33)
    (line,) = trust.describe_external(section)
    assert line.startswith("**OpenIST** (normal adults of a teaching website): of its 275 normal")
    # Its own class first, then the others most often given; a class never given is left out.
    assert "'normal' for **58%** (95% CI 52-64%) and 'covid' for **42%** (95% CI 36-48%)" in line
    assert "pneumonia" not in line
    assert "averaged over 9 views" in line and "highest thumbnail correlation 0.95" in line
    assert "12% got a wrong answer with a probability of 90% or more." in line  # 33 of 275
    assert line.endswith("The input check refused 1 of them.")
    assert (
        "wrong answer" not in trust.describe_external(_external({"normal": 159, "covid": 116}))[0]
    )
    table = trust.external_table(section)
    assert list(table.index) == [
        ("OpenIST (normal)", "all"),
        ("OpenIST (normal)", "not in the segmenter's training"),
    ]
    assert table.loc[("OpenIST (normal)", "all"), "called covid"] == pytest.approx(
        116 / 275, abs=1e-4
    )
    assert table["n"].tolist() == [275, 83]
    assert trust.describe_external({}) == [] and trust.external_table({}).empty
    # A record without its counts is skipped, not a crash.
    assert trust.describe_external({"collections": {"x": {"name": "X"}}}) == []


def test_track_record_quotes_an_outside_collection_given_this_answer():
    # Internally: 3 confident covid answers (2 right), 1 unsure one.
    metrics = metrics_with({("rad", "covid"): {"covid": 3}, ("rad", "normal"): {"covid": 1}}, {})
    preds = metrics["splits"]["test"]["predictions"]
    preds[:] = [dict(r) for r in preds]  # metrics_with repeats one dict per group
    for r, top in zip(preds, (0.95, 0.95, 0.6, 0.92)):
        r["probs"] = [top, 1 - top, 0.0]
    metrics["external"] = _external({"normal": 159, "covid": 116}, confident=33)
    covid = trust.track_record(metrics, "covid")
    assert (covid.confident_calls, covid.confident_right) == (3, 2)
    (outside,) = covid.called_elsewhere
    assert (outside.name, outside.people, outside.n, outside.share) == (
        "OpenIST",
        "normal adult",
        275,
        0.4218,
    )
    assert outside.confident_share == 0.12 and outside.confident_at == 0.9
    assert (
        "Of 275 normal adult chest X-rays from a collection no training image came from "
        "(OpenIST), it answered 'covid' for **42%**, for **12%** with a probability of 90% or "
        "more. On the internal test split its 'covid' answers that sure were right 67% of the "
        "time (2 of 3): outside the hospitals it learnt from, a high probability is no guarantee."
    ) in trust.describe_track_record(covid)
    # Without confident answers recorded, the share alone.
    metrics["external"] = _external({"normal": 159, "covid": 116})
    lines = trust.describe_track_record(trust.track_record(metrics, "covid"))
    assert lines[1].endswith("(OpenIST), it answered 'covid' for **42%**.")
    # Its own class is no warning, and a share under a fifth is not quoted.
    assert trust.track_record(metrics, "normal").called_elsewhere == ()
    metrics["external"] = _external({"normal": 240, "pneumonia": 35})
    assert trust.track_record(metrics, "pneumonia").called_elsewhere == ()


def test_the_comparison_says_where_an_alternative_did_better_outside():
    meta = {"preprocess": {"size": 160, "lung_crop": True}, "train_config": {"arch": "mobilenetv2"}}
    metrics = {
        "splits": {"test": {"balanced_accuracy": 0.91, "per_class": {}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.35}},
        "external": _external({"normal": 159, "covid": 116}),
        "alternatives": {
            "whole": {
                **_alternative(0.92, 0.46),
                "external": _external({"normal": 187, "covid": 88}),
            },
            "close": {
                **_alternative(0.90, 0.36),
                "external": _external({"normal": 165, "covid": 110}),
            },
            "unmeasured": _alternative(0.93, 0.60),
        },
    }
    rows = {r.name: r for r in trust.comparisons(meta, metrics)}
    assert rows["this app's model"].outside == (("OpenIST", "normal", 0.5782),)
    assert rows["unmeasured"].outside == ()
    lines = {line.split("**")[1]: line for line in trust.describe_comparisons(list(rows.values()))}
    assert lines["whole"].endswith(
        "On OpenIST's normal images, which neither model trained on, it did better: 68% called "
        "normal, against 58%."
    )
    assert "OpenIST" not in lines["close"]  # 60% against 58%: within the margin
    assert "OpenIST" not in lines["unmeasured"]
    table = trust.comparison_table(list(rows.values()))
    assert "points the other way" in trust.comparison_note(list(rows.values()))
    # Only where an alternative did better outside does the note say so.
    unmeasured = dataclasses.replace(rows["whole"], outside=())
    others = [r for r in rows.values() if r.name != "whole"]
    assert "points the other way" not in trust.comparison_note([*others, unmeasured])
    assert list(table.columns)[3] == "OpenIST normals called normal"  # before the rest
    column = table["OpenIST normals called normal"]
    assert column["whole"] == pytest.approx(0.68) and np.isnan(column["unmeasured"])


def test_a_reseeded_copy_of_the_recipe_is_shown_as_chance_not_as_a_rival():
    recipe = {"arch": "mobilenetv2", "alpha": 0.5, "augment": {"p_jpeg": 0.2}}
    pre = {"size": 160, "lung_crop": True}
    meta = {"preprocess": pre, "train_config": {**recipe, "seed": 0}}
    # Recorded later, the copy spells out settings the committed JSON predates, at their
    # old values: still the same recipe.
    later = {**recipe, "seed": 1, "ema": 0.0, "adversary": 0.0, "sampling_floor": 1}
    later["augment"] = {"p_jpeg": 0.2, "p_tone": 0.0}
    copy = {**_alternative(0.93, 0.50), "preprocess": {**pre, "lung_mask": False}}
    copy["train_config"] = later
    copy["external"] = _external({"normal": 176, "covid": 99})
    assert trust.reseeded(meta, copy) == 1
    # Anything else that differs makes it another recipe; so does the same seed.
    assert trust.reseeded(meta, {**copy, "train_config": {**later, "ema": 0.998}}) is None
    assert trust.reseeded(meta, {**copy, "preprocess": {**pre, "lung_margin": 0.12}}) is None
    other_aug = {**later, "augment": {"p_jpeg": 0.2, "p_tone": 0.5}}
    assert trust.reseeded(meta, {**copy, "train_config": other_aug}) is None
    assert trust.reseeded(meta, {**copy, "train_config": {**later, "seed": 0}}) is None
    assert trust.reseeded(meta, _alternative(0.93, 0.5)) is None
    # Trained through another Keras backend it is not chance alone; through the one the
    # committed model's record predates (TensorFlow), it still is.
    assert trust.reseeded(meta, {**copy, "keras_backend": "jax"}) is None
    assert trust.reseeded(meta, {**copy, "keras_backend": "tensorflow"}) == 1
    metrics = {
        "splits": {"test": {"balanced_accuracy": 0.912, "per_class": {}}},
        "ablation": {"split": "test", "lungs_erased": {"balanced_accuracy": 0.352}},
        "external": _external({"normal": 159, "covid": 116}),
        "alternatives": {"seed 1": copy, "whole": _alternative(0.93, 0.50)},
    }
    rows = {r.name: r for r in trust.comparisons(meta, metrics)}
    assert rows["seed 1"].reseeded == 1 and rows["whole"].reseeded is None
    lines = {line.split("**")[1]: line for line in trust.describe_comparisons(list(rows.values()))}
    # Higher inside, higher erased, better outside: for a rival all three would be said;
    # for a reseeded copy they are what chance does.
    assert "trained again with seed 1: how far each figure moves by chance alone" in lines["seed 1"]
    assert "64% of OpenIST's normal images called normal" in lines["seed 1"]
    assert "did better" not in lines["seed 1"] and "Not the model used" not in lines["seed 1"]
    assert "Not the model used" in lines["whole"]
    assert [r.name for r in trust.reads_outside(list(rows.values()))] == ["whole"]
    # Where a rival did better outside, the note says how far the seed alone moved it there.
    better = {
        **metrics["alternatives"]["whole"],
        "external": _external({"normal": 187, "covid": 88}),
    }
    metrics["alternatives"]["whole"] = better
    note = trust.comparison_note(trust.comparisons(meta, metrics))
    assert "points the other way" in note
    assert note.endswith(
        "moved that collection's figure by 6 points: differences of that size there are chance."
    )
    # A copy that moved it by no more than the margin adds nothing.
    copy["external"] = _external({"normal": 165, "covid": 110})
    assert "another seed" not in trust.comparison_note(trust.comparisons(meta, metrics))


def test_methods_table():
    t = trust.methods_table(METHODS_SECTION)
    assert list(t.index) == ["Grad-CAM", "LayerCAM", "SmoothGrad"]
    shared = t["overlap with the other methods (IoU)"]
    assert shared.tolist() == pytest.approx([0.5, 0.55, 0.25])  # mean of each one's pairs
    assert t["random weights: rank correlation"].tolist() == [0.01, 0.32, 0.59]
    assert t["range over the draws"].iloc[2] == "0.43 to 0.70"
    assert t["range over the draws"].iloc[:2].isna().all()
    assert trust.methods_table({}).empty


def test_describe_methods_puts_each_method_in_its_band():
    lines = trust.describe_methods(METHODS_SECTION)
    assert "On 200 images of the test split" in lines[0] and "**55%**" in lines[0]
    check = lines[1]
    assert "changed completely for Grad-CAM (0.01)" in check
    assert "changed partly for LayerCAM (0.32)" in check
    assert "changed little for SmoothGrad (0.59)" in check
    assert trust.image_driven_methods(METHODS_SECTION) == [("SmoothGrad", 0.59)]
    assert trust.describe_methods({}) == []

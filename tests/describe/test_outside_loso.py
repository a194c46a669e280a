"""cxrlib.describe.outside_text: leave one source out as a table and in words."""

from __future__ import annotations

import numpy as np
from saved_metrics import section as read_section

from cxrlib.describe import outside_text


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
    table = outside_text.loso_table(read_section("loso", section))
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
    assert "as this app scores an upload" in outside_text.describe_loso_scoring(
        read_section("loso", section)
    )
    one_view = {"sources": {"cxnet": section["sources"]["cxnet"]}}
    assert "scored on the image alone" in outside_text.describe_loso_scoring(
        read_section("loso", one_view)
    )
    assert outside_text.loso_table(read_section("loso", {"sources": {}})).empty


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
    nih, other, figures = outside_text.describe_loso(read_section("loso", section))
    # A share of a handful of images says how many.
    assert "**25%** of its normal (2 of 8 images)" in figures
    assert nih.startswith("Trained without the adult NIH Clinical Center images (14 epochs)")
    assert "**62%** of its normal (AUC 0.56) and **8%** of its pneumonia (AUC 0.63)" in nih
    assert nih.endswith("91% balanced accuracy on the other sources' internal test images.")
    # An unnamed source keeps its id; no AUC and no internal figure, no words for them.
    assert (
        other == "Trained without the somewhere images (14 epochs), it found **75%** of its covid."
    )
    assert outside_text.describe_loso(read_section("loso", {"sources": {}})) == []


def test_the_unseen_adult_line_prefers_the_full_recipe_and_reads_like_its_list():
    from saved_metrics import typed

    def held_out(pneumonia: float) -> dict:
        return {"sources": {"nih": {"per_class_accuracy": {"pneumonia": pneumonia}}}}

    short_only = typed({"loso": held_out(0.3)})
    both = typed(
        {"loso": held_out(0.3), "loso_full": {**held_out(0.1), "schedule": {"epochs": 14}}}
    )
    (short,) = outside_text.describe_unseen_adults(short_only)
    assert "**30%** of its pneumonia" in short
    (line,) = outside_text.describe_unseen_adults(both)
    assert "(14 epochs), it found **10%** of its pneumonia" in line
    # The same sentence as the Outside data tab's list of held-out sources.
    assert line in outside_text.describe_loso(both.loso_full)
    assert outside_text.describe_unseen_adults(typed({"loso": {"sources": {}}})) == []
    # Each adult source held out gets its line, nih first; a non-adult source none.
    full = held_out(0.1)
    full["sources"]["quex"] = {"per_class_accuracy": {"pneumonia": 0.6}}
    full["sources"]["kermany"] = {"per_class_accuracy": {"pneumonia": 0.9}}
    lines = outside_text.describe_unseen_adults(typed({"loso_full": full}))
    assert [("NIH" in x, "COVID-QU-Ex" in x) for x in lines] == [(True, False), (False, True)]
    assert "**60%** of its pneumonia" in lines[1]

"""cxrlib.describe.track_record: how the model's past answers of one class turned out."""

from __future__ import annotations

import pytest
from saved_metrics import external, metrics_with, typed

from cxrlib.describe import track_record


def record(metrics: dict | None, label: str) -> track_record.TrackRecord | None:
    """The track record of a hand-made metrics file, read through the schema."""
    return track_record.track_record(None if metrics is None else typed(metrics), label)


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
    r = record(metrics, "normal")
    assert (r.calls, r.right) == (12 + 21 + 4 + 10, 21)
    assert r.confusions == (("nih", "pneumonia", 12, 30),)
    # The views-averaged held-out accuracy where recorded, as the app predicts.
    assert r.held_out_accuracy == pytest.approx(0.6) and r.held_out_sources == 2
    lines = track_record.describe_track_record(r)
    assert "**45%** of its 'normal' answers were right (21 of 47)" in lines[0]
    assert "right on **60%** of the left-out images" in lines[1] and "2 sources" in lines[1]
    assert "shortened to 3 epochs of 120 steps" in lines[1]
    assert lines[2] == (
        "Known confusion: it also answered 'normal' for 12 of 30 adult NIH Clinical Center "
        "pneumonia images in the test split."
    )
    p = record(metrics, "pneumonia")
    assert (p.calls, p.right, p.confusions) == (18 + 4 + 21, 18 + 21, ())
    assert record(metrics, "other") is None
    assert record(None, "normal") is None
    without_loso = record(metrics_with({("nih", "normal"): {"normal": 3}}, {}), "normal")
    assert without_loso.held_out_accuracy is None
    assert len(track_record.describe_track_record(without_loso)) == 1
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
    normal = record(metrics, "normal")
    # A disease missed matters to a 'normal' answer (its own class, normal, does not).
    assert normal.missed_elsewhere == (("nih", "pneumonia", 0.08),)
    assert track_record.describe_track_record(normal)[-1] == (
        "Trained in full without the adult NIH Clinical Center images, it found only **8%** "
        "of their pneumonia: at a hospital it has not seen, a 'normal' answer does not rule "
        "pneumonia out."
    )
    # Normal chests missed matter to a disease answer; another disease missed does not.
    covid = record(metrics, "covid")
    assert covid.missed_elsewhere == (("radiography", "normal", 0.26),)
    assert track_record.describe_track_record(covid)[-1].endswith(
        "it called only **26%** of their normal chest X-rays normal: at a hospital it has "
        "not seen, a 'covid' answer may be a normal chest X-ray."
    )
    assert record(metrics, "pneumonia").missed_elsewhere == covid.missed_elsewhere
    # Two held-out sources that miss the same class: one line, the most missed first.
    metrics["loso_full"]["sources"]["kermany"] = {"per_class_accuracy": {"normal": 0.1}}
    lines = track_record.describe_track_record(record(metrics, "pneumonia"))
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
    assert ("figures", "pneumonia", 0.18) in record(metrics, "normal").missed_elsewhere
    assert "figures" not in {s for s, _, _ in record(metrics, "covid").missed_elsewhere}
    del metrics["loso_full"]["sources"]["figures"]
    # Found half the time or more: no warning.
    metrics["loso_full"]["sources"]["radiography"]["per_class_accuracy"]["normal"] = 0.5
    assert record(metrics, "covid").missed_elsewhere == ()


def test_track_record_quotes_an_outside_collection_given_this_answer():
    # Internally: 3 confident covid answers (2 right), 1 unsure one.
    metrics = metrics_with({("rad", "covid"): {"covid": 3}, ("rad", "normal"): {"covid": 1}}, {})
    preds = metrics["splits"]["test"]["predictions"]
    preds[:] = [dict(r) for r in preds]  # metrics_with repeats one dict per group
    for r, top in zip(preds, (0.95, 0.95, 0.6, 0.92)):
        r["probs"] = [top, 1 - top, 0.0]
    metrics["external"] = external({"normal": 159, "covid": 116}, confident=33)
    covid = record(metrics, "covid")
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
    ) in track_record.describe_track_record(covid)
    # Without confident answers recorded, the share alone.
    metrics["external"] = external({"normal": 159, "covid": 116})
    lines = track_record.describe_track_record(record(metrics, "covid"))
    assert lines[1].endswith("(OpenIST), it answered 'covid' for **42%**.")
    # Its own class is no warning, and a share under a fifth is not quoted.
    assert record(metrics, "normal").called_elsewhere == ()
    metrics["external"] = external({"normal": 240, "pneumonia": 35})
    assert record(metrics, "pneumonia").called_elsewhere == ()

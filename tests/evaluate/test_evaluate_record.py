"""cxrlib.evaluate.cli: merging results into a model's metrics file."""

from __future__ import annotations

import json

import pytest


def test_a_recorded_loso_run_adds_its_sources_to_the_same_schedule():
    from cxrlib.evaluate.cli import merge_loso

    full = {"epochs": 14, "steps_per_epoch": 0}
    old = {"schedule": full, "sources": {"nih": {"accuracy": 0.35}}, "command": "run nih"}
    new = {"schedule": full, "sources": {"kermany": {"accuracy": 0.5}}, "command": "run kermany"}
    merged = merge_loso(old, new)
    assert merged["sources"] == {"nih": {"accuracy": 0.35}, "kermany": {"accuracy": 0.5}}
    assert merged["commands"] == ["run nih", "run kermany"] and merged["command"] == "run kermany"
    # A source run again takes the new result; the commands keep growing.
    again = merge_loso(merged, {**new, "sources": {"nih": {"accuracy": 0.4}}, "command": "again"})
    assert again["sources"]["nih"] == {"accuracy": 0.4} and "kermany" in again["sources"]
    assert again["commands"] == ["run nih", "run kermany", "again"]
    # Another schedule is another experiment: it replaces the section.
    short = {**new, "schedule": {"epochs": 3, "steps_per_epoch": 120}}
    assert merge_loso(old, short) == short
    assert merge_loso(None, new) == new


def test_a_section_is_merged_for_the_same_weights_and_replaces_other_weights(tmp_path):
    from cxrlib.evaluate.cli import record_sections

    model = tmp_path / "m.keras"
    path = record_sections(model, "aaa", {"manifest": "manifest.csv"})
    assert path == tmp_path / "m.metrics.json"
    ablation = {"lungs_erased": {"balanced_accuracy": 0.4}, "split": "test"}
    record_sections(model, "aaa", {"ablation": ablation})
    saved = json.loads(path.read_text())
    assert saved == {
        "manifest": "manifest.csv",
        "model": "m.keras",
        "weights_sha256": "aaa",
        "ablation": ablation,
    }
    # New weights: what was recorded for the old ones goes.
    record_sections(model, "bbb", {"ablation": ablation})
    assert "manifest" not in json.loads(path.read_text())


def test_a_section_that_breaks_the_schema_is_not_written(tmp_path):
    from cxrlib.core.metrics import MetricsSchemaError
    from cxrlib.evaluate.cli import record_sections

    model = tmp_path / "m.keras"
    path = record_sections(model, "aaa", {"manifest": "manifest.csv"})
    before = path.read_text()
    with pytest.raises(MetricsSchemaError) as e:
        record_sections(model, "aaa", {"ablation": {"lungs_erased": {"accuracy": 0.4}}})
    assert "ablation.lungs_erased.balanced_accuracy" in str(e.value)
    assert "not written" in str(e.value)
    assert path.read_text() == before


def test_recorded_loso_sources_are_kept_when_another_source_is_recorded(tmp_path):
    from cxrlib.evaluate.cli import record_sections

    model = tmp_path / "m.keras"
    schedule = {"epochs": 14, "steps_per_epoch": 0}
    first = {"schedule": schedule, "sources": {"nih": {"accuracy": 0.35}}, "command": "a"}
    record_sections(model, "aaa", {"loso_full": first})
    second = {"schedule": schedule, "sources": {"cxnet": {"accuracy": 0.6}}, "command": "b"}
    record_sections(model, "aaa", {"loso_full": second})
    saved = json.loads((tmp_path / "m.metrics.json").read_text())["loso_full"]
    assert set(saved["sources"]) == {"nih", "cxnet"} and saved["commands"] == ["a", "b"]


def test_the_committed_metrics_file_reads_and_writes_back_unchanged(tmp_path):
    import shutil
    from pathlib import Path

    from cxrlib.evaluate.cli import record_sections

    committed = Path(__file__).resolve().parents[2] / "models" / "cxr_classifier.metrics.json"
    copy = tmp_path / "cxr_classifier.metrics.json"
    shutil.copyfile(committed, copy)
    before = json.loads(copy.read_text())
    record_sections(tmp_path / "cxr_classifier.keras", before["weights_sha256"], {})
    assert json.loads(copy.read_text()) == before

"""cxrlib.core.metrics: the committed metrics file through the schema, and its errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cxrlib.core.errors import CxrError
from cxrlib.core.metrics import (
    Metrics,
    MetricsSchemaError,
    Split,
    read_metrics,
    write_metrics,
)

COMMITTED = Path(__file__).resolve().parents[2] / "models" / "cxr_classifier.metrics.json"


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(COMMITTED.read_text())


def test_the_committed_metrics_file_reads_through_the_schema():
    m = read_metrics(COMMITTED)
    assert isinstance(m, Metrics) and isinstance(m.test, Split)
    test = m.test
    assert test.n == 2428 and test.balanced_accuracy == pytest.approx(0.8877)
    assert test.confusion_matrix is not None
    assert test.confusion_matrix.labels == ("covid", "normal", "pneumonia")
    assert sum(map(sum, test.confusion_matrix.matrix)) == test.n == len(test.predictions)
    assert test.per_class["covid"].sensitivity == pytest.approx(0.8927)
    assert m.ablation is not None and m.ablation.lungs_erased is not None
    assert m.ablation.lungs_erased.balanced_accuracy < test.balanced_accuracy
    # Per-method sections are keyed by method name, so a new method needs no new field.
    assert m.explain_methods is not None
    assert set(m.explain_methods.randomised) == set(m.explain_methods.methods)
    assert m.external is not None and m.external.collections["openist_normal"].label == "normal"
    assert m.loso_full is not None and m.loso_full.sources["nih"].as_predicted().n == 501
    # The committed file holds no key the schema does not declare.
    assert m.model_extra == {} and test.model_extra == {}


def _json(record) -> dict:
    return record.model_dump(mode="json", exclude_unset=True)


def test_write_of_read_gives_the_same_file_back(committed, tmp_path):
    m = read_metrics(committed)
    assert _json(m) == committed
    write_metrics(tmp_path / "m.json", m)
    # Key order kept too: keys come in the schema's order, which is the order the evaluate
    # commands write them in.
    assert (tmp_path / "m.json").read_text() == json.dumps(committed) + "\n"
    assert read_metrics(tmp_path / "m.json") == m


def test_absent_optional_sections_stay_absent():
    m = read_metrics({"splits": {"test": {"n": 3}}})
    assert m.ablation is None and m.alternatives == {} and m.test.predictions == ()
    assert _json(m) == {"splits": {"test": {"n": 3}}}
    # An explicit null of an optional key is written back as null.
    assert _json(read_metrics({"ablation": None})) == {"ablation": None}


@pytest.mark.parametrize(
    ("section", "old", "new", "key"),
    [
        (("splits", "test", "confusion_matrix"), "labels", "names", "splits.test.confusion_matrix.labels"),
        (("ablation", "lungs_erased"), "balanced_accuracy", "bal_acc", "ablation.lungs_erased.balanced_accuracy"),
        (("external", "collections", "openist_normal"), "label", None, "external.collections.openist_normal.label"),
        (("shortcuts", "source_probe", "normal"), "chance", None, "shortcuts.source_probe.normal.chance"),
        (("alternatives", "the same recipe, seed 1"), "lungs_erased", None, "alternatives.the same recipe, seed 1.lungs_erased"),
    ],
)  # fmt: skip
def test_a_renamed_or_missing_required_key_raises_a_clear_error(
    committed, tmp_path, section, old, new, key
):
    broken = copy.deepcopy(committed)
    record = broken
    for k in section:
        record = record[k]
    value = record.pop(old)
    if new:
        record[new] = value
    path = tmp_path / "broken.metrics.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(MetricsSchemaError) as err:
        read_metrics(path)
    assert isinstance(err.value, CxrError)
    assert err.value.key == key and err.value.source == str(path)
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)
    assert "required key is missing" in str(err.value)


def test_a_value_of_the_wrong_type_raises_naming_its_key():
    with pytest.raises(MetricsSchemaError, match=r"'splits\.test\.n'.*valid integer"):
        read_metrics({"splits": {"test": {"n": "many"}}})
    with pytest.raises(MetricsSchemaError, match=r"'splits\.test\.predictions\[1\]\.probs'"):
        read_metrics(
            {"splits": {"test": {"predictions": [{"path": "a", "probs": [1.0]}, {"path": "b"}]}}}
        )


def test_an_unknown_key_survives_the_round_trip(committed):
    data = copy.deepcopy(committed)
    data["new_section"] = {"anything": [1, 2]}
    data["splits"]["test"]["per_class"]["covid"]["youden"] = 0.81
    m = read_metrics(data)
    assert m.model_extra == {"new_section": {"anything": [1, 2]}}
    assert m.test.per_class["covid"].model_extra == {"youden": 0.81}
    out = _json(m)
    assert out == data and list(out) == list(data)

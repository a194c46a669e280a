"""cxrlib.app.model_files: the track record of an answer, from the loaded model's metrics file."""

from __future__ import annotations

import json
import os

from saved_metrics import METHODS_SECTION, metrics_with

from cxrlib.app.model_files import answer_record, randomisation_note
from cxrlib.app.resources import Resources


def test_answer_record_follows_the_metrics_file(tmp_path):
    res = Resources(model_path=tmp_path / "m.keras")
    assert answer_record(res, "normal") == []  # no metrics file: no box
    path = tmp_path / "m.metrics.json"
    path.write_text(json.dumps(metrics_with({("nih", "normal"): {"normal": 3}}, {})))
    assert "(3 of 3)" in answer_record(res, "normal")[0]
    path.write_text(json.dumps(metrics_with({("nih", "normal"): {"normal": 2, "covid": 2}}, {})))
    os.utime(path, (1, 1))  # a new version, whatever the clock's resolution
    assert "(2 of 2)" in answer_record(res, "normal")[0]
    assert answer_record(res, "covid")[0].count("0 of 2") == 1


def test_randomisation_note_needs_the_method_check(tmp_path):
    res = Resources(model_path=tmp_path / "m.keras")
    assert randomisation_note(res) is None
    metrics = metrics_with({("nih", "normal"): {"normal": 3}}, {})
    path = tmp_path / "m.metrics.json"
    path.write_text(json.dumps(metrics))
    assert randomisation_note(res) is None
    path.write_text(json.dumps({**metrics, "explain_methods": METHODS_SECTION}))
    os.utime(path, (2, 2))
    note = randomisation_note(res)
    assert note is not None and "SmoothGrad (0.59)" in note

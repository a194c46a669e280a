"""cxrlib.core.timings: stage times go to $CXR_TIMINGS only when it is set."""

from __future__ import annotations

import json
import time

from cxrlib.core import timings
from cxrlib.core.settings import SAMPLES_DIR
from cxrlib.infer.pipeline import decode


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_TIMINGS", raising=False)
    with timings.timed("decode"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_timed_block_appends_its_wall_and_cpu_seconds(tmp_path, monkeypatch):
    out = tmp_path / "t.jsonl"
    monkeypatch.setenv("CXR_TIMINGS", str(out))
    with timings.timed("gate"):
        time.sleep(0.05)  # waiting: wall time, no CPU time
    with timings.timed("views"):
        sum(i * i for i in range(200_000))
    gate, views = _lines(out)
    assert gate["stage"] == "gate" and views["stage"] == "views"
    assert gate["wall"] >= 0.05 and gate["cpu"] < 0.5 * gate["wall"]
    assert 0 < views["cpu"] <= views["wall"] + 0.01


def test_the_pipeline_times_its_decode(tmp_path, monkeypatch):
    out = tmp_path / "t.jsonl"
    monkeypatch.setenv("CXR_TIMINGS", str(out))
    decode((SAMPLES_DIR / "covid_cxnet_265.jpg").read_bytes())
    decode(b"not an image")  # refused files are timed too
    assert [r["stage"] for r in _lines(out)] == ["decode", "decode"]
    assert all(r["stage"] in timings.STAGES for r in _lines(out))

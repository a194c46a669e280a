"""cxrlib.serve.client and its wire format without a server: exact round trips, typed errors when down."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cxrlib.core.errors import ModelServerError
from cxrlib.core.net import free_port
from cxrlib.core.settings import SAMPLES_DIR
from cxrlib.infer.pipeline import GateVerdict, Models, analyse
from cxrlib.serve.client import RemoteAnalyser, build, decode, encode


def test_the_codec_gives_back_equal_arrays_tuples_and_dataclasses():
    import json

    rng = np.random.default_rng(0)
    value = {
        "heatmap": rng.random((7, 5), dtype=np.float32),
        "mask": rng.random((3, 4)) > 0.5,
        "names": ("covid", "normal"),
        "crop": None,
        "k": np.int64(2),
        "gate": GateVerdict(True, 0.25, ""),
    }
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["heatmap"].dtype == np.float32
    np.testing.assert_array_equal(back["heatmap"], value["heatmap"])
    np.testing.assert_array_equal(back["mask"], value["mask"])
    assert back["names"] == ("covid", "normal") and back["crop"] is None and back["k"] == 2
    assert build(GateVerdict, encode(value["gate"])) == value["gate"]


def test_a_server_that_is_down_is_a_model_server_error():
    down = RemoteAnalyser(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(ModelServerError, match="not reachable"):
        down.health()
    with pytest.raises(ModelServerError, match="not reachable"):
        analyse((SAMPLES_DIR / "covid_cxnet_265.jpg").read_bytes(), Models(remote=down))


def test_the_client_imports_neither_ray_nor_tensorflow():
    import subprocess

    code = (
        "import sys, cxrlib.serve.client; "
        "print(sorted(m for m in ('ray', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_app_falls_back_to_its_own_model_when_the_server_is_down(monkeypatch):
    from cxrlib.app.resources import load_resources

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CXR_MODEL_SERVER", url)
    res = load_resources()
    message = res.errors["model server"]
    assert url in message and "not reachable" in message and "make serve" in message
    assert "in this process" in message
    assert res.classifier is not None and res.explainer is not None


def test_a_server_that_stops_answering_is_a_typed_error_in_the_app():
    from cxrlib.app.resources import Resources
    from cxrlib.core.cache import LRUCache
    from cxrlib.core.errors import ModelServerError
    from cxrlib.infer.pipeline import decode, diagnose_image

    res = Resources(remote=RemoteAnalyser(f"http://127.0.0.1:{free_port()}", timeout=5))
    data = (SAMPLES_DIR / "covid_cxnet_265.jpg").read_bytes()
    with pytest.raises(ModelServerError, match="not reachable"):
        diagnose_image(res, decode(data), cache=LRUCache(), data=data)

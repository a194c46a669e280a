"""cxrlib.serve: the served diagnosis is the in-process one; a server that is down is a typed error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ray_procs import all_gone, started_by

from cxrlib.core.errors import ImageError
from cxrlib.core.net import free_port
from cxrlib.core.settings import SAMPLES_DIR
from cxrlib.infer.pipeline import Models, analyse
from cxrlib.predict.rows import load_models, score_items
from cxrlib.serve import deployment
from cxrlib.serve.client import RemoteAnalyser

ray = pytest.importorskip("ray")

# Ray, Serve, a replica loading three models, and the same models here: ~40-90 s on 2 cores.
pytestmark = pytest.mark.slow

SAMPLES = ["covid_cxnet_265.jpg", "normal_nih_00002576_008.jpg", "pneumonia_nih_00001200_000.jpg"]


@pytest.fixture(scope="module")
def server():
    """Serve on a local Ray of 2 CPUs; afterwards Serve and Ray are down, no process left."""
    assert not ray.is_initialized()
    url, ours = started_by(lambda: deployment.start(port=free_port(), num_cpus=2, max_batch_size=4))
    yield url
    deployment.stop()
    assert not ray.is_initialized()
    assert all_gone(list(ours)), "Ray processes are still running after shutdown"


@pytest.fixture(scope="module")
def models():
    return load_models()


def _same_diagnosis(got, want):
    assert got.class_names == want.class_names and got.view_names == want.view_names
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    np.testing.assert_allclose(got.uncertainty, want.uncertainty, atol=1e-5)
    np.testing.assert_allclose(got.view_probabilities, want.view_probabilities, atol=1e-5)
    assert got.heatmap.dtype == want.heatmap.dtype and got.heatmap.shape == want.heatmap.shape
    np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-4)
    assert (got.lung_mask != want.lung_mask).mean() < 1e-3
    for name in ("predicted_index", "target_index", "method", "focus_level", "model_crop"):
        assert getattr(got, name) == getattr(want, name), name
    assert got.lung_focus == pytest.approx(want.lung_focus, abs=1e-4)
    assert got.lung_area == pytest.approx(want.lung_area, abs=1e-3)


def test_served_diagnosis_equals_in_process(server, models):
    client = RemoteAnalyser(server)
    remote = Models(remote=client)
    assert client.health()["class_names"] == list(models.classifier.class_names)
    blobs = [(SAMPLES_DIR / n).read_bytes() for n in SAMPLES]
    # Sent at once, so the replica batches them.
    with ThreadPoolExecutor(len(blobs)) as pool:
        served = list(pool.map(lambda b: analyse(b, remote, "x.jpg"), blobs))
    for blob, got in zip(blobs, served, strict=True):
        want = analyse(blob, models, "x.jpg")
        assert got.decoded.sha256 == want.decoded.sha256
        np.testing.assert_array_equal(got.decoded.pixels, want.decoded.pixels)
        assert got.gate == want.gate
        _same_diagnosis(got.diagnosis, want.diagnosis)
    # Another method and class, as the Diagnose page asks for them.
    got = analyse(blobs[0], remote, "x.jpg", method="gradcampp", class_index=1).diagnosis
    _same_diagnosis(got, analyse(blobs[0], models, "x.jpg", "gradcampp", 1).diagnosis)
    assert got.target_index == 1


def test_a_bad_image_is_an_image_error_from_the_server(server):
    remote = Models(remote=RemoteAnalyser(server))
    with pytest.raises(ImageError):
        analyse(b"\x89PNG\r\n\x1a\n truncated", remote, "bad.png")
    with pytest.raises(ValueError, match="no-such-method"):
        analyse((SAMPLES_DIR / SAMPLES[0]).read_bytes(), remote, method="no-such-method")
    # A malformed request is the client's fault (400); an image the server refuses is 422.
    import requests

    body = (SAMPLES_DIR / SAMPLES[0]).read_bytes()
    bad = requests.post(f"{server}/analyse", params={"class_index": "two"}, data=body, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "ValueError"
    refused = requests.post(f"{server}/analyse", data=b"\x89PNG\r\n\x1a\n cut", timeout=60)
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "ImageError"


def test_the_app_sends_uploads_and_batches_to_the_server(server, models, monkeypatch):
    from cxrlib.app.batch import score_uploads
    from cxrlib.app.resources import load_resources
    from cxrlib.core.cache import LRUCache
    from cxrlib.infer.pipeline import check_input, decode, diagnose_image

    monkeypatch.setenv("CXR_MODEL_SERVER", server)
    res = load_resources()
    assert res.remote is not None and res.classifier is None and res.errors == {}
    assert res.can_diagnose and res.has_segmenter and res.device.startswith("model server")
    assert res.weights_sha256 == models.classifier.weights_sha256
    data = (SAMPLES_DIR / SAMPLES[1]).read_bytes()
    cache = LRUCache()
    decoded = decode(data, "x.jpg", cache=cache)
    want = analyse(data, models, "x.jpg")
    assert check_input(res, decoded, cache, data=data) == want.gate
    _same_diagnosis(diagnose_image(res, decoded, data=data, cache=cache), want.diagnosis)
    # The Batch page: the server's rows are the local engine's, bad file included.
    items = [("a.jpg", data), ("bad.png", b"not an image")]
    rows, csv_text = score_uploads(res, items, with_focus=True)
    names = list(models.classifier.class_names)
    local = score_items(items, models, focus=True)
    assert [r["file"] for r in rows] == ["a.jpg", "bad.png"] and rows[1]["error"]
    for got, exp in zip(rows, (r.as_dict(names) for r in local), strict=True):
        assert got.keys() == exp.keys()
        for k, v in exp.items():
            assert got[k] == (pytest.approx(v, abs=2e-4) if isinstance(v, float) else v), k
    assert csv_text.splitlines()[0].startswith("file,")


# The Diagnose page in a fresh interpreter that only has the model server: it shows the
# server's diagnosis, and neither TensorFlow nor Keras is ever imported.
_PAGE_SCRIPT = """
import sys
from app_helpers import new_app, texts
at = new_app().run()
at.switch_page("pages/diagnose.py").run()
with open({sample!r}, "rb") as f:
    at.file_uploader(key="diag_upload").set_value(("x.jpg", f.read(), "image/jpeg")).run()
assert not at.exception, at.exception
print("HEAVY", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
print("TEXT", texts(at).replace(chr(10), " | "))
"""


def test_the_diagnose_page_uses_the_server_without_tensorflow(server, models):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from cxrlib.app.texts import probability_headline

    tests = str(Path(__file__).resolve().parents[1])
    code = _PAGE_SCRIPT.format(sample=str(SAMPLES_DIR / SAMPLES[2]))
    path = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CXR_MODEL_SERVER": server, "CXR_NO_WARMUP": "1", "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["HEAVY"] == "[]"
    want = analyse((SAMPLES_DIR / SAMPLES[2]).read_bytes(), models, "x.jpg").diagnosis
    assert probability_headline(want) in lines["TEXT"]
    assert "did not answer" not in lines["TEXT"]

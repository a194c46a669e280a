"""``$CXR_MODEL``, ``$CXR_SEGMENTER`` and ``$CXR_OOD`` move the models of the app, the
batch scorer (``python -m cxrlib.predict``) and the model server, read when they load."""

from __future__ import annotations

import pytest

from cxrlib.core.errors import ModelError

VARIABLES = ("CXR_MODEL", "CXR_SEGMENTER", "CXR_OOD")


@pytest.fixture
def missing(monkeypatch, tmp_path, request):
    """The variable of the test pointed at a file that is not there; returns that path."""
    monkeypatch.delenv("CXR_MODEL_SERVER", raising=False)
    path = tmp_path / f"moved-{request.param.lower()}.bin"
    monkeypatch.setenv(request.param, str(path))
    return request.param, str(path)


@pytest.mark.parametrize("missing", VARIABLES, indirect=True)
def test_the_app_loads_from_the_variables(missing):
    from cxrlib.app.resources import load_resources

    variable, path = missing
    res = load_resources()
    component = {"CXR_MODEL": "classifier", "CXR_SEGMENTER": "segmenter", "CXR_OOD": "gate"}
    assert path in res.errors[component[variable]]


@pytest.mark.parametrize("missing", VARIABLES, indirect=True)
def test_predict_loads_from_the_variables(missing, tmp_path):
    from cxrlib.core.settings import SAMPLES_DIR
    from cxrlib.predict.cli import main

    _, path = missing
    image = next(SAMPLES_DIR.glob("*.jpg"))
    with pytest.raises((FileNotFoundError, ModelError), match=path):
        main([str(image), "--focus", "--out", str(tmp_path / "out.csv")])


@pytest.mark.parametrize("missing", VARIABLES, indirect=True)
def test_the_model_server_loads_from_the_variables(missing):
    from cxrlib.predict.rows import load_models

    _, path = missing
    with pytest.raises((FileNotFoundError, ModelError), match=path):
        load_models()


def test_evaluate_defaults_follow_the_variables(monkeypatch, tmp_path):
    from cxrlib.evaluate.cli import parse_args

    model, segmenter = tmp_path / "m.keras", tmp_path / "s.keras"
    monkeypatch.setenv("CXR_MODEL", str(model))
    monkeypatch.setenv("CXR_SEGMENTER", str(segmenter))
    a = parse_args(["audit", "--ablate"])
    assert (a.model, a.segmenter) == (str(model), str(segmenter))
    assert a.record_into == str(model.with_suffix(".metrics.json"))

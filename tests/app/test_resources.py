"""cxrlib.app.resources: loading the models once per process, never failing."""

from __future__ import annotations

from cxrlib.app import resources


def test_missing_models_are_reported_not_raised(tmp_path):
    res = resources.load_resources(tmp_path / "none.keras", tmp_path / "none_seg.keras")
    assert res.classifier is None and res.segmenter is None
    assert "classifier" in res.errors and "segmenter" in res.errors
    assert res.device == "CPU" or res.device.startswith("GPU: ")
    assert res.model_path == tmp_path / "none.keras" and res.explainer is None


def test_resources_are_loaded_once_per_paths(app_env):
    res = resources.get_resources()
    assert res.classifier is not None and res.explainer is not None
    assert resources.get_resources() is res
    assert resources.resources_ready() is res
    assert resources.resources_ready(app_env.with_name("other.keras")) is None

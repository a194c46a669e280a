"""Helpers and fixtures of the app tests, tests/test_privacy.py and the pipeline tests.

Imported by name (tests/ is on ``sys.path``: its conftest.py sits there); the
fixtures are registered for every test by tests/conftest.py.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
APP = ROOT / "app.py"
COMMITTED_SEGMENTER = ROOT / "models" / "lung_segmenter.keras"


def app_pages() -> list[tuple[str, str]]:
    """(script, title) of each page of ``app.PAGES``, in order (read from app.py, which
    cannot be imported outside ``streamlit run``)."""
    for node in ast.parse(APP.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "PAGES" for t in node.targets
        ):
            return [
                (call.args[0].value, next(k.value.value for k in call.keywords if k.arg == "title"))
                for call in node.value.elts
            ]
    raise AssertionError("app.py has no PAGES")


def png_of(sample: str) -> bytes:
    """A committed sample re-encoded as PNG, in memory."""
    buf = io.BytesIO()
    Image.open(SAMPLES / sample).convert("L").save(buf, format="PNG")
    return buf.getvalue()


def new_app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=180)


def texts(at) -> str:
    """All markdown, caption, alert and heading text of the current page, joined."""
    parts = []
    for kind in (
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "title",
        "subheader",
        "header",
    ):
        parts.extend(str(e.value) for e in getattr(at, kind))
    return "\n".join(parts)


@pytest.fixture(scope="session")
def app_model(tiny_model_path, cxr_dir, tmp_path_factory) -> Path:
    """A copy of the tiny fixture model with a metrics.json made by cxrlib.evaluate.metrics.

    The metrics are the tiny model's real predictions on 12 validation and 12 test
    images (4 per class), in the exact format ``evaluate metrics --record`` writes,
    plus audit sections (made-up numbers, real layout) so their display is exercised.
    """
    from cxrlib.evaluate.metrics import evaluate_manifest
    from cxrlib.infer.classifier import load_classifier

    out = tmp_path_factory.mktemp("app_model")
    model = out / "cxr_classifier.keras"
    shutil.copyfile(tiny_model_path, model)
    shutil.copyfile(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    m = pd.read_csv(cxr_dir / "manifest.csv", dtype=str, keep_default_na=False)
    parts = [
        m[(m.split == split) & (m.label == label)].head(4)
        for split in ("val", "test")
        for label in ("covid", "normal", "pneumonia")
    ]
    manifest = out / "manifest.csv"
    pd.concat(parts).to_csv(manifest, index=False)
    clf = load_classifier(model)
    metrics = {"model": model.name, "weights_sha256": clf.weights_sha256, "splits": {}}
    for split in ("val", "test"):
        metrics["splits"][split] = evaluate_manifest(
            clf, manifest, root=cxr_dir, split=split, n_boot=20
        )
    # Audit sections in the layout cxrlib.evaluate.audit writes; the numbers are made up (the
    # tiny model has no segmenter to audit with) and only exercise the pages.
    score = {
        "accuracy": 0.5,
        "balanced_accuracy": 0.5,
        "macro_f1": 0.4,
        "sensitivity": {"covid": 0.5, "normal": 0.6, "pneumonia": 0.4},
    }
    metrics["ablation"] = {
        "n": 12,
        "original": score,
        "lungs_erased": score,
        "lungs_only": score,
        "chance": 0.3333,
        "verdict": "Fixture verdict sentence.",
        "split": "test",
    }
    summary = {"n": 4, "mean": 0.55, "median": 0.5}
    metrics["explain"] = {
        "method": "gradcam",
        "fraction": 0.2,
        "n": 12,
        "lung_focus": summary,
        "lung_focus_per_class": {"covid": summary},
        "lung_focus_per_source": {"cxnet": summary},
        "faithfulness": {"drop_hot": 0.1, "drop_random": 0.05, "score": 0.05},
        "faithfulness_per_class": {"covid": {"drop_hot": 0.1, "drop_random": 0.05, "score": 0.05}},
        "split": "test",
    }
    metrics["loso"] = {
        "schedule": {"epochs": 1},
        "sources": {
            "kermany": {
                "n": 12,
                "accuracy": 0.5,
                "balanced_accuracy": 0.5,
                "per_class_accuracy": {"normal": 0.5},
                "internal_test_balanced_accuracy": 0.6,
            },
        },
    }
    model.with_suffix(".metrics.json").write_text(json.dumps(metrics))
    return model


@pytest.fixture(scope="session")
def segmenter_path(tmp_path_factory) -> Path:
    """The committed lung segmenter, or a path that does not exist (app degrades)."""
    if COMMITTED_SEGMENTER.exists():
        return COMMITTED_SEGMENTER
    return tmp_path_factory.mktemp("noseg") / "lung_segmenter.keras"


@pytest.fixture
def app_env(app_model, segmenter_path, monkeypatch) -> Path:
    """Points the app at the test model; no background warm-up thread."""
    monkeypatch.setenv("CXR_MODEL", str(app_model))
    monkeypatch.setenv("CXR_SEGMENTER", str(segmenter_path))
    monkeypatch.setenv("CXR_NO_WARMUP", "1")
    monkeypatch.delenv("CXR_DATA", raising=False)
    return app_model


@pytest.fixture
def heatmap_calls(monkeypatch) -> dict[str, int]:
    """Counts every heatmap computation of the explainer (fast path and tf-keras-vis path)."""
    from cxrlib.infer.explain import Explainer

    calls = {"n": 0}
    fast, raw = Explainer.fast_cams, Explainer.raw

    def counting_fast(self, *a, **k):
        calls["n"] += 1
        return fast(self, *a, **k)

    def counting_raw(self, *a, **k):
        calls["n"] += 1
        return raw(self, *a, **k)

    monkeypatch.setattr(Explainer, "fast_cams", counting_fast)
    monkeypatch.setattr(Explainer, "raw", counting_raw)
    return calls

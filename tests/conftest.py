"""Shared fixtures: paths to the shared datasets beside the checkout, and the app's models
(:mod:`app_helpers`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_helpers import app_env, app_model, heatmap_calls, segmenter_path  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CXR_SHARED", ROOT.parent / "shared"))
CXR_DIR = SHARED / "cxr"
LUNGS_DIR = SHARED / "lungs"
MODELS = ROOT / "models"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def cxr_dir() -> Path:
    if not (CXR_DIR / "manifest.csv").exists():
        pytest.skip(f"shared CXR data not found at {CXR_DIR}")
    return CXR_DIR


@pytest.fixture(scope="session")
def lungs_dir() -> Path:
    if not (LUNGS_DIR / "manifest.csv").exists():
        pytest.skip(f"shared lung data not found at {LUNGS_DIR}")
    return LUNGS_DIR


@pytest.fixture(scope="session")
def tiny_manifest(cxr_dir, tmp_path_factory) -> Path:
    """A manifest of 4 train and 2 val images per class from the shared data."""
    import pandas as pd

    m = pd.read_csv(cxr_dir / "manifest.csv", dtype=str, keep_default_na=False)
    parts = [
        m[(m.split == split) & (m.label == label)].head(n)
        for split, n in (("train", 4), ("val", 2))
        for label in ("covid", "normal", "pneumonia")
    ]
    path = tmp_path_factory.mktemp("tiny") / "manifest.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tiny_manifest, cxr_dir, tmp_path_factory) -> Path:
    """A 64 px small CNN trained for one step by the real training function."""
    from cxrlib.infer.preprocess import PreprocessConfig
    from cxrlib.train.classifier import train
    from cxrlib.train.config import TrainConfig

    out = tmp_path_factory.mktemp("tiny_model")
    cfg = TrainConfig(
        arch="small",
        epochs=1,
        steps_per_epoch=1,
        batch_size=8,
        preprocess=PreprocessConfig(size=64),
    )
    train(tiny_manifest, out, cfg, root=cxr_dir, verbose=0, cache=False)
    return out / "cxr_classifier.keras"

"""Shared fixtures: paths to the shared datasets beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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

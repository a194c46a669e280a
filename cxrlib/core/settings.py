"""Where things are: the repository root, the committed models, and the environment
variables that move them (:data:`ENV_VARS`, read at call time; relative to the root)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = Path("models/cxr_classifier.keras")
DEFAULT_SEGMENTER = Path("models/lung_segmenter.keras")
DEFAULT_GATE = Path("models/ood.npz")
DEFAULT_DATA_DIR = Path("../shared/cxr")
SAMPLES_DIR = ROOT / "samples"

#: Environment variable -> (default, what it changes).
ENV_VARS: dict[str, tuple[str, str]] = {
    "CXR_MODEL": (str(DEFAULT_MODEL), "the classifier the app loads"),
    "CXR_SEGMENTER": (str(DEFAULT_SEGMENTER), "the lung segmenter"),
    "CXR_OOD": (str(DEFAULT_GATE), "the fitted input gate"),
    "CXR_DATA": (str(DEFAULT_DATA_DIR), "the dataset (Validation page, gallery)"),
    "CXR_NO_WARMUP": ("", "1: do not load the models in the background at start"),
    "CXR_MODEL_SERVER": ("", "URL of a `python -m cxrlib.serve` server"),
    "CXR_TIMINGS": ("", "a file that collects the time of each stage (`benchmarks/load.py`)"),
    "CXR_PACS_URL": ("", "the PACS's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web"),
    "CXR_PACS_USER": ("", "the PACS user (HTTP Basic)"),
    "CXR_PACS_PASSWORD": ("", "that user's password"),
}

#: Settings that are secrets: never logged, shown, or handed on to other processes.
SECRET_ENV_VARS = frozenset({"CXR_PACS_PASSWORD"})


def resolve(path: str | os.PathLike[str]) -> Path:
    """A path as given if absolute, else relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else ROOT / p


def model_path() -> Path:
    """The classifier file: ``$CXR_MODEL`` or ``models/cxr_classifier.keras``."""
    return resolve(os.environ.get("CXR_MODEL") or DEFAULT_MODEL)


def segmenter_path() -> Path:
    """The lung segmenter file: ``$CXR_SEGMENTER`` or ``models/lung_segmenter.keras``."""
    return resolve(os.environ.get("CXR_SEGMENTER") or DEFAULT_SEGMENTER)


def gate_path() -> Path:
    """The input gate file: ``$CXR_OOD`` or ``models/ood.npz``."""
    return resolve(os.environ.get("CXR_OOD") or DEFAULT_GATE)


def data_dir() -> Path:
    """The shared CXR folder: ``$CXR_DATA`` or ``../shared/cxr`` beside the checkout."""
    return resolve(os.environ.get("CXR_DATA") or DEFAULT_DATA_DIR)


def warm_up_enabled() -> bool:
    """False when ``$CXR_NO_WARMUP`` is 1/true/yes (tests, benchmarks)."""
    return os.environ.get("CXR_NO_WARMUP", "").lower() not in ("1", "true", "yes")


def model_server() -> str:
    """``$CXR_MODEL_SERVER`` (a URL) or "" for the in-process model."""
    return os.environ.get("CXR_MODEL_SERVER", "").strip()


def pacs_url() -> str:
    """``$CXR_PACS_URL`` (a DICOMweb root) or "" when no PACS is configured."""
    return os.environ.get("CXR_PACS_URL", "").strip().rstrip("/")


def pacs_credentials() -> tuple[str, str]:
    """``($CXR_PACS_USER, $CXR_PACS_PASSWORD)``; empty strings when unset."""
    return os.environ.get("CXR_PACS_USER", ""), os.environ.get("CXR_PACS_PASSWORD", "")

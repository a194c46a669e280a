"""The classifier's files beside it: its JSON, its metrics file, its version in words."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cxrlib.core.metrics import Metrics, read_metrics


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The classifier's JSON (history, train_counts, preprocess, ...), or {}."""
    return read_json(Path(path).with_suffix(".json")) or {}


def model_metrics(path: str | os.PathLike[str]) -> Metrics | None:
    """``<model>.metrics.json`` read through its schema, or None when absent or not JSON
    (MetricsSchemaError when it breaks the schema)."""
    file = Path(path).with_suffix(".metrics.json")
    data = read_json(file)
    return None if data is None else read_metrics(data, str(file))


def model_version(meta: dict[str, Any], path: str | os.PathLike[str] | None = None) -> str:
    """A short human-readable version: name, architecture, input size, hash prefix."""
    name = Path(path).stem if path else "cxr_classifier"
    cfg = meta.get("train_config", {}) if isinstance(meta.get("train_config"), dict) else {}
    arch = cfg.get("arch", "")
    size = meta.get("input_size") or meta.get("preprocess", {}).get("size")
    sha = str(meta.get("weights_sha256", ""))[:12]
    parts = [str(arch or ""), f"{size} px" if size else "", f"sha256 {sha}" if sha else ""]
    return " · ".join([name, *(p for p in parts if p)])

"""The classifier's files beside it: its JSON, its metrics file, its version in words, and
what the metrics file says about one answer (its track record, and which heatmap methods hardly
depend on what the model learnt), read once per version of the file, since the Diagnose page
asks on every rerun."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlib.core.metrics import Metrics, read_metrics
from cxrlib.describe.audit_text import image_driven_note
from cxrlib.describe.track_record import describe_track_record, track_record

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.pipeline import Models


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


def _version(res: Models) -> tuple[Path, float] | None:
    """The loaded classifier's path and its metrics file's modification time, or None."""
    if res.model_path is None:
        return None
    try:
        return res.model_path, Path(res.model_path).with_suffix(".metrics.json").stat().st_mtime
    except OSError:
        return None


@functools.cache
def _metrics(model: Path, mtime: float) -> Metrics | None:
    return model_metrics(model)


@functools.cache
def _record(model: Path, mtime: float, label: str) -> tuple[str, ...]:
    record = track_record(_metrics(model, mtime), label)
    return tuple(describe_track_record(record)) if record else ()


def randomisation_note(res: Models) -> str | None:
    """For "Compare all methods": which methods' maps hardly changed when the network's
    weights were re-drawn at random (metrics file, ``explain_methods``), or None."""
    version = _version(res)
    metrics = _metrics(*version) if version else None
    if metrics is None or metrics.explain_methods is None:
        return None
    return image_driven_note(metrics.explain_methods)


def answer_record(res: Models, label: str) -> list[str]:
    """The track record, in words, of an answer ``label`` by the loaded classifier ([]
    without a metrics file)."""
    version = _version(res)
    return list(_record(*version, label)) if version else []

"""What the loaded classifier's metrics file says about one answer: its track record, and
which heatmap methods hardly depend on what the model learnt; read once per version of the
file, since the Diagnose page asks on every rerun."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from cxrlib.app.model_files import model_metrics
from cxrlib.core.metrics import Metrics
from cxrlib.describe.audit_text import image_driven_note
from cxrlib.describe.track_record import describe_track_record, track_record

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.pipeline import Models


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

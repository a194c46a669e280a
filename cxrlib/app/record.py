"""What the loaded classifier's metrics file says about one answer: its track record,
and which heatmap methods hardly depend on what the model learnt."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from cxrlib.app.model_files import read_json
from cxrlib.core.metrics import Metrics, read_metrics
from cxrlib.describe.audit_text import image_driven_note
from cxrlib.describe.track_record import describe_track_record, track_record

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.pipeline import Models


@functools.cache
def _read(path: Path, mtime: float) -> tuple[Metrics | None, dict[str, list[str]]]:
    """A metrics file's contents and a memo of sentences made from it, once per version
    (the Diagnose page asks on every rerun; a record walks every saved test prediction)."""
    data = read_json(path)
    return (None if data is None else read_metrics(data, str(path)), {})


def _metrics_entry(res: Models) -> tuple[Metrics | None, dict[str, list[str]]] | None:
    """The loaded classifier's metrics file and a memo of sentences made from it, read
    once per file version; None without one."""
    if res.model_path is None:
        return None
    path = Path(res.model_path).with_suffix(".metrics.json")
    try:
        return _read(path, path.stat().st_mtime)
    except OSError:
        return None


def randomisation_note(res: Models) -> str | None:
    """For "Compare all methods": which methods' maps hardly changed when the network's
    weights were re-drawn at random (metrics file, ``explain_methods``), or None."""
    entry = _metrics_entry(res)
    section = entry[0].explain_methods if entry and entry[0] else None
    if section is None:
        return None
    return image_driven_note(section)


def answer_record(res: Models, label: str) -> list[str]:
    """:func:`cxrlib.describe.track_record.describe_track_record` of an answer ``label`` by the
    loaded classifier, from its metrics file (read and described once per file version);
    [] without one."""
    entry = _metrics_entry(res)
    if entry is None:
        return []
    metrics, lines = entry
    if label not in lines:
        record = track_record(metrics, label)
        lines[label] = describe_track_record(record) if record else []
    return list(lines[label])

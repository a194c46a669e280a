"""The PDF report the Diagnose page offers to download."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cxrlib.app.model_files import answer_record
from cxrlib.app.texts import gate_text, probability_note
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.describe.report import ReportData, build_report

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.app.resources import Resources
    from cxrlib.infer.pipeline import Decoded, Diagnosis, GateVerdict


def report_warnings(decoded: Decoded, gate: GateVerdict | None) -> list[str]:
    """The report's warnings: the DICOM header's concerns and a rejection by the input check."""
    warnings = list(decoded.header_concerns)
    if gate is not None and not gate.is_cxr:
        warnings.append(f"Analysed although the input check rejected the image ({gate.reason}).")
    return warnings


def report_bytes(
    res: Resources,
    decoded: Decoded,
    diagnosis: Diagnosis,
    overlay_rgb: np.ndarray,
    method: str,
    settings: dict[str, object] | None = None,
    gate: GateVerdict | None = None,
    warnings: Sequence[str] = (),
    comparison: Sequence[tuple[str, np.ndarray]] = (),
    comparison_text: str = "",
) -> bytes:
    """The PDF report of one analysed upload, in memory. Only computed values go in: no
    file name, no DICOM field. ``comparison`` holds (caption, overlay) of every method when
    the user compared them."""
    if not res.can_diagnose or decoded.pixels is None:
        raise ValueError("nothing to report")
    data = ReportData(
        image=decoded.pixels,
        overlay=np.asarray(overlay_rgb, dtype=np.uint8),
        class_names=list(diagnosis.class_names),
        probabilities=[float(p) for p in diagnosis.probabilities],
        ranges=np.asarray(diagnosis.uncertainty, dtype=float),
        predicted=diagnosis.predicted_name,
        method=METHOD_LABELS.get(method, method),
        explained_class=diagnosis.target_name,
        settings=dict(settings or {}),
        model_version=res.model_version,
        weights_sha256=res.weights_sha256,
        image_sha256=decoded.sha256,
        lung_focus_text=diagnosis.focus_verdict,
        probability_note=probability_note(diagnosis),
        track_record=[
            line.replace("**", "") for line in answer_record(res, diagnosis.predicted_name)
        ],
        gate_text=gate_text(gate),
        warnings=list(warnings),
        notices=list(decoded.notices),
        comparison=[(c, np.asarray(o, dtype=np.uint8)) for c, o in comparison],
        comparison_text=comparison_text,
    )
    return build_report(data)

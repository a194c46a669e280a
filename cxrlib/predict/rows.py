"""One file -> one output row, for every engine: decode, input gate, and the Diagnose page's
diagnosis; an unreadable file gives a row with ``error`` set. No patient fields. Rows go to a
CSV rounded as the Batch page offers it, or to Parquet at full precision."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrlib.core import settings
from cxrlib.core.errors import ImageError
from cxrlib.core.hashing import sha256_bytes
from cxrlib.infer.pipeline import Decoded, Models, check_input, diagnose_image
from cxrlib.io.decode import decode_image
from cxrlib.predict.inputs import InputRef, expand_items

Progress = Callable[[int, str], None]

#: Decimal places of the rounded columns (CSV, the Batch page); Parquet keeps full precision.
DIGITS = {"confidence": 4, "p_": 4, "ood_score": 3, "lung_focus": 3}


@dataclass
class BatchRow:
    """One scored (or refused) input. Never holds patient fields."""

    name: str
    predicted: str = ""
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    is_cxr: bool | None = None
    ood_score: float | None = None
    lung_focus: float | None = None
    flags: list[str] = field(default_factory=list)
    error: str = ""

    def record(self, class_names: Iterable[str]) -> dict[str, Any]:
        """The output columns at full precision (None where there is no value)."""
        return {
            "file": self.name,
            "predicted": self.predicted,
            "confidence": self.confidence,
            **{f"p_{c}": self.probabilities.get(c) for c in class_names},
            "is_cxr": self.is_cxr,
            "ood_score": self.ood_score,
            "lung_focus": self.lung_focus,
            "flags": "; ".join(self.flags),
            "error": self.error,
        }

    def as_dict(self, class_names: Iterable[str]) -> dict[str, Any]:
        """:meth:`record` rounded as the CSV shows it."""
        return rounded(self.record(class_names))


def rounded(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its float columns rounded (:data:`DIGITS`)."""
    out = dict(record)
    for k, v in out.items():
        places = DIGITS.get("p_" if k.startswith("p_") else k)
        if places is not None and v is not None:
            out[k] = round(float(v), places)
    return out


def columns(class_names: Iterable[str]) -> list[str]:
    """The output columns, in order."""
    return list(BatchRow(name="").record(class_names))


def csv_text(records: Iterable[dict[str, Any]], fields: Sequence[str]) -> str:
    """CSV text of records, rounded (no patient fields: only the file name and results)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields))
    w.writeheader()
    w.writerows(rounded(d) for d in records)  # None is written as ""
    return buf.getvalue()


def rows_to_csv(rows: Iterable[BatchRow], class_names: Iterable[str]) -> str:
    """CSV text of batch rows (the Batch page's download)."""
    names = list(class_names)
    return csv_text((r.record(names) for r in rows), columns(names))


def arrow_table(records: Sequence[dict[str, Any]], class_names: Iterable[str]) -> Any:
    """A ``pyarrow.Table`` of full-precision records (the same schema in every part)."""
    import pyarrow as pa  # installed with ray[data]; only Parquet output needs it

    types = {"file": pa.string(), "predicted": pa.string(), "is_cxr": pa.bool_()}
    types |= {"flags": pa.string(), "error": pa.string()}
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in columns(class_names)])
    return pa.Table.from_pylist([{k: r[k] for k in schema.names} for r in records], schema=schema)


def score_file(models: Models, name: str, data: bytes | ImageError, focus: bool) -> BatchRow:
    """The row of one file (its bytes, or the error that stopped them being read).

    ``focus`` adds the predicted class's lung focus; None when the segmenter finds no lungs
    (0 would wrongly read as "looked outside").
    """
    row = BatchRow(name=name)
    try:
        if isinstance(data, ImageError):
            raise data
        image = decode_image(data, name)
    except ImageError as exc:
        row.error = str(exc)
        return row
    decoded = Decoded(sha256_bytes(data), image.pixels, image.format, image.notices, image.meta)
    row.flags = [*decoded.notices, *decoded.header_concerns]
    verdict = check_input(models, decoded)
    if verdict is not None:
        row.is_cxr, row.ood_score = verdict.is_cxr, verdict.score
        if not verdict.is_cxr:
            row.flags.append(verdict.reason)
            return row
    diagnosis = diagnose_image(models, decoded, "gradcam" if focus else None)
    row.predicted, row.confidence = diagnosis.predicted_name, diagnosis.confidence
    row.probabilities = dict(zip(diagnosis.class_names, map(float, diagnosis.probabilities)))
    if focus and diagnosis.lung_area:
        row.lung_focus = diagnosis.lung_focus
        if row.lung_focus is not None and row.lung_focus < 0.5:
            row.flags.append("heatmap mostly outside the lungs")
    return row


def score_all(
    items: Iterable[tuple[str, bytes | ImageError]],
    models: Models,
    focus: bool = False,
    progress: Progress | None = None,
) -> list[BatchRow]:
    """One row per (name, bytes or error) item, in order; ``progress(i, name)`` after each.

    Raises:
        RuntimeError: ``focus`` without an explainer or lung segmenter.
    """
    if focus and (models.explainer is None or models.segmenter is None):
        raise RuntimeError("lung focus needs the explainer and the lung segmenter")
    if not focus:  # no lung mask to compute
        models = dataclasses.replace(models, segmenter=None)
    rows: list[BatchRow] = []
    for i, (name, data) in enumerate(items):
        rows.append(score_file(models, name, data, focus))
        if progress is not None:
            progress(i, name)
    return rows


def score_items(
    items: Iterable[tuple[str, bytes]],
    models: Models,
    focus: bool = False,
    progress: Progress | None = None,
) -> list[BatchRow]:
    """Uploaded (name, bytes) items scored; zip archives are expanded (the Batch page)."""
    return score_all(expand_items(items), models, focus, progress)


def score_refs(
    refs: Iterable[InputRef], models: Models, focus: bool = False, progress: Progress | None = None
) -> list[BatchRow]:
    """Listed files scored, each one read as it comes (the command line)."""
    return score_all(((r.name, r.load()) for r in refs), models, focus, progress)


def load_models(
    model: str | None = None,
    segmenter: str | None = None,
    gate: str | None = None,
    *,
    with_gate: bool = True,
    with_segmenter: bool = True,
) -> Models:
    """The classifier, its explainer, and the lung segmenter and input gate when asked for
    (paths not given: :mod:`cxrlib.core.settings`'s, read now)."""
    from cxrlib.infer.classifier import load_classifier  # imports TensorFlow
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.gate import load_gate
    from cxrlib.infer.lungs import load_segmenter

    model_file = Path(model) if model else settings.model_path()
    gate_file = Path(gate) if gate else settings.gate_path()
    segmenter_file = Path(segmenter) if segmenter else settings.segmenter_path()
    check = load_gate(gate_file).assess if with_gate else None
    seg = load_segmenter(segmenter_file) if with_segmenter else None
    clf = load_classifier(model_file, segmenter=seg)
    return Models(clf, Explainer(clf), seg, check, model_file, segmenter_file, gate_file)

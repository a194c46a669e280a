"""One file -> one output row, for every engine: decode, input gate, classifier, lung focus.

:class:`Scorer` holds the loaded models and scores a batch of (name, bytes) items:
each is decoded (:func:`cxrlib.io.decode.decode_image`) and checked by the input
gate one by one, then the accepted images go through the classifier in ONE call.
A file that cannot be read becomes a row with ``error`` set; the rest are still
scored. Rows never hold patient fields: only the file name and results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image
from cxrlib.io.header_checks import header_concerns

Gate = Callable[..., Any]
Focus = Callable[[Any, int], float | None]
Item = tuple[str, bytes | ImageError]

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
        d: dict[str, Any] = {
            "file": self.name,
            "predicted": self.predicted,
            "confidence": self.confidence,
        }
        d.update({f"p_{c}": self.probabilities.get(c) for c in class_names})
        d.update(
            {
                "is_cxr": self.is_cxr,
                "ood_score": self.ood_score,
                "lung_focus": self.lung_focus,
                "flags": "; ".join(self.flags),
                "error": self.error,
            }
        )
        return d

    def as_dict(self, class_names: Iterable[str]) -> dict[str, Any]:
        """:meth:`record` rounded as the CSV shows it."""
        return rounded(self.record(class_names))


def _digits(column: str) -> int | None:
    return DIGITS.get("p_" if column.startswith("p_") else column)


def rounded(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its float columns rounded (:data:`DIGITS`)."""
    out = dict(record)
    for k, v in out.items():
        places = _digits(k)
        if places is not None and v is not None:
            out[k] = round(float(v), places)
    return out


def columns(class_names: Iterable[str]) -> list[str]:
    """The output columns, in order."""
    return list(BatchRow(name="").record(class_names))


def _checked(name: str, data: bytes | ImageError, gate: Gate | None) -> tuple[BatchRow, Any]:
    """The row so far and the image to classify (None when refused or unreadable)."""
    row = BatchRow(name=name)
    try:
        if isinstance(data, ImageError):
            raise data
        decoded = decode_image(data, name)
    except ImageError as exc:
        row.error = str(exc)
        return row, None
    gray = decoded.pixels
    row.flags.extend(decoded.notices)
    row.flags.extend(header_concerns(decoded.meta))
    if gate is not None:
        verdict = gate(gray, colourfulness=decoded.meta.get("colourfulness"))
        row.is_cxr, row.ood_score = bool(verdict.is_cxr), float(verdict.score)
        if not verdict.is_cxr:
            row.flags.append(verdict.reason)
            return row, None
    return row, gray


@dataclass
class Scorer:
    """The loaded models that score files.

    Attributes:
        classifier: A :class:`cxrlib.infer.classifier.Classifier`.
        gate: ``OODGate.assess(gray, colourfulness=...)`` (:mod:`cxrlib.infer.gate`), or None to skip.
        focus: Optional ``f(gray, class_index) -> lung focus`` of the predicted class
            (Grad-CAM + segmenter, :func:`gradcam_lung_focus`); slow, so off by default.
    """

    classifier: Any
    gate: Gate | None = None
    focus: Focus | None = None

    @property
    def class_names(self) -> list[str]:
        """The classifier's class names."""
        return list(self.classifier.class_names)

    def score(self, items: Sequence[Item]) -> list[BatchRow]:
        """One row per (name, bytes or error) item, the accepted images in one classifier call."""
        checked = [_checked(name, data, self.gate) for name, data in items]
        todo = [(row, gray) for row, gray in checked if gray is not None]
        if todo:
            probs = self.classifier.predict([gray for _, gray in todo])
            for (row, gray), p in zip(todo, probs, strict=True):
                self._fill(row, gray, p)
        return [row for row, _ in checked]

    def _fill(self, row: BatchRow, gray: np.ndarray, probs: np.ndarray) -> None:
        names = self.classifier.class_names
        k = int(probs.argmax())
        row.predicted, row.confidence = names[k], float(probs[k])
        row.probabilities = {c: float(p) for c, p in zip(names, probs)}
        if self.focus is not None:
            row.lung_focus = self.focus(gray, k)
            if row.lung_focus is not None and row.lung_focus < 0.5:
                row.flags.append("heatmap mostly outside the lungs")


def gradcam_lung_focus(explainer: Any, segmenter: Any) -> Callable[[Any, int | None], float | None]:
    """``f(gray, class_index) -> lung focus`` of that class's Grad-CAM, for :class:`Scorer`.

    ``class_index`` is the predicted class (the model's own prediction, averaged over
    its test-time views); None explains the original image's most probable class.
    None when the segmenter finds no lungs (a focus of 0 would wrongly read as
    "the model looked outside the lungs").
    """
    from cxrlib.infer.focus import lung_focus

    def focus(gray: Any, class_index: int | None = None) -> float | None:
        mask = segmenter.segment(gray)
        if not np.any(mask):
            return None
        return lung_focus(explainer.explain(gray, "gradcam", class_index), mask)

    return focus


def load_scorer(model: str | None = None, gate: bool = True, focus: bool = False) -> Scorer:
    """Loads the classifier (and the input gate, and Grad-CAM + segmenter for ``focus``).

    Every path not given is :mod:`cxrlib.core.settings`'s (``$CXR_MODEL``, ``$CXR_OOD``,
    ``$CXR_SEGMENTER``), read now; a missing file raises naming it.
    """
    from cxrlib.infer.classifier import load_classifier  # imports TensorFlow
    from cxrlib.infer.gate import load_gate
    from cxrlib.infer.lungs import default_segmenter

    check: Gate | None = load_gate().assess if gate else None
    clf = load_classifier(model)
    lung_focus = None
    if focus:
        from cxrlib.infer.explain import Explainer  # imports TensorFlow

        lung_focus = gradcam_lung_focus(Explainer(clf), default_segmenter())
    return Scorer(clf, check, lung_focus)

"""The local engine: every file scored in this process, a batch of files at a time.

The app's Batch page calls :func:`score_items` on uploaded (name, bytes) items; the
command line (``--engine local``) calls :func:`score_refs` on listed files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from cxrlib.predict.inputs import InputRef, expand_items
from cxrlib.predict.rows import BatchRow, Focus, Gate, Item, Scorer

#: Files per classifier call.
BATCH_SIZE = 16
Progress = Callable[[int, str], None]


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def score_stream(
    items: Iterable[Item],
    scorer: Scorer,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[BatchRow]:
    """Scores (name, bytes or error) items ``batch_size`` at a time, in order.

    Args:
        items: (file name, raw bytes, or the error that stopped them being read).
        scorer: The loaded models.
        progress: Called as ``progress(i, name)`` for each item once its batch is scored.
        batch_size: Items per classifier call.
    """
    rows: list[BatchRow] = []
    for chunk in _chunks(items, batch_size):
        for row in scorer.score(chunk):
            rows.append(row)
            if progress is not None:
                progress(len(rows) - 1, row.name)
    return rows


def score_items(
    items: Iterable[tuple[str, bytes]],
    classifier: Any,
    gate: Gate | None = None,
    focus: Focus | None = None,
    progress: Progress | None = None,
) -> list[BatchRow]:
    """Scores each (name, bytes) item; zip archives are expanded, bad files become error rows.

    Args:
        items: (file name, raw bytes).
        classifier: The loaded classifier.
        gate: ``OODGate.assess(gray, colourfulness=...)`` (:mod:`cxrlib.infer.gate`), or None to skip.
        focus: Optional ``f(gray, class_index) -> lung focus`` of the predicted class.
        progress: Called as ``progress(i, name)`` after each item.
    """
    return score_stream(expand_items(items), Scorer(classifier, gate, focus), progress)


def score_refs(
    refs: Iterable[InputRef],
    scorer: Scorer,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[BatchRow]:
    """Scores listed files, reading each one's bytes as its batch comes."""
    return score_stream(((r.name, r.load()) for r in refs), scorer, progress, batch_size)

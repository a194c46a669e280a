"""What the Batch page computes: many uploads scored into rows and a CSV, as on the
command line (:func:`cxrlib.predict.rows.score_items`) or by the model server."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cxrlib.core.errors import ImageError
from cxrlib.core.hashing import sha256_bytes
from cxrlib.predict.inputs import is_zip, zip_members
from cxrlib.predict.rows import BatchRow, rows_to_csv, score_items

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.app.resources import Resources

#: One scored row as the page keeps it (``BatchRow.as_dict``).
Row = dict[str, Any]


def signature(file_ids: Iterable[str], with_focus: bool = False) -> str:
    """Identity of one set of uploads (and whether lung focus was asked for)."""
    return sha256_bytes("".join(file_ids).encode()) + ("+focus" if with_focus else "")


def count_items(items: Sequence[tuple[str, bytes]]) -> int:
    """How many images a batch holds (image members of zip archives counted)."""
    total = 0
    for name, data in items:
        if is_zip(name, data):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    total += len(zip_members(zf, name))
            except (zipfile.BadZipFile, OSError, ValueError, ImageError):
                total += 1
        else:
            total += 1
    return max(total, 1)


def score_uploads(
    res: Resources,
    items: Sequence[tuple[str, bytes]],
    with_focus: bool = False,
    progress: Callable[[int, str], None] | None = None,
) -> tuple[list[Row], str]:
    """Every upload (file name, bytes) scored, zip members one by one, by the model server
    or here: the rows and their CSV. ``progress(i, name)`` is called after each file.

    Raises:
        RuntimeError: No classifier is loaded.
        ModelServerError: The model server is down or failed.
    """
    rows: list[BatchRow] = []
    if res.remote is not None:
        for name, data in items:
            for row in res.remote.score(name, data, with_focus):  # a zip: one per member
                rows.append(row)
                if progress is not None:
                    progress(len(rows) - 1, row.name)
        names = list(res.served.get("class_names", []))
    else:
        if res.classifier is None:
            raise RuntimeError("no classifier is loaded")
        rows = score_items(items, res, with_focus, progress)
        names = list(res.classifier.class_names)
    return [r.as_dict(names) for r in rows], rows_to_csv(rows, names)


def split_rows(rows: Sequence[Row]) -> tuple[list[Row], list[Row], list[Row]]:
    """``(read, unreadable, rejected)``: rows scored, rows with an error, and the read
    rows the input check rejected."""
    good = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    return good, bad, [r for r in good if r.get("is_cxr") is False]

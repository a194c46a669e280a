"""Where the rows go: a CSV (rounded, as the Batch page offers it) or Parquet (full precision).

``--out`` decides: ``-`` is standard output (CSV), ``*.csv`` a CSV file, ``*.parquet``
one Parquet file, and a folder (an existing one, a name ending in ``/`` or a name
without a suffix) a Parquet dataset that Ray workers write in parts.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from cxrlib.predict.rows import BatchRow, columns, rounded

OutKind = Literal["stdout", "csv", "parquet", "parquet-folder"]


class OutputError(ValueError):
    """``--out`` names something that is neither a CSV, a Parquet file nor a folder."""


def out_kind(out: str) -> OutKind:
    """What kind of output ``--out`` names (see the module docstring)."""
    if out == "-":
        return "stdout"
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    if out.endswith(("/", "\\")) or path.is_dir() or not suffix:
        return "parquet-folder"
    raise OutputError(f"--out {out}: give a .csv or .parquet file, a folder, or - for stdout")


def csv_text(records: Iterable[dict[str, Any]], fields: Sequence[str]) -> str:
    """CSV text of records, rounded (no patient fields: only the file name and results)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields))
    w.writeheader()
    for d in records:
        w.writerow({k: ("" if v is None else v) for k, v in rounded(d).items()})
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


def write_records(records: Sequence[dict[str, Any]], class_names: Sequence[str], out: str) -> None:
    """Writes records where ``--out`` says (a Parquet folder gets one part file)."""
    kind = out_kind(out)
    if kind == "stdout":
        sys.stdout.write(csv_text(records, columns(class_names)))
    elif kind == "csv":
        Path(out).write_text(csv_text(records, columns(class_names)))
    else:
        import pyarrow.parquet as pq

        path = Path(out)
        if kind == "parquet-folder":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "part-00000.parquet"
        pq.write_table(arrow_table(records, class_names), path)

"""Batch scoring: many images (files, folders, zip archives, manifest CSVs) to a CSV or Parquet.

    python -m cxrlib.predict scans/ more.dcm archive.zip --out predictions.csv [--focus]
    python -m cxrlib.predict ../shared/cxr/manifest.csv --out scores.parquet --engine ray
    RAY_ADDRESS=ray://head:10001 python -m cxrlib.predict /data/archive --out /data/scores/ --engine ray

Every input is decoded and checked by the input gate; files that cannot be read
or are not chest X-rays are listed with the reason and the rest are still scored.
``--engine local`` scores in this process; ``--engine ray`` through Ray Data, on a
local Ray started for the job or on the cluster at ``--ray-address`` / ``$RAY_ADDRESS``.
Both write the same rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from cxrlib.core.settings import model_path
from cxrlib.predict.inputs import InputRef, list_inputs
from cxrlib.predict.rows import arrow_table, columns, csv_text, load_models, score_refs

OutKind = Literal["stdout", "csv", "parquet", "parquet-folder"]


class OutputError(ValueError):
    """``--out`` names something that is neither a CSV, a Parquet file nor a folder."""


def out_kind(out: str) -> OutKind:
    """What ``--out`` names: ``-`` standard output (CSV), a CSV or Parquet file, or a folder
    (existing, or a name ending in ``/`` or without a suffix) of Parquet parts."""
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


def run_local(refs: Sequence[InputRef], a: argparse.Namespace) -> int:
    """Scores in this process and writes ``--out``; returns the number of error rows."""
    models = load_models(a.model, with_gate=not a.no_gate, with_segmenter=a.focus)

    def progress(i: int, name: str) -> None:
        print(f"\r{i + 1} scored", end="", file=sys.stderr, flush=True)

    rows = score_refs(refs, models, a.focus, progress)
    print(file=sys.stderr)
    assert models.classifier is not None
    names = list(models.classifier.class_names)
    write_records([r.record(names) for r in rows], names, a.out)
    return sum(1 for r in rows if r.error)


def run_ray(refs: Sequence[InputRef], a: argparse.Namespace) -> int:
    """Scores through Ray Data and writes ``--out``; returns the number of error rows."""
    from cxrlib.predict import ray_engine as engine  # imports ray (optional, heavy)

    with engine.ray_session(a.ray_address):
        ds = engine.score_dataset(
            refs, a.model, not a.no_gate, a.focus, a.workers, a.cpus_per_worker, a.batch_size
        )
        if out_kind(a.out) == "parquet-folder":
            # Each worker writes its own part: no row passes through this process.
            ds = ds.materialize()
            ds.write_parquet(os.path.abspath(a.out))
            return sum(1 for r in ds.select_columns(["error"]).iter_rows() if r["error"])
        records = engine.collect(ds)
    write_records(records, engine.class_names_of(records), a.out)
    return sum(1 for r in records if r["error"])


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; 0 on success, 2 for a bad ``--out``."""
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="image files, folders, zip archives or manifest CSVs")
    p.add_argument(
        "--out", default="-", help="a .csv or .parquet file, a folder (Parquet), or - (stdout)"
    )
    p.add_argument("--model", default=str(model_path()))
    p.add_argument("--no-gate", action="store_true", help="score images the OOD gate rejects too")
    p.add_argument("--focus", action="store_true", help="add Grad-CAM lung focus (slower)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="a running Ray cluster (default: $RAY_ADDRESS; unset: a local Ray for the job)",
    )
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default: one per CPU)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each Ray actor holds")
    p.add_argument("--batch-size", type=int, default=16, help="files per Ray actor call")
    a = p.parse_args(argv)
    try:
        out_kind(a.out)
    except OutputError as exc:
        print(exc, file=sys.stderr)
        return 2
    refs = list_inputs(a.inputs)
    # With nothing to score there is nothing to distribute.
    run: Any = run_ray if a.engine == "ray" and refs else run_local
    bad = run(refs, a)
    if a.out != "-":
        print(f"wrote {a.out}: {len(refs)} rows, {bad} unreadable", file=sys.stderr)
    return 0

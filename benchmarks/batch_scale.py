"""Archive scoring speed: images per second of the local engine and of Ray Data with N workers.

Scores the first ``--images`` rows of the test split of ``../shared/cxr`` (a
manifest written to a temporary folder) with ``python -m cxrlib.predict``'s two
engines, in this process:

* ``local``: one process (:func:`cxrlib.predict.rows.score_refs`);
* ``ray xN``: a local Ray of all CPUs, ``N`` actors of one CPU each
  (:func:`cxrlib.predict.ray_engine.score_dataset`).

For each it reports the wall time of the whole job (models loaded, for Ray the
actors started), the start-up (a job of one batch per worker) and the images per
second once started (``images / (wall - start-up)``), and the peak resident memory
of each scoring process (this process for ``local``, each actor for Ray; sampled
with psutil every 0.2 s). Prints a table, then ONE JSON line.

Usage::

    .venv/bin/python -m benchmarks.batch_scale                     # 500 images; local, ray x1, x2
    .venv/bin/python -m benchmarks.batch_scale --images 100 --workers 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from cxrlib.core.settings import data_dir, model_path
from cxrlib.predict import ray_engine
from cxrlib.predict.inputs import InputRef, list_inputs
from cxrlib.predict.rows import load_models, score_refs


def test_manifest(data: Path, n: int, folder: Path) -> Path:
    """A manifest of the first ``n`` test-split images, with absolute paths."""
    with (data / "manifest.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"][:n]
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path"])
        w.writerows([[str((data / r["path"]).resolve())] for r in rows])
    return out


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (0 once it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def actor_pids() -> list[int]:
    """The pids of live Ray Data scoring actors (by their process title)."""
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "ScoreBatch" in " ".join(p.info["cmdline"] or ()) and p.pid != os.getpid()
    ]


class PeakRSS:
    """Samples the peak RSS of every scoring actor while a job runs."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in actor_pids():
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), rss_mb(pid))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_local(refs: list[InputRef], model: str, batch: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    models = load_models(model, with_segmenter=False)
    score_refs(refs[:batch], models)  # traces the compiled paths
    start = time.perf_counter() - t0
    rows = score_refs(refs, models)
    wall = time.perf_counter() - t0
    return {
        "engine": "local",
        "workers": 1,
        "rows": len(rows),
        "errors": sum(1 for r in rows if r.error),
        "wall_s": wall,
        "startup_s": start,
        "rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024],  # peak, kB
    }


def run_ray(refs: list[InputRef], model: str, workers: int, batch: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    warm = ray_engine.score_dataset(
        refs[: batch * workers], model, workers=workers, batch_size=batch
    )
    ray_engine.collect(warm)
    start = time.perf_counter() - t0
    t1 = time.perf_counter()
    with PeakRSS() as peak:
        ds = ray_engine.score_dataset(refs, model, workers=workers, batch_size=batch)
        rows = ray_engine.collect(ds)
    wall = time.perf_counter() - t1
    return {
        "engine": f"ray x{workers}",
        "workers": workers,
        "rows": len(rows),
        "errors": sum(1 for r in rows if r["error"]),
        "wall_s": wall + start,
        "startup_s": start,
        "rss_mb": sorted(peak.peaks.values(), reverse=True)[:workers],
    }


def table(results: list[dict[str, Any]], n: int) -> str:
    head = "| engine | workers | images | wall s | start-up s | images/s (started) | peak RSS per worker, MB |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in results:
        rate = n / max(1e-9, r["wall_s"] - r["startup_s"])
        r["images_per_s"] = round(rate, 2)
        rss = ", ".join(f"{m:.0f}" for m in r["rss_mb"]) or "?"
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['rows']} | {r['wall_s']:.1f} | "
            f"{r['startup_s']:.1f} | {rate:.2f} | {rss} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--data", default=str(data_dir()))
    p.add_argument("--model", default=str(model_path()))
    p.add_argument("--no-local", action="store_true", help="skip the local engine")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        refs = list_inputs([str(test_manifest(Path(a.data), a.images, Path(tmp)))])
        results = []
        if not a.no_local:
            results.append(run_local(refs, a.model, a.batch_size))
            print(f"local done: {results[-1]['wall_s']:.1f} s", file=sys.stderr)
        with ray_engine.ray_session(None, os.cpu_count()):
            for n in a.workers:
                results.append(run_ray(refs, a.model, n, a.batch_size))
                print(f"ray x{n} done: {results[-1]['wall_s']:.1f} s", file=sys.stderr)
    print(f"{len(refs)} images, {os.cpu_count()} CPUs, batch {a.batch_size}")
    print(table(results, len(refs)))
    print(json.dumps({"images": len(refs), "cpus": os.cpu_count(), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

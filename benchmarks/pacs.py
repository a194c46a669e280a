"""The watcher end to end: from storing a chest X-ray in a PACS to its SR being findable by
QIDO. Prints figures and, last, ONE JSON line.

Starts its own Orthanc (:func:`cxrlib.pacs.server.local_orthanc`, storage in a temp folder)
and the watcher in a thread with the app's models (``$CXR_MODEL``, ``$CXR_SEGMENTER``,
``$CXR_OOD``, else the committed ones), then:

* ``first_s``: the first X-ray (the model's first call), apart from the others.
* ``single``: ``--n-single`` demo X-rays stored one at a time, each waited for; p50/p95 of
  store -> SR findable.
* ``burst``: ``--n-burst`` stored in one STOW request; instances scored per second end to end
  (first byte stored -> last SR findable) and p50/p95 of store -> SR findable.

The watcher looks at the change feed every ``--interval`` seconds (part of the latency).

Usage::

    python -m benchmarks.pacs                          # 20 single, a burst of 200
    python -m benchmarks.pacs --n-single 3 --n-burst 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.demo import DEMO_SAMPLES, demo_dataset
from cxrlib.pacs.results import SERIES_DESCRIPTION, model_identity
from cxrlib.pacs.server import local_orthanc
from cxrlib.pacs.watch import OrthancFeed, Watcher, watch


def xrays(n: int) -> list:
    """``n`` demo X-rays, each in a study of its own (the samples in turn)."""
    return [
        demo_dataset(*DEMO_SAMPLES[i % len(DEMO_SAMPLES)], i + 1, datetime.now()) for i in range(n)
    ]


def findable(client: PacsClient, study_uid: str) -> bool:
    """Whether QIDO lists a CXR Lens report in the study."""
    rows = client.search_instances(study_uid, modalities=("SR",))
    return any(r.series_description == SERIES_DESCRIPTION for r in rows)


def wait_findable(client: PacsClient, study_uid: str, timeout: float) -> float:
    """Waits until the study's report is findable; returns when (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while not findable(client, study_uid):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no result for study {study_uid} within {timeout:g} s")
        time.sleep(0.05)
    return time.perf_counter()


def quantiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 (nearest rank) in seconds."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1)]
    return {"p50_s": round(statistics.median(ordered), 3), "p95_s": round(p95, 3)}


def single(client: PacsClient, n: int, timeout: float) -> dict[str, float]:
    latencies = []
    for ds in xrays(n):
        start = time.perf_counter()
        client.store([ds])
        latencies.append(wait_findable(client, ds.StudyInstanceUID, timeout) - start)
    return {"n": n, **quantiles(latencies)}


def burst(client: PacsClient, n: int, timeout: float) -> dict[str, float]:
    datasets = xrays(n)
    start = time.perf_counter()
    client.store(datasets)
    stored = time.perf_counter()
    # The watcher takes them in arrival order: waiting in that order misses none.
    found = [wait_findable(client, ds.StudyInstanceUID, timeout) - start for ds in datasets]
    return {
        "n": n,
        "store_s": round(stored - start, 3),
        "scored_per_s": round(n / max(found), 3),
        **quantiles(found),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-single", type=int, default=20)
    p.add_argument("--n-burst", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.2, help="the watcher's look interval")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a result")
    a = p.parse_args(argv)

    from cxrlib.predict.rows import load_models  # imports TensorFlow

    models = load_models()
    assert models.classifier is not None
    identity = model_identity(models.classifier.meta, str(models.model_path))
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, local_orthanc(Path(tmp)) as orthanc:
        client = PacsClient(PacsConfig(orthanc.dicomweb_url, orthanc.user, orthanc.password))
        watcher = Watcher(client, OrthancFeed(client), models, identity)
        thread = threading.Thread(
            target=watch, args=(watcher,), kwargs={"interval": a.interval, "stop": stop}
        )
        thread.start()
        try:
            out = {
                "model": identity.name,
                "interval_s": a.interval,
                # The first image also builds the compiled model: timed apart.
                "first_s": single(client, 1, a.timeout)["p50_s"],
                "single": single(client, a.n_single, a.timeout),
                "burst": burst(client, a.n_burst, a.timeout),
                "counts": vars(watcher.run_counts),
            }
        finally:
            stop.set()
            thread.join()
    s, b = out["single"], out["burst"]
    print(
        f"single: {s['n']} stored one at a time, store -> SR findable p50 {s['p50_s']} s, p95 {s['p95_s']} s"
    )
    print(
        f"burst: {b['n']} stored at once in {b['store_s']} s, {b['scored_per_s']} scored/s, "
        f"store -> SR findable p50 {b['p50_s']} s, p95 {b['p95_s']} s"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()

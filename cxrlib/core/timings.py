"""Where one diagnosis spends its time: with ``$CXR_TIMINGS`` naming a file, every
:func:`timed` block appends a JSON line ``{"stage", "wall", "cpu", "pid"}`` to it (``cpu``: its
thread's CPU seconds). Never image data. And :data:`COUNTERS`, the work really computed (not
answered by the cache), so the app's tests can prove that moving a display slider computes
nothing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

#: Stage -> what it is, in the order of one diagnosis (the benchmark's table).
STAGES: dict[str, str] = {
    "decode": "decode the upload",
    "gate": "input gate",
    "segment": "lung segmentation (the model's crop)",
    "views": "classifier over the original and its test-time views (+ Grad-CAM)",
    "heatmap": "heatmap back onto the image, lung focus",
    "remote": "model server round trip (gate + diagnosis)",
    "figures": "probability chart (SVG)",
    "images": "image, heatmap and overlay sent to the page",
    "rerun": "one Streamlit script run of the page (holds the interpreter when cpu ~ wall)",
}
_LOCK = threading.Lock()
COUNTERS: Counter[str] = Counter()


def count(name: str) -> None:
    """Adds one to ``COUNTERS[name]`` (thread-safe)."""
    with _LOCK:
        COUNTERS[name] += 1


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Times the block as ``stage`` (a key of :data:`STAGES`) when timings are on."""
    path = os.environ.get("CXR_TIMINGS", "").strip()
    if not path:
        yield
        return
    w0, c0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
        line = json.dumps({"stage": stage, "wall": wall, "cpu": cpu, "pid": os.getpid()})
        with _LOCK, open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

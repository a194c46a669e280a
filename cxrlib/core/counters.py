"""Process-wide counts of expensive work, so the app's tests can prove that moving a display
slider computes nothing.

The per-image pipeline (:mod:`cxrlib.infer.pipeline`) counts what it really computes, not
what the cache answers: ``heatmaps`` (diagnoses and batch lung focus), ``decodes`` (uploads).
"""

from __future__ import annotations

import threading
from collections import Counter

COUNTERS: Counter[str] = Counter()
_LOCK = threading.Lock()


def count(name: str) -> None:
    """Adds one to ``COUNTERS[name]`` (thread-safe)."""
    with _LOCK:
        COUNTERS[name] += 1

"""Process-wide counts of expensive work (heatmaps computed, uploads decoded, ...).

The per-image pipeline (:mod:`cxrlib.infer.pipeline`) adds to them when it
really computes something, not when the cache answers, so the app's tests can
prove that moving a display slider computes nothing.
"""

from __future__ import annotations

import threading
from collections import Counter

#: Name -> how often it was computed: ``heatmaps`` (diagnoses and batch lung focus),
#: ``decodes`` (uploads decoded).
COUNTERS: Counter[str] = Counter()
_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    """Adds ``n`` to :data:`COUNTERS` ``[name]`` (thread-safe)."""
    with _LOCK:
        COUNTERS[name] += n

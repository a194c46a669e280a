"""Process-wide counts of work really computed (not answered by the cache), so the app's
tests can prove that moving a display slider computes nothing."""

from __future__ import annotations

import threading
from collections import Counter

COUNTERS: Counter[str] = Counter()
_LOCK = threading.Lock()


def count(name: str) -> None:
    """Adds one to ``COUNTERS[name]`` (thread-safe)."""
    with _LOCK:
        COUNTERS[name] += 1

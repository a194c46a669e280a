"""The one cache of CXR Lens: a thread-safe LRU bounded by entries and bytes.

Every expensive per-image result (decoded upload, input-gate verdict, diagnosis
and heatmap) is kept in one, keyed by a tuple that starts with what it is and holds
the image hash, the model hash and the settings that changed it, e.g.
``("diagnosis", image_sha, model_sha, method, class)``. The lung segmenter keeps
its masks in one of its own (:class:`cxrlib.infer.lungs.LungSegmenter`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

_MAX_DEPTH = 6  # a result's arrays sit a few levels down (dataclass -> list -> tuple -> array)


def _nbytes(value: Any, depth: int = 0, seen: set[int] | None = None) -> int:
    """Rough memory size of a cached value (arrays inside dataclasses and tuples).

    Looks a few levels deep and at each object once: a cached model or explainer is a
    large cyclic object graph whose arrays are not what this cache bounds.
    """
    seen = set() if seen is None else seen
    if id(value) in seen or depth > _MAX_DEPTH:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple | list):
        return sum(_nbytes(v, depth + 1, seen) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v, depth + 1, seen) for v in value.values())
    if hasattr(value, "__dict__"):
        return sum(_nbytes(v, depth + 1, seen) for v in vars(value).values())
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, f), depth + 1, seen) for f in value.__dataclass_fields__)
    return 64


class LRUCache:
    """A thread-safe least-recently-used cache bounded by item count and bytes.

    Args:
        max_items: Most entries kept.
        max_bytes: Most bytes (arrays) kept; the oldest entries are dropped first.
    """

    def __init__(self, max_items: int = 256, max_bytes: int = 768 * 2**20) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key][0]

    def put(self, key: Hashable, value: Any) -> None:
        size = _nbytes(value)
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            self._data[key] = (value, size)
            self._bytes += size
            while len(self._data) > 1 and (
                len(self._data) > self.max_items or self._bytes > self.max_bytes
            ):
                _, (_, old) = self._data.popitem(last=False)
                self._bytes -= old

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, computing it once (concurrent callers wait)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key][0]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._data:
                    self.hits += 1
                    return self._data[key][0]
                self.misses += 1
            try:
                value = compute()
                self.put(key, value)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

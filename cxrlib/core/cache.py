"""The one cache of per-image results: a thread-safe LRU bounded by entries and bytes.

Keys are tuples that start with what the result is, then the hashes and settings it depends
on, e.g. ``("diagnosis", image_sha, model_sha, method, class)``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


def _nbytes(value: Any, depth: int = 0, seen: set[int] | None = None) -> int:
    """Rough memory size of a cached value: the arrays a few levels down (dataclass -> list
    -> tuple -> array), each object once (a cached model is a large cyclic graph)."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth > 6:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple | list):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.values())
    elif hasattr(value, "__dict__"):
        items = list(vars(value).values())
    else:
        return 64
    return sum(_nbytes(v, depth + 1, seen) for v in items)


class LRUCache:
    """A thread-safe least-recently-used cache; the oldest entries go first when it holds
    more than ``max_items`` entries or ``max_bytes`` bytes (of arrays)."""

    def __init__(self, max_items: int = 256, max_bytes: int = 768 * 2**20) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

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
                self.nbytes -= self._data.pop(key)[1]
            self._data[key] = (value, size)
            self.nbytes += size
            while len(self._data) > 1 and (
                len(self._data) > self.max_items or self.nbytes > self.max_bytes
            ):
                self.nbytes -= self._data.popitem(last=False)[1][1]

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, computing it once (concurrent callers wait)."""
        missing = object()
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            try:
                value = self.get(key, missing)
                if value is missing:
                    value = compute()
                    self.put(key, value)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.nbytes = 0

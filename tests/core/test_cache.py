"""cxrlib.core.cache: the one LRU cache (bounded by entries and bytes, computes once)."""

from __future__ import annotations

import threading
import time

import numpy as np

from cxrlib.core.cache import LRUCache


def test_lru_cache_bounds_and_computes_once():
    cache = LRUCache(max_items=3, max_bytes=10_000)
    calls = []
    for i in range(5):
        cache.get_or_compute(i, lambda i=i: calls.append(i) or np.zeros(10, np.uint8))
    assert [cache.get(i) is not None for i in range(5)] == [False, False, True, True, True]
    cache.get_or_compute(4, lambda: calls.append("again"))
    assert "again" not in calls
    cache.put("big", np.zeros(9_000, np.uint8))
    cache.put("big2", np.zeros(9_000, np.uint8))
    assert cache.get("big") is None and cache.get("big2") is not None
    assert cache.nbytes <= 10_000


def test_lru_cache_concurrent_callers_compute_once():
    cache = LRUCache()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return 42

    threads = [threading.Thread(target=lambda: cache.get_or_compute("k", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and cache.get("k") == 42


class _Node:
    """An object graph with a cycle, as a loaded model is."""

    def __init__(self) -> None:
        self.weights = np.zeros(1000, np.uint8)
        self.parent = self
        self.children = [self, {"again": self}]


def test_lru_cache_sizes_cyclic_objects_and_nested_arrays():
    cache = LRUCache(max_items=4, max_bytes=2500)
    node = cache.get_or_compute("model", _Node)  # raised RecursionError before
    assert cache.get_or_compute("model", lambda: None) is node
    # The arrays of a nested result count, each once: 2 x 1000 bytes fit, 3 x 1000 do not.
    shared = np.zeros(1000, np.uint8)
    cache.put("result", ([shared, shared], {"map": np.zeros(1000, np.uint8)}))
    assert cache.get("result") is not None and cache.get("model") is None

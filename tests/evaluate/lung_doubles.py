"""Test doubles for the audits: a segmenter that always finds the same lungs, and images."""

from __future__ import annotations

import numpy as np


class BoxSegmenter:
    """A segmenter that 'finds' the same two boxes in every image (a test double)."""

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty

    def mask(self, g: np.ndarray) -> np.ndarray:
        m = np.zeros(g.shape, bool)
        if not self.empty:
            h, w = g.shape
            m[h // 5 : 4 * h // 5, w // 8 : 3 * w // 8] = True
            m[h // 5 : 4 * h // 5, 5 * w // 8 : 7 * w // 8] = True
        return m

    def segment_many(self, grays, conventions):
        return [self.mask(g) for g in grays]


def images(n: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    grays = [rng.integers(0, 255, (180, 150), dtype=np.uint8) for _ in range(n)]
    return grays, np.arange(n) % 3

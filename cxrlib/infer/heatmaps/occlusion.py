"""Occlusion sensitivity (Zeiler and Fergus, ECCV 2014): the heat of a pixel is the mean
drop of the target's calibrated probability when a grey patch hides it (a rise counts 0)."""

from __future__ import annotations

import numpy as np
from scipy import special

from cxrlib.infer.heatmaps.base import ExplainedModel, HeatmapMethod


def patch_starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of patches of ``patch`` px every ``stride`` px that cover ``size`` px."""
    last = max(0, size - patch)
    return np.unique(np.r_[np.arange(0, last + 1, max(1, stride)), last])


class OcclusionSensitivity(HeatmapMethod):
    """Probability drop when a grey patch hides each part of the input; ``patch`` and
    ``stride`` are fractions of the input's side, ``batch_size`` copies per forward pass."""

    def __init__(
        self,
        model: ExplainedModel,
        patch: float = 0.25,
        stride: float = 0.125,
        batch_size: int = 64,
    ) -> None:
        super().__init__(model)
        if not 0 < stride <= patch <= 1:
            raise ValueError(f"need 0 < stride <= patch <= 1, got {stride}, {patch}")
        self.patch = patch
        self.stride = stride
        self.batch_size = batch_size

    def boxes(self) -> list[tuple[int, int, int]]:
        """``(top, left, side)`` of every patch, in input pixels."""
        s = self.model.size
        side = max(1, round(self.patch * s))
        starts = patch_starts(s, side, round(self.stride * s))
        return [(int(t), int(left), side) for t in starts for left in starts]

    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        """The un-normalised map at input resolution: mean probability drop per pixel."""
        boxes = self.boxes()
        copies = np.repeat(xb[:1, ..., 0], 1 + len(boxes), axis=0)
        grey = np.float32(xb.mean())
        for i, (top, left, side) in enumerate(boxes, start=1):
            copies[i, top : top + side, left : left + side] = grey
        clf, step = self.model.classifier, self.batch_size
        logits = np.concatenate(
            [clf.logits(copies[i : i + step]) for i in range(0, len(copies), step)]
        )
        # Calibrated, in float64: a freshly initialised network (the randomisation check)
        # has logits so close that float32 probabilities cannot tell the copies apart.
        p = special.softmax(logits.astype(np.float64) / float(clf.temperature), axis=-1)[:, target]
        drops = np.maximum(p[0] - p[1:], 0.0)
        heat = np.zeros(xb.shape[1:3], np.float64)
        count = np.zeros(xb.shape[1:3], np.float64)
        for d, (top, left, side) in zip(drops, boxes, strict=True):
            heat[top : top + side, left : left + side] += d
            count[top : top + side, left : left + side] += 1
        return (heat / np.maximum(count, 1)).astype(np.float32)

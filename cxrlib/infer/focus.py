"""How much a heatmap is about the lungs, the verdict the user reads, and whether a map
points at real evidence (:func:`confidence_drops`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cxrlib.core.formatting import pct
from cxrlib.infer.preprocess import Box, PreprocessConfig, placement, prepare

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier

FOCUS_GOOD = 0.60
FOCUS_LOW = 0.40
FOCUS_LEVELS: tuple[str, ...] = ("good", "caution", "warning", "unknown")
#: Random areas blurred out per image, the baseline of :func:`confidence_drops`.
N_RANDOM = 3


def lung_focus(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside ``mask`` (same shape, else ValueError), in [0, 1];
    negative and non-finite values count as 0, and an all-zero map gives 0.0."""
    hm = np.asarray(heatmap, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if hm.shape != m.shape:
        raise ValueError(f"heatmap {hm.shape} and mask {m.shape} differ in shape")
    hm = np.where(np.isfinite(hm) & (hm > 0), hm, 0.0)
    total = hm.sum()
    return float(min(1.0, max(0.0, hm[m].sum() / total))) if total > 0 else 0.0


def focus_verdict(
    focus: float | None,
    lung_area: float | None,
    heatmap_empty: bool = False,
    view_share: float | None = None,
) -> tuple[str, str]:
    """``(level in FOCUS_LEVELS, sentence)`` for a lung focus and lung area (None without a
    mask); ``view_share`` is the lungs' share of the part of the image the model sees."""
    if focus is None or lung_area is None:
        return "unknown", "Lung focus is not available: no lung segmentation was run."
    if lung_area <= 0:
        return (
            "warning",
            "No lungs were found in this image, so the heatmap cannot be checked against "
            "them. Is this a frontal chest X-ray?",
        )
    if heatmap_empty:
        return "unknown", "The heatmap is empty for this class, so there is nothing to check."
    seen = f" and {pct(view_share)} of the region the model sees" if view_share is not None else ""
    text = (
        f"{pct(focus)} of the heatmap lies inside the lungs "
        f"(which cover {pct(lung_area)} of the image{seen})."
    )
    if focus >= FOCUS_GOOD:
        return "good", text
    if focus >= FOCUS_LOW:
        return (
            "caution",
            text + " Much of the model's attention is outside the lungs; look at the heatmap "
            "before trusting the prediction.",
        )
    return (
        "warning",
        text + " Most of the model's attention is outside the lungs: it may rely on text, "
        "markers, devices or borders instead of the lungs (a shortcut). Do not trust this "
        "prediction.",
    )


def hot_region_ious(heatmaps: Sequence[np.ndarray], percent: float = 15.0) -> np.ndarray:
    """(n, n) intersection over union of the hottest ``percent`` % regions of every pair of
    two or more same-shaped maps; two maps without a hot pixel agree (1)."""
    from cxrlib.infer.overlay import hottest_mask

    if len(heatmaps) < 2:
        raise ValueError("agreement needs at least two heatmaps")
    shapes = {np.shape(h) for h in heatmaps}
    if len(shapes) != 1:
        raise ValueError(f"heatmaps differ in shape: {sorted(shapes)}")
    hot = np.stack([hottest_mask(h, percent).ravel() for h in heatmaps]).astype(np.float64)
    both = hot @ hot.T
    union = hot.sum(axis=1)[:, None] + hot.sum(axis=1)[None, :] - both
    return np.divide(both, union, out=np.ones_like(both), where=union > 0)


def mean_over_pairs(table: np.ndarray) -> float:
    """The mean of a symmetric pair table above its diagonal."""
    return float(table[np.triu_indices(len(table), k=1)].mean())


def map_rank_correlation(
    a: np.ndarray, b: np.ndarray, box: Box | None = None, size: int = 64
) -> float:
    """Spearman rank correlation of two heatmaps of one image inside ``box`` (the crop the
    model saw), both area-averaged to ``size`` squared first; NaN when either is flat."""
    from scipy.stats import spearmanr

    if box is not None:
        top, bottom, left, right = box
        a, b = a[top:bottom, left:right], b[top:bottom, left:right]
    small = [
        cv2.resize(np.asarray(m, np.float32), (size, size), interpolation=cv2.INTER_AREA)
        for m in (a, b)
    ]
    if any(float(np.ptp(m)) == 0.0 for m in small):
        return float("nan")
    return float(spearmanr(small[0].ravel(), small[1].ravel()).statistic)


def flat_map_focus(mask: np.ndarray, crop: Box | None = None) -> float:
    """Lung focus of a flat heatmap: the share of the model's view inside the lungs."""
    m = np.asarray(mask, bool)
    if crop is not None:
        top, bottom, left, right = crop
        m = m[top:bottom, left:right]
    return float(m.mean()) if m.size else 0.0


@dataclass(frozen=True)
class ConfidenceDrop:
    """Target-class probabilities: untouched, hottest area blurred out, random areas (mean)."""

    class_index: int
    p_original: float
    p_hot: float
    p_random: float

    @property
    def drop_hot(self) -> float:
        return self.p_original - self.p_hot

    @property
    def drop_random(self) -> float:
        return self.p_original - self.p_random

    @property
    def score(self) -> float:
        """``drop_hot - drop_random``: > 0 means the map points at evidence."""
        return self.drop_hot - self.drop_random


def heatmap_to_input(
    heatmap: np.ndarray, shape: tuple[int, int], config: PreprocessConfig, crop: Box | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A heatmap in model-input space, and the mask of input pixels that show the image."""
    s = config.size
    (top, bottom, left, right), (by, bx, bh, bw) = placement(shape, config, crop)
    patch = np.asarray(heatmap, dtype=np.float32)[top:bottom, left:right]
    interp = cv2.INTER_AREA if patch.shape[0] >= bh else cv2.INTER_LINEAR
    out = np.zeros((s, s), np.float32)
    out[by : by + bh, bx : bx + bw] = cv2.resize(patch, (bw, bh), interpolation=interp)
    valid = np.zeros((s, s), bool)
    valid[by : by + bh, bx : bx + bw] = True
    return out, valid


def _top_mask(values: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` largest ``values`` among ``valid`` pixels (stable order)."""
    idx = np.flatnonzero(valid)
    order = np.argsort(-values.ravel()[idx], kind="stable")[:k]
    mask = np.zeros(values.size, bool)
    mask[idx[order]] = True
    return mask.reshape(values.shape)


def _fill(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Fills ``mask`` with a Gaussian-weighted mean of the pixels around it (none inside)."""
    keep = (~mask).astype(np.float32)
    xf = x.astype(np.float32)
    num = cv2.GaussianBlur(xf * keep, (0, 0), sigma)
    den = cv2.GaussianBlur(keep, (0, 0), sigma)
    fallback = float(xf[~mask].mean()) if (~mask).any() else float(xf.mean())
    filled = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback)
    out = x.copy()
    out[mask] = np.clip(filled[mask] + 0.5, 0, 255).astype(np.uint8)
    return out


def confidence_drops(
    classifier: Classifier,
    grays: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    class_indices: Sequence[int],
    fraction: float = 0.2,
    rng: np.random.Generator | None = None,
    batch_size: int = 64,
) -> list[ConfidenceDrop]:
    """One :class:`ConfidenceDrop` per image and heatmap of the class it explains, with
    ``fraction`` of the input blurred out; random areas are blobs of a smooth random field."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if not len(grays) == len(heatmaps) == len(class_indices):
        raise ValueError("grays, heatmaps and class_indices differ in length")
    rng = np.random.default_rng(0) if rng is None else rng
    cfg = classifier.preprocess
    s = cfg.size
    grid, sigma = max(2, s // 16), max(1.0, s / 16)
    stacks = []
    for gray, heatmap in zip(grays, heatmaps):
        crop = classifier.crop_boxes([gray])[0]
        x = prepare(gray, cfg, crop)
        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.shape == gray.shape[:2]:
            hm, valid = heatmap_to_input(hm, gray.shape[:2], cfg, crop)
        elif hm.shape == (s, s):
            valid = np.ones((s, s), bool)
        else:
            raise ValueError(f"heatmap {hm.shape} fits neither the image {gray.shape} nor {s}x{s}")
        k = max(1, int(round(fraction * valid.sum())))
        stacks += [x, _fill(x, _top_mask(np.nan_to_num(hm), valid, k), sigma)]
        for _ in range(N_RANDOM):
            field: np.ndarray = cv2.resize(rng.random((grid, grid), dtype=np.float32), (s, s))
            field += rng.random((s, s), dtype=np.float32) * 1e-4  # break ties
            stacks.append(_fill(x, _top_mask(field, valid, k), sigma))
    if not stacks:
        return []
    batch = np.stack(stacks)
    probs = np.concatenate(
        [
            classifier.probabilities(batch[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ]
    )
    per = 2 + N_RANDOM
    out = []
    for j, c in enumerate(class_indices):
        p = probs[j * per : (j + 1) * per, int(c)]
        out.append(ConfidenceDrop(int(c), float(p[0]), float(p[1]), float(p[2:].mean())))
    return out

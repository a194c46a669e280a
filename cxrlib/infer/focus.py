"""How much a heatmap is about the lungs, and whether it points at real evidence.

* :func:`lung_focus`: the share of the heatmap's mass inside a lung mask.
* :func:`confidence_drops`: a deletion check for
  ``evaluate --explain`` (the idea behind pytorch-grad-cam's confidence drop and
  ROAD): blur out the hottest ``fraction`` of the model input (fill it with a
  Gaussian-weighted mean of the pixels around it, which is how ROAD's
  imputation hides a region) and see how much the target class's probability
  falls, compared with blurring out an equally
  large *random* area. A faithful map should cost the model more confidence
  than the random area does (``score > 0``).

The random areas are the hottest pixels of a random smooth field (uniform
noise on a coarse grid, upsampled bilinearly), so they are blobs like a
heatmap's hot area, not scattered pixels: blurring scattered single pixels
barely changes an image and would make any heatmap look faithful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cxrlib.infer.preprocess import Box, PreprocessConfig, lung_view, placement

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier


def lung_focus(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass that lies inside ``mask``, in [0, 1].

    Negative and non-finite heatmap values count as 0. An all-zero heatmap has
    no mass to place, and gives 0.0 (never NaN); callers that must tell "empty
    map" from "all outside" check ``heatmap.max() > 0`` themselves.

    Args:
        heatmap: 2-D float map (any scale).
        mask: Boolean (or 0/1) mask of the same shape.

    Raises:
        ValueError: If the shapes differ.
    """
    hm = np.asarray(heatmap, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if hm.shape != m.shape:
        raise ValueError(f"heatmap {hm.shape} and mask {m.shape} differ in shape")
    hm = np.where(np.isfinite(hm) & (hm > 0), hm, 0.0)
    total = hm.sum()
    if not total > 0:
        return 0.0
    return float(min(1.0, max(0.0, hm[m].sum() / total)))


def hot_region_ious(heatmaps: Sequence[np.ndarray], percent: float = 15.0) -> np.ndarray:
    """Intersection over union of the hottest ``percent`` % regions of every pair of maps.

    The regions are those the app's "hottest region only" view shows
    (:func:`cxrlib.infer.overlay.hottest_mask`). Two maps without any hot pixel agree (1).

    Returns:
        (n, n) symmetric float array with ones on the diagonal.

    Raises:
        ValueError: fewer than two maps, or maps of different shapes.
    """
    from cxrlib.infer.overlay import hottest_mask

    if len(heatmaps) < 2:
        raise ValueError("agreement needs at least two heatmaps")
    shapes = {np.shape(h) for h in heatmaps}
    if len(shapes) != 1:
        raise ValueError(f"heatmaps differ in shape: {sorted(shapes)}")
    hot = [hottest_mask(h, percent) for h in heatmaps]
    out = np.ones((len(hot), len(hot)))
    for i in range(len(hot)):
        for j in range(i + 1, len(hot)):
            union = np.count_nonzero(hot[i] | hot[j])
            both = np.count_nonzero(hot[i] & hot[j])
            out[i, j] = out[j, i] = both / union if union else 1.0
    return out


def map_rank_correlation(
    a: np.ndarray, b: np.ndarray, box: Box | None = None, size: int = 64
) -> float:
    """Spearman rank correlation of two heatmaps of one image, over the model's view.

    Only ``box`` (the crop the model saw, if any) counts: outside it every map is 0 by
    construction, which would make any two maps look alike. Both are area-averaged to
    ``size`` x ``size`` first; tied values share their mean rank. NaN when either map
    is flat there (a correlation is undefined).
    """
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


def mean_over_pairs(table: np.ndarray) -> float:
    """The mean of a symmetric pair table (:func:`hot_region_ious`) above its diagonal."""
    return float(table[np.triu_indices(len(table), k=1)].mean())


@dataclass(frozen=True)
class ConfidenceDrop:
    """Target-class probabilities before and after blurring parts of the input.

    Attributes:
        class_index: The class whose probability is measured.
        p_original: Probability on the untouched model input.
        p_hot: Probability with the hottest area blurred out.
        p_random: Mean probability over the random areas blurred out.
    """

    class_index: int
    p_original: float
    p_hot: float
    p_random: float

    @property
    def drop_hot(self) -> float:
        """Confidence lost when the hottest area is blurred (can be negative)."""
        return self.p_original - self.p_hot

    @property
    def drop_random(self) -> float:
        """Confidence lost when a random area of the same size is blurred."""
        return self.p_original - self.p_random

    @property
    def score(self) -> float:
        """``drop_hot - drop_random``: > 0 means the map points at evidence."""
        return self.drop_hot - self.drop_random


def flat_map_focus(
    mask: np.ndarray, crop: Box | None = None, view: np.ndarray | None = None
) -> float:
    """Lung focus of a flat heatmap over the model's field of view: the share of that view
    inside the lungs (``mask``).

    The view is the whole image, or the crop box ``(top, bottom, left, right)``, and
    within it, for a lung-mask model, only ``view`` (:func:`cxrlib.infer.preprocess.lung_view`;
    an empty one masks nothing, as in :func:`cxrlib.infer.preprocess.mask_outside_lungs`).
    """
    m = np.asarray(mask, bool)
    v = None if view is None or not np.any(view) else np.asarray(view, bool)
    if crop is not None:
        top, bottom, left, right = crop
        m = m[top:bottom, left:right]
        v = None if v is None else v[top:bottom, left:right]
    if v is not None:
        return float(m[v].mean()) if v.any() else 0.0
    return float(m.mean()) if m.size else 0.0


def model_view_focus(
    mask: np.ndarray, frame: tuple[Box | None, np.ndarray | None], dilation: float
) -> float:
    """:func:`flat_map_focus` over what a model sees of an image: its crop box and, for a
    lung-mask model, its lung mask dilated by ``dilation`` (``frame``, as
    :meth:`cxrlib.infer.classifier.Classifier.lung_frames` gives it)."""
    box, lung = frame
    view = None if lung is None else lung_view(lung, mask.shape, dilation)
    return flat_map_focus(mask, box, view)


def heatmap_to_input(
    heatmap: np.ndarray, shape: tuple[int, int], config: PreprocessConfig, crop: Box | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Maps an image-space heatmap into model-input space (the inverse of
    :func:`cxrlib.infer.preprocess.heatmap_to_image`).

    Args:
        heatmap: Map over the original image, of ``shape``.
        shape: (height, width) of the original image.
        config: The preprocessing that makes the model input.
        crop: The crop box the model input is made with, if any.

    Returns:
        ``(map, valid)``: float32 (S, S) map and the boolean mask of input
        pixels that show the image (not padding).
    """
    s = config.size
    p = placement(shape, config, crop)
    top, bottom, left, right = p.crop
    by, bx, bh, bw = p.box
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
    """Blurs out ``mask``: its pixels become a Gaussian-weighted mean of the pixels
    *around* it (normalised convolution), so nothing of the hidden area leaks
    back in, unlike a plain blur that keeps a blurred copy of it."""
    keep = (~mask).astype(np.float32)
    xf = x.astype(np.float32)
    num = cv2.GaussianBlur(xf * keep, (0, 0), sigma)
    den = cv2.GaussianBlur(keep, (0, 0), sigma)
    fallback = float(xf[~mask].mean()) if (~mask).any() else float(xf.mean())
    filled = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback)
    out = x.copy()
    out[mask] = np.clip(filled[mask] + 0.5, 0, 255).astype(np.uint8)
    return out


def _variants(
    x: np.ndarray,
    hm: np.ndarray,
    valid: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    n_random: int,
    sigma: float,
) -> np.ndarray:
    """Stack [original, hot area blurred out, random areas blurred out x n_random]."""
    s = x.shape[0]
    k = max(1, int(round(fraction * valid.sum())))
    out = [x, _fill(x, _top_mask(hm, valid, k), sigma)]
    grid = max(2, s // 16)
    for _ in range(n_random):
        field: np.ndarray = cv2.resize(
            rng.random((grid, grid), dtype=np.float32), (s, s), interpolation=cv2.INTER_LINEAR
        )
        field += rng.random((s, s), dtype=np.float32) * 1e-4  # break ties
        out.append(_fill(x, _top_mask(field, valid, k), sigma))
    return np.stack(out)


def confidence_drops(
    classifier: Classifier,
    grays: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    class_indices: Sequence[int],
    fraction: float = 0.2,
    rng: np.random.Generator | None = None,
    n_random: int = 3,
    batch_size: int = 64,
) -> list[ConfidenceDrop]:
    """Confidence drops for many images, all variants in few batched model calls.

    Args:
        classifier: The classifier (its calibrated probabilities are used).
        grays: 2-D uint8 images.
        heatmaps: One map per image, at the image's size or at the model input's (S, S).
        class_indices: The class each map explains.
        fraction: Share of the image's input pixels blurred out (0 < fraction < 1).
        rng: Random generator for the random areas (default: seeded 0).
        n_random: Random areas averaged per image.
        batch_size: Inputs per model call.

    Returns:
        One :class:`ConfidenceDrop` per image.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if not len(grays) == len(heatmaps) == len(class_indices):
        raise ValueError("grays, heatmaps and class_indices differ in length")
    rng = np.random.default_rng(0) if rng is None else rng
    cfg = classifier.preprocess
    s = cfg.size
    sigma = max(1.0, s / 16)
    per = 2 + n_random
    stacks = []
    for gray, heatmap in zip(grays, heatmaps):
        crop, lung = classifier.lung_frames([gray])[0]
        x = classifier.prepare(gray, crop, lung)
        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.shape == gray.shape[:2]:
            hm, valid = heatmap_to_input(hm, gray.shape[:2], cfg, crop)
        elif hm.shape == (s, s):
            valid = np.ones((s, s), bool)
        else:
            raise ValueError(f"heatmap {hm.shape} fits neither the image {gray.shape} nor {s}x{s}")
        stacks.append(_variants(x, np.nan_to_num(hm), valid, fraction, rng, n_random, sigma))
    if not stacks:
        return []
    batch = np.concatenate(stacks)
    probs = np.concatenate(
        [
            classifier.probabilities(batch[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ]
    )
    out = []
    for j, c in enumerate(class_indices):
        p = probs[j * per : (j + 1) * per, int(c)]
        out.append(ConfidenceDrop(int(c), float(p[0]), float(p[1]), float(p[2:].mean())))
    return out

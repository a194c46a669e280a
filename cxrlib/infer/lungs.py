"""The lung segmenter at inference: a small two-channel U-Net, its thresholds and
its mask post-processing.

The training set (``../shared/lungs``, see its SOURCES.md) mixes two mask
conventions: ``generalblockchain`` and ``openist_normal`` outline the visible
lung field (heart excluded), ``v7labs_ieee8023`` outlines the whole lung,
including the retro-cardiac part behind the heart and the lung behind the
diaphragm. So the U-Net has one sigmoid channel per convention over a shared
trunk (:mod:`cxrlib.train.segmenter` trains it, each image training the channel
of its own convention).

Conventions (output channels, in order):
    ``visible``: the visible lung field, heart excluded (the default).
    ``full``: the whole lung, retro-cardiac lung included.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
from scipy import ndimage

from cxrlib.core import settings
from cxrlib.core.errors import ModelError
from cxrlib.core.hashing import sha256_file
from cxrlib.infer.preprocess import Box, PreprocessConfig, heatmap_to_image, prepare, small_mask
from cxrlib.infer.runtime import compiled_forward, image_memo, per_image

#: The committed segmenter (where training writes); loading follows ``$CXR_SEGMENTER``.
DEFAULT_SEGMENTER_PATH = settings.resolve(settings.DEFAULT_SEGMENTER)
CONVENTIONS: tuple[str, ...] = ("visible", "full")
DEFAULT_CONVENTION = "visible"
OUTPUT_LAYER = "lung_prob"


# --------------------------------------------------------------------------- mask helpers


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks of the same shape (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _check_pair(gray: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gray = np.asarray(gray)
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {gray.shape} {gray.dtype}")
    mask = np.asarray(mask, bool)
    if mask.shape != gray.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image {gray.shape}")
    return gray, mask


def _fill_value(gray: np.ndarray) -> np.uint8:
    return np.uint8(int(round(float(gray.mean())))) if gray.size else np.uint8(0)


def erase_lungs(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Returns a copy with the lung area filled with the image's mean (ablation)."""
    gray, mask = _check_pair(gray, mask)
    out = gray.copy()
    out[mask] = _fill_value(gray)
    return out


def lungs_only(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Returns a copy with everything outside the lungs filled with the image's mean."""
    gray, mask = _check_pair(gray, mask)
    out = gray.copy()
    out[~mask] = _fill_value(gray)
    return out


def lung_bbox(mask: np.ndarray, margin: float = 0.05) -> tuple[int, int, int, int]:
    """Bounding box of the lungs, for lung-field cropping.

    Args:
        mask: 2-D boolean lung mask.
        margin: Extra border on each side, as a fraction of the image's height
            (top/bottom) and width (left/right); clipped to the image.

    Returns:
        ``(top, bottom, left, right)`` with exclusive ``bottom``/``right``
        (``gray[top:bottom, left:right]``); the whole image when the mask is
        empty.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    h, w = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, h, 0, w
    dy, dx = int(round(margin * h)), int(round(margin * w))
    return (
        max(0, int(rows[0]) - dy),
        min(h, int(rows[-1]) + 1 + dy),
        max(0, int(cols[0]) - dx),
        min(w, int(cols[-1]) + 1 + dx),
    )


# Below this share of the image, a "lung" mask is more likely a segmenter
# failure (a non-CXR, an odd crop) than lungs: such images are not cropped.
MIN_CROP_AREA = 0.05
CROP_CONVENTION = "full"  # the whole lung, so lower lobes behind the heart/diaphragm stay in


def crop_box(mask: np.ndarray, margin: float, min_area: float = MIN_CROP_AREA) -> Box | None:
    """The lung-field crop of a mask: its bounding box plus ``margin``.

    Returns:
        ``(top, bottom, left, right)``, or None when the mask covers less than
        ``min_area`` of the image (no reliable lungs: the caller keeps the
        whole image).
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2 or mask.mean() < min_area:
        return None
    return lung_bbox(mask, margin)


def _squeeze(gray: np.ndarray) -> np.ndarray:
    gray = np.asarray(gray)
    return gray[..., 0] if gray.ndim == 3 and gray.shape[-1] == 1 else gray


def postprocess(prob: np.ndarray, threshold: float = 0.5, min_ratio: float = 0.1) -> np.ndarray:
    """Probability map -> clean lung mask.

    Thresholds, keeps the two largest 8-connected components (the second only
    if it has at least ``min_ratio`` of the largest one's area) and fills holes.
    """
    binary = np.asarray(prob) > threshold
    if not binary.any():
        return binary
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1][:2]
    keep = [i + 1 for i in order if areas[i] >= min_ratio * areas[order[0]]]
    return ndimage.binary_fill_holes(np.isin(labels, keep))


# --------------------------------------------------------------------------- segmenter


#: Images whose segmentation a :class:`LungSegmenter` keeps (a model server's batch fits).
MEMO_IMAGES = 32


class _Segmentation:
    """One image's model outputs (every convention) and the masks made from them so far.

    Slots only: the memo counts it as a small entry (it is bounded by images, not bytes).
    """

    __slots__ = ("masks", "outputs")

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs
        self.masks: dict[str, np.ndarray] = {}


class LungSegmenter:
    """A trained lung U-Net with its preprocessing, thresholds and post-processing.

    The one cache of lung masks: each image's outputs and masks are kept per image
    content (:func:`cxrlib.infer.runtime.image_key`) in one LRU, so the classifier's
    crop box (``full``) and the lung-focus mask (``visible``) of an image come from one
    forward pass, and asking again (another method, class or caller) segments nothing.
    Callers ask here and keep no mask of their own. Cached masks are read-only.

    Thread-safe: the compiled forward pass is guarded by a lock.
    """

    def __init__(self, model: keras.Model, meta: dict[str, Any]):
        self.model = model
        self.meta = meta
        self.preprocess = PreprocessConfig.from_dict(meta.get("preprocess", {}))
        self.size = int(model.input_shape[1])
        if self.preprocess.size != self.size:
            raise ModelError(f"preprocess size {self.preprocess.size} != model input {self.size}")
        self.conventions: tuple[str, ...] = tuple(meta.get("conventions", CONVENTIONS))
        if len(self.conventions) != int(model.output_shape[-1]):
            raise ModelError("number of conventions does not match the model outputs")
        self.default_convention: str = meta.get("default_convention", self.conventions[0])
        self.thresholds: dict[str, float] = {
            c: float(meta.get("thresholds", {}).get(c, 0.5)) for c in self.conventions
        }
        self._lock = threading.Lock()
        self._memo = image_memo(MEMO_IMAGES)
        self._forward = compiled_forward(model, self.size)

    def channel(self, convention: str | None) -> int:
        """The output channel of ``convention`` (None: the default one)."""
        convention = convention or self.default_convention
        if convention not in self.conventions:
            raise ValueError(f"unknown convention {convention!r}; use one of {self.conventions}")
        return self.conventions.index(convention)

    def prepare(self, gray: np.ndarray) -> np.ndarray:
        """Grayscale image -> uint8 model input ``(size, size)``."""
        return prepare(gray, self.preprocess)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Model-space probabilities for prepared inputs ``(N, size, size)`` uint8."""
        x = np.asarray(batch, np.float32).reshape(-1, self.size, self.size, 1)
        with self._lock:
            return self._forward(x)

    def _segmentations(self, grays: Sequence[np.ndarray]) -> list[_Segmentation]:
        """Each image's entry in the memo; one forward pass for those not in it."""
        return per_image(
            self._memo,
            grays,
            lambda todo: [
                _Segmentation(o) for o in self.forward(np.stack([self.prepare(g) for g in todo]))
            ],
        )

    def _mask(self, seg: _Segmentation, gray: np.ndarray, convention: str | None) -> np.ndarray:
        """The mask of ``convention`` of one entry, made on first use and kept in it."""
        conv = convention or self.default_convention
        mask = seg.masks.get(conv)
        if mask is None:
            prob = seg.outputs[..., self.channel(conv)]
            full = heatmap_to_image(prob, gray.shape[:2], self.preprocess)
            mask = postprocess(full, self.thresholds[conv])
            mask.flags.writeable = False
            seg.masks[conv] = mask
        return mask

    def outputs(self, grays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Model-space probabilities (all conventions) of raw images (see the memo above)."""
        return [s.outputs for s in self._segmentations(grays)]

    def forget_images(self) -> None:
        """Drops the remembered segmentations (so the next call segments afresh, as for a new
        image; a timing of one segmentation calls this first)."""
        self._memo.clear()

    def probability(self, gray: np.ndarray, convention: str | None = None) -> np.ndarray:
        """Lung probability, float32 at the image's own size."""
        gray = _squeeze(gray)
        prob = self.outputs([gray])[0][..., self.channel(convention)]
        return heatmap_to_image(prob, gray.shape[:2], self.preprocess)

    def segment(self, gray: np.ndarray, convention: str | None = None) -> np.ndarray:
        """Boolean lung mask at the image's own size (may be empty: no lungs found)."""
        gray = _squeeze(gray)
        return self._mask(self._segmentations([gray])[0], gray, convention)

    def segment_many(
        self, grays: Sequence[np.ndarray], conventions: Sequence[str | None], batch_size: int = 32
    ) -> list[np.ndarray]:
        """Segments many images (batched forward pass), one convention per image."""
        masks: list[np.ndarray] = []
        for start in range(0, len(grays), batch_size):
            chunk = grays[start : start + batch_size]
            segs = self._segmentations(chunk)
            for g, s, conv in zip(chunk, segs, conventions[start : start + batch_size]):
                masks.append(self._mask(s, g, conv))
        return masks

    def frames(
        self, grays: Sequence[np.ndarray], margin: float, batch_size: int = 32
    ) -> list[tuple[Box | None, np.ndarray]]:
        """Crop box and stored-size lung mask (:func:`cxrlib.infer.preprocess.small_mask`) of many images.

        Both come from the ``full`` channel (:data:`CROP_CONVENTION`) of one forward pass.
        """
        masks = self.segment_many(list(grays), [CROP_CONVENTION] * len(grays), batch_size)
        return [(crop_box(m, margin), small_mask(m)) for m in masks]


def load_segmenter(path: str | os.PathLike[str] | None = None) -> LungSegmenter:
    """Loads a segmenter from ``path`` (``.keras``, default
    :func:`cxrlib.core.settings.segmenter_path`) and its ``.json`` beside it.

    Raises:
        ModelError: The file or its JSON is missing or unreadable.
    """
    path = settings.segmenter_path() if path is None else Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise ModelError(f"lung segmenter not found: {path} (+ .json)")
    try:
        model = keras.saving.load_model(path, compile=False)
        meta = json.loads(meta_path.read_text())
        meta["weights_sha256"] = sha256_file(path)  # names the crops a lung-crop model saw
    except Exception as exc:  # noqa: BLE001 - any load failure is a model error
        raise ModelError(f"cannot load lung segmenter {path}: {exc}") from exc
    return LungSegmenter(model, meta)


@functools.cache
def _segmenter_at(path: Path) -> LungSegmenter:
    return load_segmenter(path)


def default_segmenter() -> LungSegmenter:
    """The segmenter at :func:`cxrlib.core.settings.segmenter_path`, loaded once per path."""
    return _segmenter_at(settings.segmenter_path())

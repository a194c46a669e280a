"""The lung segmenter at inference: a small U-Net with one sigmoid channel per mask
convention: ``visible`` (heart excluded, the default) and ``full``, the whole lung."""

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
from pydantic import BaseModel, ConfigDict
from scipy import ndimage

from cxrlib.core import settings
from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import ModelError
from cxrlib.core.hashing import sha256_bytes, sha256_file
from cxrlib.infer.preprocess import (
    Box,
    PreprocessConfig,
    check_gray,
    heatmap_to_image,
    prepare,
    small_mask,
)
from cxrlib.infer.runtime import compiled_forward

#: The committed segmenter (where training writes); loading follows ``$CXR_SEGMENTER``.
DEFAULT_SEGMENTER_PATH = settings.resolve(settings.DEFAULT_SEGMENTER)
CONVENTIONS: tuple[str, ...] = ("visible", "full")
DEFAULT_CONVENTION = "visible"
OUTPUT_LAYER = "lung_prob"
#: Below this share of the image a "lung" mask is more likely a failure: not cropped.
MIN_CROP_AREA = 0.05
#: The crop box holds the whole lung, so lower lobes behind the heart and diaphragm stay in.
CROP_CONVENTION = "full"
#: Images whose segmentation a :class:`LungSegmenter` keeps (a model server's batch fits).
MEMO_IMAGES = 32


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks of the same shape (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _filled(gray: np.ndarray, mask: np.ndarray, fill_inside: bool) -> np.ndarray:
    """A copy of ``gray`` with the inside (or outside) of ``mask`` set to the image's mean."""
    gray, mask = check_gray(np.asarray(gray)), np.asarray(mask, bool)
    if mask.shape != gray.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image {gray.shape}")
    out = gray.copy()
    out[mask if fill_inside else ~mask] = np.uint8(round(float(gray.mean()))) if gray.size else 0
    return out


def erase_lungs(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy with the lung area filled with the image's mean (ablation)."""
    return _filled(gray, mask, fill_inside=True)


def lungs_only(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy with everything outside the lungs filled with the image's mean."""
    return _filled(gray, mask, fill_inside=False)


def crop_box(mask: np.ndarray, margin: float, min_area: float = MIN_CROP_AREA) -> Box | None:
    """The lung box of a 2-D mask plus ``margin`` (of the image's sides), clipped to the
    image; None when the mask covers less than ``min_area`` of the image."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2 or mask.mean() < min_area:
        return None
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


def postprocess(prob: np.ndarray, threshold: float = 0.5, min_ratio: float = 0.1) -> np.ndarray:
    """Probability map -> lung mask: thresholded, the two largest components kept (the second
    only with ``min_ratio`` of the largest one's area), holes filled."""
    binary = np.asarray(prob) > threshold
    if not binary.any():
        return binary
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1][:2]
    keep = [i + 1 for i in order if areas[i] >= min_ratio * areas[order[0]]]
    return ndimage.binary_fill_holes(np.isin(labels, keep))


class SegmenterRecord(BaseModel):
    """What inference reads of a segmenter's JSON (``models/lung_segmenter.json``)."""

    model_config = ConfigDict(extra="ignore")

    preprocess: PreprocessConfig = PreprocessConfig()
    conventions: tuple[str, ...] = CONVENTIONS
    default_convention: str | None = None
    thresholds: dict[str, float] = {}


class LungSegmenter:
    """A trained lung U-Net with its preprocessing and thresholds; it keeps each image's
    outputs and masks, so the crop box and the lung-focus mask come from one forward pass."""

    def __init__(self, model: keras.Model, meta: dict[str, Any]):
        self.model = model
        self.meta = meta
        record = SegmenterRecord.model_validate(meta)
        self.preprocess = record.preprocess
        self.size = int(model.input_shape[1])
        if self.preprocess.size != self.size:
            raise ModelError(f"preprocess size {self.preprocess.size} != model input {self.size}")
        self.conventions = record.conventions
        if len(self.conventions) != int(model.output_shape[-1]):
            raise ModelError("number of conventions does not match the model outputs")
        self.default_convention: str = record.default_convention or self.conventions[0]
        self.thresholds = {c: record.thresholds.get(c, 0.5) for c in self.conventions}
        self._lock = threading.Lock()
        self._memo = LRUCache(max_items=MEMO_IMAGES, max_bytes=2**40)  # bounded by images
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

    def forget_images(self) -> None:
        """Drops the kept segmentations (for timings)."""
        self._memo.clear()

    def _segmentations(
        self, grays: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Each image's (outputs, masks made so far); one forward pass for those not kept."""
        keys = [
            sha256_bytes(repr(g.shape).encode() + np.ascontiguousarray(g).tobytes()) for g in grays
        ]
        found = {k: s for k in keys if (s := self._memo.get(k)) is not None}
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            outputs = self.forward(np.stack([self.prepare(grays[i]) for i in todo]))
            for i, out in zip(todo, outputs, strict=True):
                found[keys[i]] = (out, {})
                self._memo.put(keys[i], found[keys[i]])
        return [found[k] for k in keys]

    def segment_many(
        self, grays: Sequence[np.ndarray], conventions: Sequence[str | None]
    ) -> list[np.ndarray]:
        """Boolean lung masks at each image's size, one convention per image."""
        masks: list[np.ndarray] = []
        for start in range(0, len(grays), MEMO_IMAGES):
            chunk = grays[start : start + MEMO_IMAGES]
            convs = conventions[start : start + MEMO_IMAGES]
            for gray, (out, made), conv in zip(chunk, self._segmentations(chunk), convs):
                conv = conv or self.default_convention
                if conv not in made:
                    prob = heatmap_to_image(
                        out[..., self.channel(conv)], gray.shape[:2], self.preprocess
                    )
                    made[conv] = postprocess(prob, self.thresholds[conv])
                    made[conv].flags.writeable = False
                masks.append(made[conv])
        return masks

    def segment(self, gray: np.ndarray, convention: str | None = None) -> np.ndarray:
        """Boolean lung mask at the image's own size (may be empty: no lungs found)."""
        return self.segment_many([check_gray(np.asarray(gray))], [convention])[0]

    def frames(
        self, grays: Sequence[np.ndarray], margin: float
    ) -> list[tuple[Box | None, np.ndarray]]:
        """Crop box and stored-size lung mask of many images (:data:`CROP_CONVENTION`)."""
        masks = self.segment_many(list(grays), [CROP_CONVENTION] * len(grays))
        return [(crop_box(m, margin), small_mask(m)) for m in masks]


def load_segmenter(path: str | os.PathLike[str] | None = None) -> LungSegmenter:
    """Loads a segmenter and the ``.json`` beside it; ModelError when missing or unreadable."""
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

"""Lung-field segmentation: a small U-Net, its training CLI and mask helpers.

The training set (``../shared/lungs``, see its SOURCES.md) mixes two mask
conventions: ``generalblockchain`` and ``openist_normal`` outline the visible
lung field (heart excluded), ``v7labs_ieee8023`` outlines the whole lung,
including the retro-cardiac part behind the heart and the lung behind the
diaphragm. One output trained on both would learn a blur of the two and
score worse on every source. So the U-Net has one sigmoid channel per
convention over a shared trunk; each training image only trains the channel
of its own convention, and each source is evaluated on its own channel.

Conventions (output channels, in order):
    ``visible``: the visible lung field, heart excluded (the default).
    ``full``: the whole lung, retro-cardiac lung included.

Usage::

    python -m cxrlib.infer.lungs train --data ../shared/lungs --out models/
    python -m cxrlib.infer.lungs evaluate --data ../shared/lungs --split test
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from cxrlib.infer.classifier import ImageMemo, ModelError, sha256_file  # noqa: E402
from cxrlib.infer.preprocess import (  # noqa: E402
    Box,
    PreprocessConfig,
    heatmap_to_image,
    normalize_contrast,
    prepare,
    small_mask,
    to_geometry,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SEGMENTER_PATH = ROOT / "models" / "lung_segmenter.keras"
CONVENTIONS: tuple[str, ...] = ("visible", "full")
DEFAULT_CONVENTION = "visible"
SOURCE_CONVENTION: dict[str, str] = {
    "generalblockchain": "visible",
    "openist_normal": "visible",
    "v7labs_ieee8023": "full",
}
OUTPUT_LAYER = "lung_prob"


# --------------------------------------------------------------------------- model


def _conv_block(x: keras.KerasTensor, filters: int, name: str, momentum: float) -> Any:
    for i in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_unet(
    size: int = 128,
    base_filters: int = 16,
    depth: int = 4,
    max_filters: int = 96,
    outputs: int = len(CONVENTIONS),
    bn_momentum: float = 0.9,
) -> keras.Model:
    """Builds a flat functional U-Net.

    Args:
        size: Side of the square input, divisible by ``2**depth``.
        base_filters: Filters at full resolution; doubled per level.
        depth: Number of down-sampling steps.
        max_filters: Cap on filters per level (keeps the file small).
        outputs: Sigmoid output channels (one per mask convention).
        bn_momentum: BatchNorm momentum (0.9: statistics keep up when training
            from scratch for a few thousand steps).

    Returns:
        Model mapping ``(None, size, size, 1)`` raw 0..255 floats to
        ``(None, size, size, outputs)`` lung probabilities.
    """
    if size % (2**depth):
        raise ValueError(f"size {size} must be divisible by {2**depth}")
    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skips = []
    for d in range(depth):
        x = _conv_block(x, min(base_filters * 2**d, max_filters), f"enc{d}", bn_momentum)
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"enc{d}_pool")(x)
    x = _conv_block(x, min(base_filters * 2**depth, max_filters), "mid", bn_momentum)
    for d in reversed(range(depth)):
        x = keras.layers.UpSampling2D(interpolation="bilinear", name=f"dec{d}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{d}_cat")([x, skips[d]])
        x = _conv_block(x, min(base_filters * 2**d, max_filters), f"dec{d}", bn_momentum)
    out = keras.layers.Conv2D(outputs, 1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name="lung_unet")


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


RECENT = 8


class LungSegmenter:
    """A trained lung U-Net with its preprocessing, thresholds and post-processing.

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
        # The last few images' outputs, so the crop box ("full") and the lung-focus
        # mask ("visible") of one uploaded image come from one forward pass.
        self._recent = ImageMemo(RECENT)
        self._forward = tf.function(
            self._call,
            input_signature=[tf.TensorSpec((None, self.size, self.size, 1), tf.float32)],
        )

    def _call(self, x: tf.Tensor) -> tf.Tensor:
        return self.model(x, training=False)

    def _channel(self, convention: str | None) -> int:
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
            return self._forward(tf.constant(x)).numpy()

    def outputs(self, grays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Model-space probabilities (all conventions) of raw images, one forward pass
        for those not among the last :data:`RECENT` images seen."""
        return self._recent.get_many(
            grays, lambda todo: list(self.forward(np.stack([self.prepare(g) for g in todo])))
        )

    def forget_images(self) -> None:
        """Drops the remembered outputs (so the next call segments afresh, as for a new image)."""
        self._recent.clear()

    def probability(self, gray: np.ndarray, convention: str | None = None) -> np.ndarray:
        """Lung probability, float32 at the image's own size."""
        gray = np.asarray(gray)
        if gray.ndim == 3 and gray.shape[-1] == 1:
            gray = gray[..., 0]
        prob = self.outputs([gray])[0][..., self._channel(convention)]
        return heatmap_to_image(prob, gray.shape[:2], self.preprocess)

    def segment(self, gray: np.ndarray, convention: str | None = None) -> np.ndarray:
        """Boolean lung mask at the image's own size (may be empty: no lungs found)."""
        convention = convention or self.default_convention
        prob = self.probability(gray, convention)
        return postprocess(prob, self.thresholds[convention])

    def segment_many(
        self, grays: Sequence[np.ndarray], conventions: Sequence[str | None], batch_size: int = 32
    ) -> list[np.ndarray]:
        """Segments many images (batched forward pass), one convention per image."""
        masks: list[np.ndarray] = []
        for start in range(0, len(grays), batch_size):
            chunk = grays[start : start + batch_size]
            probs = self.outputs(chunk)
            for g, p, conv in zip(chunk, probs, conventions[start : start + batch_size]):
                conv = conv or self.default_convention
                full = heatmap_to_image(p[..., self._channel(conv)], g.shape[:2], self.preprocess)
                masks.append(postprocess(full, self.thresholds[conv]))
        return masks

    def crop_boxes(
        self, grays: Sequence[np.ndarray], margin: float, batch_size: int = 32
    ) -> list[Box | None]:
        """Lung-field crop boxes (:func:`crop_box`) of many images, batched."""
        return [box for box, _ in self.frames(grays, margin, batch_size)]

    def frames(
        self, grays: Sequence[np.ndarray], margin: float, batch_size: int = 32
    ) -> list[tuple[Box | None, np.ndarray]]:
        """Crop box and stored-size lung mask (:func:`cxrlib.infer.preprocess.small_mask`) of many images.

        Both come from the ``full`` channel (:data:`CROP_CONVENTION`) of one forward pass.
        """
        masks = self.segment_many(list(grays), [CROP_CONVENTION] * len(grays), batch_size)
        return [(crop_box(m, margin), small_mask(m)) for m in masks]


def load_segmenter(path: str | os.PathLike[str] = DEFAULT_SEGMENTER_PATH) -> LungSegmenter:
    """Loads a segmenter from ``path`` (``.keras``) and its ``.json`` beside it.

    Raises:
        ModelError: The file or its JSON is missing or unreadable.
    """
    path = Path(path)
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


@functools.lru_cache(maxsize=1)
def default_segmenter() -> LungSegmenter:
    """The committed segmenter, loaded once."""
    return load_segmenter(DEFAULT_SEGMENTER_PATH)


def segment(gray: np.ndarray, convention: str | None = None) -> np.ndarray:
    """Lung mask of ``gray`` with the committed segmenter (see :class:`LungSegmenter`)."""
    return default_segmenter().segment(gray, convention)


# --------------------------------------------------------------------------- data


@dataclass
class Pair:
    """One image/mask pair at its own size."""

    image: np.ndarray
    mask: np.ndarray
    source: str
    split: str
    name: str

    @property
    def convention(self) -> str:
        return SOURCE_CONVENTION.get(self.source, DEFAULT_CONVENTION)


def _read_gray(path: Path) -> np.ndarray:
    # PIL, not cv2.imread: libpng prints a warning per PNG with an RGB iCCP profile.
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), np.uint8)


def load_pairs(data_dir: str | os.PathLike[str], split: str | None = None) -> list[Pair]:
    """Reads the manifest's pairs (optionally one split) as uint8 image + bool mask."""
    data_dir = Path(data_dir)
    pairs = []
    with open(data_dir / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if split and row["split"] != split:
                continue
            image, mask = _read_gray(data_dir / row["image"]), _read_gray(data_dir / row["mask"])
            pairs.append(Pair(image, mask > 127, row["source"], row["split"], row["image"]))
    return pairs


def _mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, affine (rotation, scale, aspect, shift), gamma/contrast, blur/noise.

    Acts on the geometry-resized raw uint8 image (before contrast
    normalisation) and its float mask; a horizontal flip is safe because the
    mask is the union of both lungs.
    """
    s = image.shape[0]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.uniform(-10, 10)
    sx, sy = rng.uniform(0.88, 1.12, size=2)
    tx, ty = rng.uniform(-0.06, 0.06, size=2) * s
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx, sy])
    c = np.array([s / 2, s / 2])
    m = np.hstack([rot, (c - rot @ c + [tx, ty])[:, None]]).astype(np.float32)
    image = cv2.warpAffine(
        np.ascontiguousarray(image),
        m,
        (s, s),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    mask = cv2.warpAffine(
        np.ascontiguousarray(mask),
        m,
        (s, s),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    x: np.ndarray = image.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.7, 1.4)
    x = (x - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.0))
    if rng.random() < 0.25:
        x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    image = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask


class _Batches(keras.utils.PyDataset):
    """Batches of (prepared image, [mask, convention-channel]) for ``fit``."""

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        channels: np.ndarray,
        config: PreprocessConfig,
        batch_size: int,
        seed: int,
        train: bool,
    ):
        super().__init__()
        self.images, self.masks, self.channels = images, masks, channels
        self.config, self.batch_size, self.seed, self.train = config, batch_size, seed, train
        self.epoch = 0
        self.order = np.arange(len(images))
        self._shuffle()

    def _shuffle(self) -> None:
        if self.train:
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(
                len(self.images)
            )

    def __len__(self) -> int:
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        xs, ys = [], []
        for i in idx:
            img, msk = self.images[i], self.masks[i]
            if self.train:
                img, msk = augment(img, msk, rng)
            xs.append(normalize_contrast(img, self.config))
            ys.append(np.stack([msk, np.full_like(msk, self.channels[i])], axis=-1))
        x = np.stack(xs).astype(np.float32)[..., None]
        return x, np.stack(ys).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def _select(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Target mask and the prediction of the target's own convention channel."""
    target, channel = y_true[..., 0], y_true[..., 1]
    pred = y_pred[..., 0] * (1.0 - channel) + y_pred[..., 1] * channel
    return target, pred


def soft_dice(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image soft Dice on the convention channel of each image."""
    target, pred = _select(y_true, y_pred)
    inter = tf.reduce_sum(target * pred, axis=[1, 2])
    total = tf.reduce_sum(target, axis=[1, 2]) + tf.reduce_sum(pred, axis=[1, 2])
    return (2.0 * inter + 1.0) / (total + 1.0)


def bce_dice_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image binary cross-entropy + (1 - soft Dice), on each image's channel."""
    target, pred = _select(y_true, y_pred)
    pred = tf.clip_by_value(pred, 1e-6, 1.0 - 1e-6)
    bce = -tf.reduce_mean(
        target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred), axis=[1, 2]
    )
    return bce + 1.0 - soft_dice(y_true, y_pred)


# --------------------------------------------------------------------------- evaluation


def evaluate(
    segmenter: LungSegmenter, pairs: Sequence[Pair], conventions: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """Mean Dice at each image's own size, overall and per source.

    Each image is scored on its source's convention unless ``conventions``
    overrides it (one per pair; ``None`` = the segmenter's default).
    """
    if conventions is None:
        conventions = [p.convention for p in pairs]
    masks = segmenter.segment_many([p.image for p in pairs], conventions)
    scores = [dice(m, p.mask) for m, p in zip(masks, pairs)]
    per_source: dict[str, dict[str, float]] = {}
    for src in sorted({p.source for p in pairs}):
        s = [d for d, p in zip(scores, pairs) if p.source == src]
        per_source[src] = {
            "dice": round(float(np.mean(s)), 4),
            "dice_min": round(float(np.min(s)), 4),
            "n": len(s),
        }
    return {
        "dice": round(float(np.mean(scores)), 4) if scores else float("nan"),
        "n": len(scores),
        "per_source": per_source,
    }


def _tune_thresholds(segmenter: LungSegmenter, pairs: Sequence[Pair]) -> dict[str, float]:
    """Per convention, the threshold in 0.3..0.7 with the best mean val Dice."""
    out = {}
    for conv in segmenter.conventions:
        group = [p for p in pairs if p.convention == conv]
        if not group:
            out[conv] = 0.5
            continue
        ch = segmenter._channel(conv)
        probs = []
        for start in range(0, len(group), 32):
            chunk = group[start : start + 32]
            fw = segmenter.forward(np.stack([segmenter.prepare(p.image) for p in chunk]))
            probs += [
                heatmap_to_image(f[..., ch], p.image.shape, segmenter.preprocess)
                for f, p in zip(fw, chunk)
            ]
        best = max(
            np.round(np.arange(0.3, 0.71, 0.05), 2),
            key=lambda t: np.mean([dice(postprocess(q, t), p.mask) for q, p in zip(probs, group)]),
        )
        out[conv] = float(best)
    return out


class _ValDice(keras.callbacks.Callback):
    """Adds ``val_dice_img`` (post-processed Dice at image size) to the epoch logs."""

    def __init__(self, pairs: Sequence[Pair], meta: dict[str, Any], time_limit_s: float | None):
        super().__init__()
        self.pairs, self.meta = pairs, meta
        self.time_limit_s, self.start = time_limit_s, time.perf_counter()
        self.stopped_for_time = False
        self._segmenter: LungSegmenter | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self._segmenter is None:  # one traced forward pass; it reads the live weights
            self._segmenter = LungSegmenter(self.model, self.meta)
        seg = self._segmenter
        logs["val_dice_img"] = evaluate(seg, self.pairs)["dice"] if self.pairs else 0.0
        elapsed = time.perf_counter() - self.start
        print(
            f"epoch {epoch + 1}: val Dice (image size) {logs['val_dice_img']:.4f}, "
            f"{elapsed:.0f} s elapsed",
            flush=True,
        )
        if self.time_limit_s and elapsed > self.time_limit_s:
            self.stopped_for_time = True
            self.model.stop_training = True


def _prepare_arrays(
    pairs: Sequence[Pair], config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.stack([to_geometry(p.image, config) for p in pairs])
    masks = np.stack([_mask_to_size(p.mask, config.size) for p in pairs])
    channels = np.array([CONVENTIONS.index(p.convention) for p in pairs], np.float32)
    return images, masks, channels


def _inference_ms(segmenter: LungSegmenter, gray: np.ndarray, repeats: int = 30) -> float:
    segmenter.segment(gray)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        segmenter.segment(gray)
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 1)


def train(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    epochs: int = 40,
    size: int = 128,
    base_filters: int = 16,
    depth: int = 4,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    patience: int = 10,
    seed: int = 0,
    limit: int | None = None,
    time_limit_s: float | None = None,
    command: str | None = None,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Trains the lung U-Net and writes ``lung_segmenter.keras`` + ``.json`` to ``out_dir``.

    Args:
        data_dir: Folder with ``manifest.csv`` (image, mask, source, split).
        out_dir: Where the model and its JSON go.
        epochs: Maximum epochs (early stopping on val Dice may end sooner).
        size: Model input side.
        base_filters: U-Net width at full resolution.
        depth: U-Net down-sampling steps.
        batch_size: Training batch size.
        learning_rate: Peak AdamW learning rate (cosine decay to 0).
        patience: Early-stopping patience in epochs.
        seed: Seed for weights, shuffling and augmentation.
        limit: Use at most this many pairs per split (quick tests).
        time_limit_s: Stop after the epoch that passes this many seconds.
        command: The command line, recorded in the JSON.
        verbose: Keras ``fit`` verbosity.

    Returns:
        The metadata written to the JSON.
    """
    keras.utils.set_random_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = PreprocessConfig(size=size, geometry="resize", contrast="clahe")
    splits = {s: load_pairs(data_dir, s)[:limit] for s in ("train", "val", "test")}
    meta: dict[str, Any] = {
        "kind": "lung_segmenter",
        "size": size,
        "base_filters": base_filters,
        "depth": depth,
        "preprocess": config.to_dict(),
        "conventions": list(CONVENTIONS),
        "default_convention": DEFAULT_CONVENTION,
        "source_convention": SOURCE_CONVENTION,
        "thresholds": {c: 0.5 for c in CONVENTIONS},
        "postprocess": "threshold, keep 2 largest components (2nd if >= 10% of 1st), fill holes",
        "seed": seed,
        "command": command,
        "data": str(data_dir),
        "n_pairs": {s: len(p) for s, p in splits.items()},
    }
    train_arrays = _prepare_arrays(splits["train"], config)
    train_data = _Batches(*train_arrays, config, batch_size, seed, train=True)
    callbacks: list[keras.callbacks.Callback] = []
    model = build_unet(size=size, base_filters=base_filters, depth=depth)
    steps = len(train_data) * epochs
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02),
            weight_decay=1e-4,
        ),
        loss=bce_dice_loss,
        metrics=[keras.metrics.MeanMetricWrapper(soft_dice, name="dice")],
    )
    val_cb = _ValDice(splits["val"], meta, time_limit_s)
    callbacks = [
        val_cb,
        keras.callbacks.EarlyStopping(
            monitor="val_dice_img", mode="max", patience=patience, restore_best_weights=True
        ),
    ]
    start = time.perf_counter()
    history = model.fit(
        train_data, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )
    train_seconds = time.perf_counter() - start
    hist = {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}
    best_epoch = int(np.argmax(hist["val_dice_img"])) + 1 if hist.get("val_dice_img") else 0

    # Save a clean, uncompiled copy (no optimizer state: smaller file, no custom loss).
    final = build_unet(size=size, base_filters=base_filters, depth=depth)
    final.set_weights(model.get_weights())
    segmenter = LungSegmenter(final, meta)
    if splits["val"]:
        meta["thresholds"] = _tune_thresholds(segmenter, splits["val"])
        segmenter.thresholds = dict(meta["thresholds"])
    results = {s: evaluate(segmenter, splits[s]) for s in ("val", "test") if splits[s]}
    cross = {
        s: evaluate(segmenter, splits[s], [DEFAULT_CONVENTION] * len(splits[s]))
        for s in ("val", "test")
        if splits[s]
    }
    meta.update(
        {
            "epochs_requested": epochs,
            "epochs_run": len(hist.get("loss", [])),
            "best_epoch": best_epoch,
            "stopped_for_time": val_cb.stopped_for_time,
            "train_seconds": round(train_seconds, 1),
            "params": int(final.count_params()),
            "history": hist,
            "dice": results,
            "dice_all_default_convention": cross,
            "dice_note": (
                "Mean per-image Dice at each image's own size after post-processing; "
                "each source scored on its own convention channel (source_convention). "
                "dice_all_default_convention scores every image on the default channel."
            ),
        }
    )
    if splits["val"]:
        meta["inference_ms"] = _inference_ms(segmenter, splits["val"][0].image)
    model_path = out_dir / "lung_segmenter.keras"
    final.save(model_path)
    meta["file_bytes"] = model_path.stat().st_size
    model_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------- CLI


def _print_results(title: str, res: dict[str, Any]) -> None:
    print(f"{title}: Dice {res['dice']:.4f} (n={res['n']})")
    for src, r in res["per_source"].items():
        print(f"  {src:<20} Dice {r['dice']:.4f}  min {r['dice_min']:.4f}  n={r['n']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``train`` / ``evaluate``)."""
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.infer.lungs", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the lung U-Net")
    t.add_argument("--data", required=True)
    t.add_argument("--out", default=str(ROOT / "models"))
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--size", type=int, default=128)
    t.add_argument("--base-filters", type=int, default=16)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--patience", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="at most N pairs per split")
    t.add_argument("--time-limit-min", type=float, default=None)
    e = sub.add_parser("evaluate", help="Dice per source on a split")
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--model", default=str(DEFAULT_SEGMENTER_PATH))
    e.add_argument(
        "--convention",
        default=None,
        choices=CONVENTIONS,
        help="score every image on this channel (default: each source's own)",
    )
    args = parser.parse_args(argv)
    if args.cmd == "train":
        raw = sys.argv[1:] if argv is None else list(argv)
        meta = train(
            args.data,
            args.out,
            epochs=args.epochs,
            size=args.size,
            base_filters=args.base_filters,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            patience=args.patience,
            seed=args.seed,
            limit=args.limit,
            time_limit_s=args.time_limit_min * 60 if args.time_limit_min else None,
            command="python -m cxrlib.infer.lungs " + shlex.join(raw),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        print(
            f"trained {meta['epochs_run']} epochs in {meta['train_seconds']:.0f} s "
            f"(best {meta['best_epoch']}); thresholds {meta['thresholds']}"
        )
        for split, res in meta["dice"].items():
            _print_results(split, res)
        print(f"inference {meta.get('inference_ms')} ms/image; file {meta['file_bytes']} bytes")
        return 0
    segmenter = load_segmenter(args.model)
    pairs = load_pairs(args.data, args.split)
    convs = [args.convention] * len(pairs) if args.convention else None
    _print_results(args.split, evaluate(segmenter, pairs, convs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The lung segmenter's training data: image/mask pairs, their augmentation and batches.

``../shared/lungs/manifest.csv`` lists ``image, mask, source, split``; each source
outlines the lungs in one of the segmenter's conventions (:data:`SOURCE_CONVENTION`),
and each pair trains only that convention's output channel.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
from PIL import Image

from cxrlib.infer.lungs import CONVENTIONS, DEFAULT_CONVENTION
from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast, to_geometry

#: The mask convention of each training source (the output channel it trains).
SOURCE_CONVENTION: dict[str, str] = {
    "generalblockchain": "visible",
    "openist_normal": "visible",
    "v7labs_ieee8023": "full",
}


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


def mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean mask as a float ``size`` x ``size`` training target (area-averaged edges)."""
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


class MaskBatches(keras.utils.PyDataset):
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


def training_arrays(
    pairs: list[Pair], config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images in model geometry, float masks at model size and each pair's channel index."""
    images = np.stack([to_geometry(p.image, config) for p in pairs])
    masks = np.stack([mask_to_size(p.mask, config.size) for p in pairs])
    channels = np.array([CONVENTIONS.index(p.convention) for p in pairs], np.float32)
    return images, masks, channels

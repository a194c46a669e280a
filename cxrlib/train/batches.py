"""The classifier's training batches: balanced, augmented, optionally mixed up.

Each batch draws images by their sampling weights (:func:`cxrlib.train.data.sampling_weights`),
augments their raw pixels (:mod:`cxrlib.train.augment`) and then normalises contrast, as
:func:`cxrlib.infer.preprocess.prepare` does at inference.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from cxrlib.infer.classifier import CLASS_NAMES
from cxrlib.infer.preprocess import normalize_contrast
from cxrlib.train.adversary import SOURCE_OUTPUT
from cxrlib.train.augment import augment, lung_ablation
from cxrlib.train.config import TrainConfig


class AugmentedBatches(keras.utils.PyDataset):
    """Endless balanced, augmented batches from a uint8 image array."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        probs: np.ndarray,
        cfg: TrainConfig,
        steps: int,
        lungs: np.ndarray | None = None,
        n_classes: int = len(CLASS_NAMES),
        sources: np.ndarray | None = None,
        n_sources: int = 0,
    ) -> None:
        """``lungs``: boolean lung masks in input geometry, needed by the lung ablation
        augmentations (``cfg.augment.uses_lungs``). ``sources``: each image's source code
        (of ``n_sources``), needed by the source adversary (``cfg.adversary``)."""
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)
        if cfg.augment.uses_lungs and lungs is None:
            raise ValueError("the lung ablation augmentations need lung masks")
        if cfg.adversary and (sources is None or n_sources < 1):
            raise ValueError("the source adversary needs each image's source")
        if cfg.adversary and cfg.augment.mixup:
            raise ValueError("mixup and the source adversary cannot be combined")
        self.images, self.labels, self.probs, self.lungs = images, labels, probs, lungs
        self.sources = None if sources is None else np.eye(n_sources, dtype=np.float32)[sources]
        self.cfg, self.steps, self.epoch = cfg, steps, 0
        self.targets = np.eye(n_classes, dtype=np.float32)
        self.uniform = np.full(n_classes, 1.0 / n_classes, np.float32)  # lungs erased

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        """Images ``(B, size, size, 1)`` float32 and one-hot (or, for an image whose lungs
        were erased, uniform) targets ``(B, n_classes)``. With the source adversary, both
        are dicts: the image and its class target in, the class and source targets out."""
        # Seeded per (epoch, batch) so a run is reproducible whatever the thread order.
        rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
        idx = rng.choice(len(self.labels), size=self.cfg.batch_size, p=self.probs)
        pre, aug = self.cfg.preprocess, self.cfg.augment
        lungs, sources = self.lungs, self.sources  # present when needed (see __init__)
        x, t = [], []
        for j in idx:
            img, erased = self.images[j], False
            if aug.uses_lungs and lungs is not None:
                img, erased = lung_ablation(img, lungs[j], rng, aug)
            x.append(normalize_contrast(augment(img, rng, aug), pre))
            t.append(self.uniform if erased else self.targets[self.labels[j]])
        xs, ts = np.stack(x)[..., None].astype(np.float32), np.stack(t)
        if aug.mixup:
            xs, ts = mixup(xs, ts, rng, aug.mixup)
        if self.cfg.adversary and sources is not None:
            return {"image": xs, "given_class": ts}, {"probs": ts, SOURCE_OUTPUT: sources[idx]}
        return xs, ts

    def on_epoch_end(self) -> None:
        self.epoch += 1


def mixup(
    x: np.ndarray, t: np.ndarray, rng: np.random.Generator, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Blends each image and target with a random partner from the same batch.

    Args:
        x: Images ``(B, ...)``, float.
        t: Targets ``(B, n_classes)``, rows summing to 1.
        rng: Random generator.
        alpha: Beta(alpha, alpha) parameter of the blend weight.

    Returns:
        ``(lam * x + (1 - lam) * x[partner], lam * t + (1 - lam) * t[partner])``, with
        ``lam`` drawn per image and kept at >= 0.5, so each image stays mostly itself.
    """
    lam = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    partner = rng.permutation(len(x))
    lx = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    return lx * x + (1 - lx) * x[partner], lam[:, None] * t + (1 - lam[:, None]) * t[partner]

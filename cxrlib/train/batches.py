"""The classifier's training batches: balanced and augmented.

Each batch draws images by their sampling weights (:func:`cxrlib.train.data.sampling_weights`),
augments their raw pixels (:mod:`cxrlib.train.augment`) and then normalises contrast, as
:func:`cxrlib.infer.preprocess.prepare` does at inference.
"""

from __future__ import annotations

import keras
import numpy as np

from cxrlib.infer.classifier import CLASS_NAMES
from cxrlib.infer.preprocess import normalize_contrast
from cxrlib.train.augment import augment
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
        n_classes: int = len(CLASS_NAMES),
    ) -> None:
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)
        self.images, self.labels, self.probs = images, labels, probs
        self.cfg, self.steps, self.epoch = cfg, steps, 0
        self.targets = np.eye(n_classes, dtype=np.float32)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(B, size, size, 1)`` float32 and one-hot targets ``(B, n_classes)``."""
        # Seeded per (epoch, batch) so a run is reproducible whatever the thread order.
        rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
        idx = rng.choice(len(self.labels), size=self.cfg.batch_size, p=self.probs)
        pre, aug = self.cfg.preprocess, self.cfg.augment
        x = [normalize_contrast(augment(self.images[j], rng, aug), pre) for j in idx]
        return np.stack(x)[..., None].astype(np.float32), self.targets[self.labels[idx]]

    def on_epoch_end(self) -> None:
        self.epoch += 1

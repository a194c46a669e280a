"""A tiny classifier trained to react to a bright blob, shared by the explanation tests.

Class 1 = a bright Gaussian blob somewhere on a noisy 64 x 64 background,
class 0 = no blob (class 2 never occurs). A correct heatmap of class 1 must
peak on the blob, which a flipped or misplaced map fails.
"""

from __future__ import annotations

import functools

import cv2
import keras
import numpy as np

from cxrlib.train.architectures import build_classifier

S = 64


def blob_image(rng: np.random.Generator, centre: tuple[float, float] | None) -> np.ndarray:
    """A 64x64 uint8 noisy background, with a bright blob at ``centre`` (y, x) if given."""
    img = cv2.GaussianBlur((60 + 20 * rng.standard_normal((S, S))).astype(np.float32), (0, 0), 2)
    if centre is not None:
        yy, xx = np.mgrid[0:S, 0:S]
        r = rng.uniform(4, 7)
        img += 120 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * r * r))
    return np.clip(img, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def blob_model(n: int = 320, epochs: int = 4) -> keras.Model:
    """The trained blob model, trained once per test session (wrap it in a Classifier)."""
    rng = np.random.default_rng(0)
    x = np.stack(
        [blob_image(rng, tuple(rng.uniform(10, 54, 2)) if i % 2 else None) for i in range(n)]
    )
    # Low BN momentum: a few dozen steps must be enough for the moving statistics.
    model = build_classifier(S, "small", width=8, head_filters=32, seed=0, bn_momentum=0.6)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(
        x[..., None].astype(np.float32), np.arange(n) % 2, epochs=epochs, batch_size=32, verbose=0
    )
    return model

"""Test-time views: small shifts, zooms and gamma changes of the model input. The app shows
how far each probability moves over them; a model whose JSON records them averages them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast


@dataclass(frozen=True)
class View:
    """A cheap test-time augmentation of the model input: a shift (dx, dy) as fractions of
    the side, a zoom about the centre (> 1 zooms in) and a gamma (> 1 darkens)."""

    name: str
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    gamma: float = 1.0

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Applies the view to a square uint8 image (border pixels replicated)."""
        out = img
        if self.shift != (0.0, 0.0) or self.scale != 1.0:
            h, w = img.shape
            cx, cy = (w - 1) / 2, (h - 1) / 2
            m = np.array(
                [
                    [self.scale, 0, (1 - self.scale) * cx + self.shift[0] * w],
                    [0, self.scale, (1 - self.scale) * cy + self.shift[1] * h],
                ],
                np.float32,
            )
            out = cv2.warpAffine(
                out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        if self.gamma != 1.0:
            lut = np.clip(255.0 * (np.arange(256) / 255.0) ** self.gamma + 0.5, 0, 255)
            out = cv2.LUT(out, lut.astype(np.uint8))
        return out


#: The default test-time views (the original image is always added first).
DEFAULT_VIEWS: tuple[View, ...] = (
    View("shift right", shift=(0.04, 0.0)),
    View("shift left", shift=(-0.04, 0.0)),
    View("shift down", shift=(0.0, 0.04)),
    View("shift up", shift=(0.0, -0.04)),
    View("zoom out", scale=0.94),
    View("zoom in", scale=1.06),
    View("darker", gamma=1.25),
    View("brighter", gamma=0.8),
)


def views_by_name(names: Sequence[str]) -> tuple[View, ...]:
    """The :data:`DEFAULT_VIEWS` with these names, in this order (KeyError for another)."""
    known = {v.name: v for v in DEFAULT_VIEWS}
    if missing := [n for n in names if n not in known]:
        raise KeyError(f"unknown test-time views {missing}; known: {sorted(known)}")
    return tuple(known[n] for n in names)


def view_batch(geo: np.ndarray, config: PreprocessConfig, views: Sequence[View]) -> np.ndarray:
    """Model inputs ``(1 + len(views), size, size)``: the original, then each view, from an
    image in model geometry; views act before the contrast normalisation, as in training."""
    return np.stack([normalize_contrast(v.apply(geo), config) for v in (View("original"), *views)])

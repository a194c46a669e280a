"""Pixel values onto 0..255: the used-range stretch, row-block mapping and colourfulness.

Shared by the Pillow and DICOM decoders. Large images are mapped in blocks of
rows (checking the time budget between blocks) so that float64 copies stay small.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from cxrlib.io.budget import tick

COLOUR_NOTICE = 0.02
"""Colourfulness above which "Colour image converted to grayscale" is noted."""
COLOUR_CONVERTED = "Colour image converted to grayscale"
"""The notice for a colour image shown in gray."""
_SMALL_INTS = (np.uint8, np.uint16, np.int8, np.int16)


def fmt_value(value: float) -> str:
    """A pixel value as a notice shows it (six significant digits)."""
    return f"{value:,.6g}"


def sample(im: Image.Image | np.ndarray, pixels: int = 250_000) -> np.ndarray:
    """At most about ``pixels`` pixels of an image, evenly spaced (nearest neighbour)."""
    if isinstance(im, np.ndarray):
        step = max(1, int(np.ceil(np.sqrt(im.shape[0] * im.shape[1] / pixels))))
        return im[::step, ::step]
    width, height = im.size
    step = max(1, int(np.ceil(np.sqrt(width * height / pixels))))
    if step > 1:
        size = (max(1, width // step), max(1, height // step))
        im = im.resize(size, Image.Resampling.NEAREST)
    return np.asarray(im)


def colourfulness(
    rgb: Image.Image | np.ndarray, alpha: Image.Image | np.ndarray | None = None
) -> float:
    """Mean chroma, (max - min of R, G, B) / 255, over a sample of ~250k pixels.

    0 for gray; with ``alpha``, chroma is weighted as composited on black.
    """
    values = sample(rgb).astype(np.float32)
    chroma = values.max(axis=2) - values.min(axis=2)
    if alpha is not None:
        chroma *= sample(alpha).astype(np.float32) / 255.0
    return round(float(chroma.mean()) / 255.0, 4)


def stretch(arr: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    """Map the used range (min..max of finite values) linearly onto 0..255.

    Returns:
        (uint8 array, min, max, whether non-finite values were replaced).
    """
    nonfinite = False
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            nonfinite = True
            if not finite.any():
                return np.zeros(arr.shape, np.uint8), 0.0, 0.0, True
            lo = float(arr[finite].min())
            hi = float(arr[finite].max())
            arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
        del finite
    lo = float(arr.min())
    hi = float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8), lo, hi, nonfinite
    if arr.dtype.kind == "b":
        arr = arr.view(np.uint8)
    scale = 255.0 / (hi - lo)
    if arr.dtype in _SMALL_INTS:
        # Small integer types: one lookup table, no float copy of the image.
        info = np.iinfo(arr.dtype)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.float64)
        lut = np.clip(np.floor((values - lo) * scale + 0.5), 0, 255).astype(np.uint8)
        index = arr.astype(np.int32) - int(info.min) if info.min else arr
        return lut[index], lo, hi, nonfinite
    out = map_rows(arr, lambda block: (block - lo) * scale)
    return out, lo, hi, nonfinite


def map_rows(values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` (float64 block -> 0..255 floats) in blocks of rows; round to uint8.

    Working in blocks of about a million pixels keeps the float64 copies small.
    """
    out = np.empty(values.shape, np.uint8)
    per_row = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1
    rows = max(1, 1_000_000 // max(1, per_row))
    for start in range(0, values.shape[0], rows):
        tick()
        block = fn(values[start : start + rows].astype(np.float64))
        out[start : start + rows] = np.clip(np.floor(block + 0.5), 0, 255)
    return out

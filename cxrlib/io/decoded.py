"""What a decode returns, and what the decoders share to make it (values onto 0..255,
colourfulness, notices)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from cxrlib.io.limits import tick

BLANK = "The image is blank: every pixel has the same value"
COLOUR_NOTICE = 0.02
"""Colourfulness above which "Colour image converted to grayscale" is noted."""
_SMALL_INTS = (np.uint8, np.uint16, np.int8, np.int16)


@dataclass
class DecodedImage:
    """A decoded upload: C-contiguous 2-D ``uint8`` pixels, the format's name, what was done
    to the image in plain words, and safe technical fields only (size, bit depth, frames,
    colourfulness before the grayscale conversion; for DICOM the allow-listed header codes)."""

    pixels: np.ndarray
    format: str
    notices: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def is_blank(pixels: np.ndarray) -> bool:
    """Whether a non-empty image has one value everywhere."""
    return bool(pixels.size) and int(pixels.min()) == int(pixels.max())


def fmt_value(value: float) -> str:
    """A pixel value as a notice shows it (six significant digits)."""
    return f"{value:,.6g}"


def colourfulness(
    rgb: Image.Image | np.ndarray, notices: list[str], alpha: Image.Image | None = None
) -> float:
    """Mean chroma, (max - min of R, G, B) / 255, over a sample of ~250k pixels (0 for gray;
    with ``alpha``, as composited on black); noted above :data:`COLOUR_NOTICE`."""
    values = _sample(rgb).astype(np.float32)
    chroma = values.max(axis=2) - values.min(axis=2)
    if alpha is not None:
        chroma *= _sample(alpha).astype(np.float32) / 255.0
    colour = round(float(chroma.mean()) / 255.0, 4)
    if colour > COLOUR_NOTICE:
        notices.append("Colour image converted to grayscale")
    return colour


def _sample(im: Image.Image | np.ndarray, pixels: int = 250_000) -> np.ndarray:
    """At most about ``pixels`` pixels, evenly spaced (nearest neighbour)."""
    height, width = im.shape[:2] if isinstance(im, np.ndarray) else im.size[::-1]
    step = max(1, int(np.ceil(np.sqrt(width * height / pixels))))
    if isinstance(im, np.ndarray):
        return im[::step, ::step]
    if step > 1:
        im = im.resize((max(1, width // step), max(1, height // step)), Image.Resampling.NEAREST)
    return np.asarray(im)


def stretch(arr: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    """Map the used range (min..max of finite values) linearly onto 0..255; returns
    (uint8 array, min, max, whether non-finite values were replaced)."""
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
    scale = 255.0 / (hi - lo)
    if arr.dtype in _SMALL_INTS:
        # One lookup table over the type's values: no float copy of the image.
        info = np.iinfo(arr.dtype)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.float64)
        lut = np.clip(np.floor((values - lo) * scale + 0.5), 0, 255).astype(np.uint8)
        index = arr.astype(np.int32) - int(info.min) if info.min else arr
        return lut[index], lo, hi, nonfinite
    out = map_rows(arr, lambda block: (block - lo) * scale)
    return out, lo, hi, nonfinite


def map_rows(values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` (float64 block -> 0..255 floats) in blocks of about a million pixels,
    rounded to uint8 (the float64 copies stay small)."""
    out = np.empty(values.shape, np.uint8)
    per_row = int(np.prod(values.shape[1:], dtype=np.int64))
    rows = max(1, 1_000_000 // max(1, per_row))
    for start in range(0, values.shape[0], rows):
        tick()
        block = fn(values[start : start + rows].astype(np.float64))
        out[start : start + rows] = np.clip(np.floor(block + 0.5), 0, 255)
    return out

"""The one preprocessing path, grayscale chest X-ray -> model input: :func:`to_geometry`,
then :func:`normalize_contrast` (training augments in between), as the model's JSON says."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

Box = tuple[int, int, int, int]
"""A crop ``(top, bottom, left, right)`` in original pixels, ``bottom``/``right`` exclusive."""

#: Side of the lung masks that are kept (segmenter memo, training cache).
STORED_MASK_SIZE = 96


class PreprocessConfig(BaseModel):
    """How a grayscale image becomes a square model input. ``"pad"`` geometry keeps the aspect
    ratio; ``lung_crop`` crops to the caller's lung box plus ``lung_margin``, else
    ``border_crop`` of each side is cut away."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    size: int = 160
    geometry: Literal["resize", "pad"] = "resize"
    contrast: Literal["none", "clahe", "equalize"] = "clahe"
    border_crop: float = 0.0
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    lung_crop: bool = False
    lung_margin: float = 0.04


def check_gray(gray: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image (a trailing channel of 1 dropped); ValueError otherwise."""
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}")
    return gray


def placement(
    shape: tuple[int, ...], config: PreprocessConfig, crop: Box | None = None
) -> tuple[Box, Box]:
    """Where an image of ``shape`` lands in the model input: the crop (top, bottom, left,
    right) kept (``crop``, else the border crop), and its (top, left, height, width) box."""
    h, w = shape[:2]
    if crop is not None:
        top, bottom, left, right = (int(v) for v in crop)
        top, left, bottom, right = max(0, top), max(0, left), min(h, bottom), min(w, right)
        if bottom - top < 2 or right - left < 2:
            raise ValueError(f"crop {crop} leaves no image of a {h} x {w} image")
    else:
        dy, dx = int(round(h * config.border_crop)), int(round(w * config.border_crop))
        top, bottom, left, right = dy, h - dy, dx, w - dx
    ch, cw = bottom - top, right - left
    s = config.size
    if config.geometry == "resize":
        box = (0, 0, s, s)
    else:
        scale = s / max(ch, cw)
        bh, bw = max(1, round(ch * scale)), max(1, round(cw * scale))
        box = ((s - bh) // 2, (s - bw) // 2, bh, bw)
    return (top, bottom, left, right), box


def small_mask(mask: np.ndarray, size: int = STORED_MASK_SIZE) -> np.ndarray:
    """A lung mask shrunk to ``size`` x ``size`` booleans, for storing."""
    m = np.asarray(mask, np.uint8) * 255
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) >= 128


def to_geometry(gray: np.ndarray, config: PreprocessConfig, crop: Box | None = None) -> np.ndarray:
    """Crops (``crop``, else the borders) and resizes (or pads) to ``config.size`` squared."""
    gray = check_gray(gray)
    (top, bottom, left, right), (by, bx, bh, bw) = placement(gray.shape, config, crop)
    cropped = gray[top:bottom, left:right]
    interp = cv2.INTER_AREA if cropped.shape[0] >= bh else cv2.INTER_LINEAR
    resized = cv2.resize(cropped, (bw, bh), interpolation=interp)
    if config.geometry == "resize":
        return np.ascontiguousarray(resized)
    s = config.size
    return cv2.copyMakeBorder(resized, by, s - bh - by, bx, s - bw - bx, cv2.BORDER_REPLICATE)


def normalize_contrast(gray: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Applies the configured contrast normalisation to a uint8 image."""
    gray = check_gray(gray)
    if config.contrast == "clahe":
        grid = (config.clahe_grid, config.clahe_grid)
        return cv2.createCLAHE(clipLimit=config.clahe_clip, tileGridSize=grid).apply(gray)
    if config.contrast == "equalize":
        return cv2.equalizeHist(gray)
    return gray


def prepare(gray: np.ndarray, config: PreprocessConfig, crop: Box | None = None) -> np.ndarray:
    """Grayscale uint8 image -> model input, uint8 ``(size, size)`` (the model rescales)."""
    return normalize_contrast(to_geometry(gray, config, crop), config)


def heatmap_to_image(
    heatmap: np.ndarray,
    shape: tuple[int, ...],
    config: PreprocessConfig,
    crop: Box | None = None,
) -> np.ndarray:
    """A map over the model input (any square size) back onto the image, 0 outside the crop."""
    s = config.size
    hm: np.ndarray = heatmap.astype(np.float32)
    if hm.shape != (s, s):
        hm = cv2.resize(hm, (s, s), interpolation=cv2.INTER_LINEAR)
    (top, bottom, left, right), (by, bx, bh, bw) = placement(shape, config, crop)
    out = np.zeros(shape[:2], np.float32)
    out[top:bottom, left:right] = cv2.resize(
        hm[by : by + bh, bx : bx + bw], (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    return out

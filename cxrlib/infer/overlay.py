"""Drawing heatmaps over X-rays: pure OpenCV functions, apart from computing the heatmap,
so the app can change the opacity, colour map or hottest-area view without the model."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from cxrlib.infer.preprocess import check_gray

#: Colour maps offered by the app (OpenCV's built-in maps).
COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "hot": cv2.COLORMAP_HOT,
}

LUNG_COLOR: tuple[int, int, int] = (255, 255, 255)
FRAME_COLOR: tuple[int, int, int] = (0, 255, 255)


@functools.cache
def _lut(colormap: str) -> np.ndarray:
    """RGB lookup table (256, 1, 3) of a colour map, built once."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {tuple(COLORMAPS)}")
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), COLORMAPS[colormap])
    return np.ascontiguousarray(bgr[..., ::-1]).reshape(256, 1, 3)


def _map_u8(heatmap: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A [0, 1] map as uint8 0..255 (resized bilinearly to ``shape`` if needed): above 1
    saturates, negatives and NaN give 0, +inf 255; few fresh buffers (page faults cost)."""
    hm: np.ndarray = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got {hm.shape}")
    if shape is not None and hm.shape != shape:
        hm = cv2.resize(hm, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    if not np.isfinite(hm.sum(dtype=np.float64)):
        hm = np.nan_to_num(hm, nan=0.0, posinf=1.0, neginf=0.0)
    if hm.min() < 0:
        hm = np.maximum(hm, 0.0)
    return cv2.convertScaleAbs(hm, alpha=255.0)  # rounds and saturates at 255


def heatmap_rgb(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Colours a [0, 1] heatmap: RGB uint8 (H, W, 3), for side-by-side display."""
    return cv2.applyColorMap(_map_u8(heatmap), _lut(colormap))


def _hottest_u8(u8: np.ndarray, percent: float) -> np.ndarray:
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    counts = cv2.calcHist([u8], [0], None, [256], [0, 256]).ravel()
    tail = np.cumsum(counts[::-1])[::-1]  # tail[v] = pixels >= v
    target = u8.size * percent / 100.0
    # Level 0 is never hot, so an empty (all-zero) map gives an empty mask.
    level = 1 + int(np.argmin(np.abs(tail[1:] - target)))
    return u8 >= level


def hottest_mask(heatmap: np.ndarray, percent: float) -> np.ndarray:
    """Boolean mask of about the hottest ``percent`` % of pixels of a [0, 1] map: the
    quantised level whose share is closest (ties stay together, zero is never hot)."""
    return _hottest_u8(_map_u8(heatmap), percent)


def overlay(
    gray: np.ndarray,
    heatmap: np.ndarray,
    opacity: float = 0.4,
    colormap: str = "jet",
    hottest_percent: float | None = None,
    lung_mask: np.ndarray | None = None,
    frame: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Blends a [0, 1] heatmap over a 2-D uint8 X-ray at ``opacity``: RGB uint8.
    ``hottest_percent`` colours only that hottest share of pixels; ``lung_mask`` is outlined
    and ``frame`` (the lung-crop model's box) drawn."""
    g = np.ascontiguousarray(check_gray(np.asarray(gray)))
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    lut = _lut(colormap)
    u8 = _map_u8(heatmap, g.shape)
    base = cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
    region = None if hottest_percent is None else _hottest_u8(u8, hottest_percent)
    out = base
    if opacity > 0:
        colored = cv2.applyColorMap(u8, lut)
        a = float(opacity)
        cv2.addWeighted(colored, a, base, 1.0 - a, 0.0, dst=colored)  # in place
        if region is not None:
            cv2.copyTo(colored, region.view(np.uint8), base)
        else:
            out = colored
    if lung_mask is not None:
        m: np.ndarray = np.ascontiguousarray(lung_mask, dtype=bool).view(np.uint8)
        if m.shape != out.shape[:2]:
            m = cv2.resize(m, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        thickness = max(1, int(round(max(out.shape[:2]) / 512)))
        cv2.drawContours(out, contours, -1, LUNG_COLOR, thickness, lineType=cv2.LINE_8)
    if frame is not None:
        top, bottom, left, right = (int(v) for v in frame)
        thickness = max(1, int(round(max(out.shape[:2]) / 384)))
        cv2.rectangle(out, (left, top), (right - 1, bottom - 1), FRAME_COLOR, thickness)
    return out

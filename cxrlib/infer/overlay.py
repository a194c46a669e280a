"""Drawing heatmaps over X-rays: pure functions, OpenCV only, a few ms at 1024 px.

Rendering is kept apart from computing the heatmap, so the app can change the
opacity, colour map or hottest-area view without running the model again.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

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
HOTTEST_COLOR: tuple[int, int, int] = (255, 0, 255)
FRAME_COLOR: tuple[int, int, int] = (0, 255, 255)

_LUTS: dict[str, np.ndarray] = {}


def _lut(colormap: str) -> np.ndarray:
    """RGB lookup table (256, 1, 3) of a colour map, built once."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {tuple(COLORMAPS)}")
    lut = _LUTS.get(colormap)
    if lut is None:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        bgr = cv2.applyColorMap(ramp, COLORMAPS[colormap])
        lut = np.ascontiguousarray(bgr[..., ::-1]).reshape(256, 1, 3)
        _LUTS[colormap] = lut
    return lut


def _as_gray(gray: np.ndarray) -> np.ndarray:
    g = np.asarray(gray)
    if g.ndim == 3 and g.shape[-1] == 1:
        g = g[..., 0]
    if g.ndim != 2 or g.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {g.shape} {g.dtype}")
    return np.ascontiguousarray(g)


def _map_u8(heatmap: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A [0, 1] map as uint8 0..255 (resized bilinearly to ``shape`` if needed).

    Values above 1 saturate, negatives and NaN become 0, +inf 255. Written to
    allocate as little as possible: at 1024 px, fresh multi-megabyte buffers
    (page faults) cost more than the arithmetic.
    """
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
    """Boolean mask of about the hottest ``percent`` % of pixels of a [0, 1] map.

    The threshold is taken on the map quantised to 256 levels (a histogram, not
    a sort), at the level whose share of pixels is closest
    to ``percent``; ties at a level stay together and zero pixels are never hot.
    """
    return _hottest_u8(_map_u8(heatmap), percent)


def _draw_outline(img: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    m: np.ndarray = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, int(round(max(img.shape[:2]) / 512)))
    cv2.drawContours(img, contours, -1, color, thickness, lineType=cv2.LINE_8)


def overlay(
    gray: np.ndarray,
    heatmap: np.ndarray,
    opacity: float = 0.4,
    colormap: str = "jet",
    hottest_percent: float | None = None,
    hottest_style: Literal["fill", "contour"] = "fill",
    lung_mask: np.ndarray | None = None,
    lung_color: tuple[int, int, int] = LUNG_COLOR,
    hottest_color: tuple[int, int, int] = HOTTEST_COLOR,
    frame: tuple[int, int, int, int] | None = None,
    frame_color: tuple[int, int, int] = FRAME_COLOR,
) -> np.ndarray:
    """Blends a heatmap over a grayscale X-ray.

    Args:
        gray: 2-D uint8 image.
        heatmap: Map in [0, 1] (resized to the image if its size differs).
        opacity: Weight of the coloured map, 0 (image only) to 1 (map only).
        colormap: A key of :data:`COLORMAPS`.
        hottest_percent: Show only the hottest ``k`` % of pixels: ``"fill"``
            colours just that area (the rest stays gray); ``"contour"`` blends
            the whole map and outlines that area.
        hottest_style: ``"fill"`` or ``"contour"``.
        lung_mask: Optional lung mask; its outline is drawn as a thin line.
        lung_color: RGB colour of the lung outline.
        hottest_color: RGB colour of the hottest-area outline.
        frame: Optional ``(top, bottom, left, right)`` box (the part of the
            image a lung-crop model saw), drawn as a rectangle.
        frame_color: RGB colour of that rectangle.

    Returns:
        RGB uint8 (H, W, 3). With ``opacity == 0`` and no outlines, exactly the
        gray image repeated in three channels.
    """
    g = _as_gray(gray)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if hottest_style not in ("fill", "contour"):
        raise ValueError(f"hottest_style must be 'fill' or 'contour', got {hottest_style!r}")
    lut = _lut(colormap)
    u8 = _map_u8(heatmap, g.shape)
    base = cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
    region = None if hottest_percent is None else _hottest_u8(u8, hottest_percent)
    out = base
    if opacity > 0:
        colored = cv2.applyColorMap(u8, lut)
        a = float(opacity)
        cv2.addWeighted(colored, a, base, 1.0 - a, 0.0, dst=colored)  # in place
        if region is not None and hottest_style == "fill":
            cv2.copyTo(colored, region.view(np.uint8), base)
        else:
            out = colored
    if region is not None and hottest_style == "contour":
        _draw_outline(out, region, hottest_color)
    if lung_mask is not None:
        _draw_outline(out, np.asarray(lung_mask), lung_color)
    if frame is not None:
        top, bottom, left, right = (int(v) for v in frame)
        thickness = max(1, int(round(max(out.shape[:2]) / 384)))
        cv2.rectangle(out, (left, top), (right - 1, bottom - 1), frame_color, thickness)
    return out

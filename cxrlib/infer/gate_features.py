"""The input gate's image features: a square's thumbnail, gradient layout and statistics,
and the tests that name a rejection (text, noise)."""

from __future__ import annotations

import cv2
import numpy as np

from cxrlib.infer.preprocess import check_gray

SQUARE = 128
THUMB = 32
HOG_SIZE = 64
HOG_GRID = 8
HOG_BINS = 9
N_STATS = 8

#: Ways an X-ray can be turned or inverted (as applied to an upright one).
TRANSFORMS: tuple[str, ...] = ("rot90", "rot180", "rot270", "inverted")
#: The orientation model's classes.
ORIENTATIONS: tuple[str, ...] = ("upright", *TRANSFORMS)
#: The transform that undoes each one.
UNDO: dict[str, str] = {
    "rot90": "rot270",
    "rot180": "rot180",
    "rot270": "rot90",
    "inverted": "inverted",
}


def checked_gray(gray: np.ndarray) -> np.ndarray:
    """A non-empty 2-D uint8 image; ValueError otherwise."""
    gray = check_gray(np.asarray(gray))
    if gray.size == 0:
        raise ValueError("empty image")
    return gray


def square(gray: np.ndarray, size: int = SQUARE) -> np.ndarray:
    """Squashes a grayscale image to ``size`` x ``size`` (like ``geometry="resize"``)."""
    gray = checked_gray(gray)
    interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(gray, (size, size), interpolation=interp))


def thumb(sq: np.ndarray) -> np.ndarray:
    """The 32 x 32 thumbnail of a square, standardised (zero mean, unit variance), flat."""
    t = cv2.resize(sq, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((t - t.mean()) / max(float(t.std()), 1.0)).ravel()


def hog(sq: np.ndarray) -> np.ndarray:
    """The gradient-orientation layout of a square: 8 x 8 cells x 9 orientations, flat."""
    f = cv2.resize(sq, (HOG_SIZE, HOG_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    b = np.minimum((ang * (HOG_BINS / np.pi)).astype(np.int64), HOG_BINS - 1)
    c = HOG_SIZE // HOG_GRID
    idx = np.arange(HOG_SIZE) // c
    cell = idx[:, None] * HOG_GRID + idx[None, :]
    h: np.ndarray = np.bincount(
        (cell * HOG_BINS + b).ravel(), weights=mag.ravel(), minlength=HOG_GRID**2 * HOG_BINS
    ).reshape(HOG_GRID**2, HOG_BINS)
    # Per-cell L2 normalisation with a floor tied to the image's mean gradient,
    # so flat cells stay near zero instead of amplifying quantisation noise.
    h /= np.linalg.norm(h, axis=1, keepdims=True) + 1e-3 * float(mag.mean()) * c + 1e-6
    return np.sqrt(h).ravel().astype(np.float32)


def stats(sq: np.ndarray) -> np.ndarray:
    """The :data:`N_STATS` robust statistics of a square (grey levels, texture, symmetry)."""
    f = sq.astype(np.float32)
    std = float(f.std())
    gm = np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
    hist = np.bincount((sq >> 2).ravel(), minlength=64) / sq.size
    p = hist[hist > 0]
    tz = thumb(sq).reshape(THUMB, THUMB)
    return np.array(
        [
            f.mean() / 255.0,
            np.log(std + 1.0),
            np.log(high_freq(sq) + 1e-3),
            np.log(float(np.median(gm)) / (std + 1.0) + 1e-3),
            float(-(p * np.log(p)).sum()),
            float(hist.max()),
            np.log(float(np.count_nonzero(np.bincount(sq.ravel(), minlength=256)))),
            float((tz * tz[:, ::-1]).mean()),
        ],
        np.float32,
    )


def high_freq(sq: np.ndarray) -> float:
    """Share of pixel-to-pixel energy (mean absolute Laplacian over the spread)."""
    f = sq.astype(np.float32)
    return float(np.abs(cv2.Laplacian(f, cv2.CV_32F)).mean()) / (float(f.std()) + 1.0)


def transformed(sq: np.ndarray, name: str) -> np.ndarray:
    """A square turned or inverted as :data:`TRANSFORMS` names it."""
    if name == "inverted":
        return 255 - sq
    k = {"rot90": 1, "rot180": 2, "rot270": 3}[name]
    return np.ascontiguousarray(np.rot90(sq, k))


def looks_like_text(gray: np.ndarray) -> bool:
    """Dark-on-light (or light-on-dark) glyphs on a flat background."""
    h, w = gray.shape
    scale = 384.0 / max(h, w)
    if scale < 1.0:
        # Bilinear, not area averaging: averaging greys small print into solid bands.
        gray = cv2.resize(
            gray,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_LINEAR,
        )
    _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if _glyphs_in_lines(bw):
        return True
    # Uneven lighting (a photographed page): threshold against the local mean.
    bw = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 31, 12)
    return _glyphs_in_lines(bw)


def _glyphs_in_lines(bw: np.ndarray) -> bool:
    fg = bw == 0 if np.count_nonzero(bw) >= bw.size / 2 else bw > 0
    frac = float(fg.mean())
    if not 0.01 <= frac <= 0.35:
        return False
    # Lines of text leave ink-free gaps between them: the ink per row (or per
    # column, for turned text) varies a lot, unlike in noise or texture.
    rows, cols = fg.mean(axis=1), fg.mean(axis=0)
    if max(rows.std() / rows.mean(), cols.std() / cols.mean()) < 0.6:
        return False
    n, _, st, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    areas = st[1:, cv2.CC_STAT_AREA]
    heights = st[1:, cv2.CC_STAT_HEIGHT]
    small = (areas >= 4) & (areas <= 600) & (heights <= 40)
    # Most of the ink must sit in many small, glyph-sized blobs...
    ink_in_small = float(areas[small].sum()) / max(float(areas.sum()), 1.0)
    if int(small.sum()) < 40 or ink_in_small < 0.5:
        return False
    # ...that line up: most glyphs have a neighbour on the same line, close by
    # (a star field or speckle has small blobs too, but scattered).
    box = st[1:][small][:1500].astype(np.float64)
    cx = box[:, cv2.CC_STAT_LEFT] + box[:, cv2.CC_STAT_WIDTH] / 2
    cy = box[:, cv2.CC_STAT_TOP] + box[:, cv2.CC_STAT_HEIGHT] / 2
    hh = np.maximum(box[:, cv2.CC_STAT_HEIGHT], 3.0)
    dx = np.abs(cx[:, None] - cx[None, :])
    dy = np.abs(cy[:, None] - cy[None, :])
    near = (dy < 0.5 * hh[:, None]) & (dx > 0) & (dx < 2.5 * hh[:, None])
    return float(near.any(axis=1).mean()) >= 0.6


def project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Whitened principal-component coordinates of ``x`` and its log reconstruction error."""
    d = x - mean
    z = d @ basis.T
    resid = d - z @ basis
    rec = np.log(np.mean(resid * resid, axis=-1) + 1e-6)
    return np.concatenate([z / scale, rec[..., None]], axis=-1)

"""The one preprocessing function: grayscale chest X-ray -> model input.

Training, evaluation, batch prediction and the app all call :func:`prepare`
(training calls its two halves, :func:`to_geometry` then augmentation then
:func:`normalize_contrast`, so augmentations act on the raw pixels). The
settings live in :class:`PreprocessConfig`, which is saved in the model's JSON
so a model is always fed the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import cv2
import numpy as np

Geometry = Literal["resize", "pad"]
Contrast = Literal["none", "clahe", "equalize"]
Box = tuple[int, int, int, int]
"""A crop ``(top, bottom, left, right)`` in original pixels, ``bottom``/``right`` exclusive."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How a grayscale image becomes a square model input.

    Attributes:
        size: Side of the square model input, in pixels.
        geometry: ``"resize"`` squashes the whole image to a square (most
            training images are already squashed 224 x 224 copies, so this
            keeps every source alike); ``"pad"`` keeps the aspect ratio and
            pads the short side with the image's edge values.
        contrast: ``"clahe"`` (OpenCV CLAHE), ``"equalize"`` (global histogram
            equalisation) or ``"none"``.
        border_crop: Fraction of each side cut away before resizing, where
            burned-in letters and markers often sit. 0 keeps the whole image.
        clahe_clip: CLAHE clip limit.
        clahe_grid: CLAHE tile grid (tiles per side).
        lung_crop: Crop to the lung fields found by the lung segmenter (plus
            ``lung_margin``) instead of the whole image. The crop box is not
            computed here (this module knows no models): callers pass it as
            ``crop`` (:meth:`cxrlib.infer.classifier.Classifier.crop_box`); without one the
            image falls back to ``border_crop``.
        lung_margin: Border kept around the lung box, as a fraction of the
            image's height (top/bottom) and width (left/right).
        lung_mask: Fill everything outside the lung mask (dilated by
            ``mask_dilation``) with the lungs' mean before resizing, so the
            model sees nothing but lung. Like the crop box, the mask comes from
            the caller (``mask``); without one the image is not masked.
        mask_dilation: Dilation of the lung mask, as a fraction of the image's
            longer side, so the pleura and costophrenic angles stay in.
    """

    size: int = 160
    geometry: Geometry = "resize"
    contrast: Contrast = "clahe"
    border_crop: float = 0.0
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    lung_crop: bool = False
    lung_margin: float = 0.04
    lung_mask: bool = False
    mask_dilation: float = 0.02

    @property
    def uses_lungs(self) -> bool:
        """Whether inputs need the lung segmenter (a lung crop or mask)."""
        return self.lung_crop or self.lung_mask

    def used_frame(
        self, box: Box | None, mask: np.ndarray | None
    ) -> tuple[Box | None, np.ndarray | None]:
        """The parts of an image's segmentation this preprocessing uses: the box only with
        ``lung_crop``, the mask only with ``lung_mask`` (None otherwise)."""
        return (box if self.lung_crop else None, mask if self.lung_mask else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Placement:
    """Where the original image sits inside the model input (for mapping back).

    ``crop`` is (top, bottom, left, right) in original pixels, kept before
    resizing; ``box`` is (top, left, height, width) of the image inside the
    square model input after resizing (the rest is padding).
    """

    crop: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


def check_gray(gray: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image (a trailing channel of 1 dropped); ValueError otherwise."""
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}")
    return gray


def _valid_crop(crop: Box, h: int, w: int) -> Box:
    top, bottom, left, right = (int(v) for v in crop)
    top, left = max(0, top), max(0, left)
    bottom, right = min(h, bottom), min(w, right)
    if bottom - top < 2 or right - left < 2:
        raise ValueError(f"crop {crop} leaves no image of a {h} x {w} image")
    return top, bottom, left, right


def placement(
    shape: tuple[int, int], config: PreprocessConfig, crop: Box | None = None
) -> Placement:
    """Computes where an image of ``shape`` lands in the model input.

    ``crop`` (a lung box) replaces the border crop when given.
    """
    h, w = shape[:2]
    if crop is not None:
        top, bottom, left, right = _valid_crop(crop, h, w)
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
    return Placement(crop=(top, bottom, left, right), box=box)


STORED_MASK_SIZE = 96
"""Side of the lung masks that are kept (model memo, training cache): ample once a mask is
dilated and the input is 160 px, and 14,706 of them take 17 MB packed."""


def small_mask(mask: np.ndarray, size: int = STORED_MASK_SIZE) -> np.ndarray:
    """A lung mask shrunk to ``size`` x ``size`` booleans, for storing."""
    m = np.asarray(mask, np.uint8) * 255
    if m.shape == (size, size):
        return m >= 128
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) >= 128


def lung_view(mask: np.ndarray, shape: tuple[int, int], dilation: float = 0.02) -> np.ndarray:
    """The part of an image of ``shape`` that a lung-mask model sees: the lung mask (any
    resolution, resized to ``shape``) dilated by ``dilation`` of the image's longer side."""
    h, w = shape[:2]
    m: np.ndarray = np.asarray(mask, np.float32)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D lung mask, got shape {m.shape}")
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    inside = m > 0.5
    r = int(round(dilation * max(h, w)))
    if r > 0 and inside.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        inside = cv2.dilate(inside.astype(np.uint8), kernel) > 0
    return inside


def mask_outside_lungs(gray: np.ndarray, mask: np.ndarray, dilation: float = 0.02) -> np.ndarray:
    """Returns a copy with everything outside the (dilated) lung mask set to the lungs' mean.

    Args:
        gray: 2-D uint8 image.
        mask: Lung mask of any resolution (it is resized to the image); an
            empty mask leaves the image as it is.
        dilation: Dilation radius as a fraction of the image's longer side.
    """
    gray = check_gray(gray)
    inside = lung_view(mask, gray.shape, dilation)
    if not inside.any():
        return gray.copy()
    out = gray.copy()
    out[~inside] = np.uint8(round(float(gray[inside].mean())))
    return out


def to_geometry(
    gray: np.ndarray,
    config: PreprocessConfig,
    crop: Box | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Masks (``config.lung_mask`` with a ``mask``), crops (``crop``, else the borders) and
    resizes (or pads) to ``config.size`` squared, uint8."""
    gray = check_gray(gray)
    if config.lung_mask and mask is not None:
        gray = mask_outside_lungs(gray, mask, config.mask_dilation)
    p = placement(gray.shape, config, crop)
    top, bottom, left, right = p.crop
    cropped = gray[top:bottom, left:right]
    by, bx, bh, bw = p.box
    # INTER_AREA for shrinking avoids aliasing; most inputs are larger than `size`.
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
        clahe = cv2.createCLAHE(
            clipLimit=config.clahe_clip, tileGridSize=(config.clahe_grid, config.clahe_grid)
        )
        return clahe.apply(gray)
    if config.contrast == "equalize":
        return cv2.equalizeHist(gray)
    return gray


def prepare(
    gray: np.ndarray,
    config: PreprocessConfig,
    crop: Box | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Grayscale uint8 image -> model input, uint8 ``(size, size)``.

    The model rescales to [0, 1] itself, so the input stays uint8 here.
    ``crop`` is the lung box when ``config.lung_crop`` is on, ``mask`` the lung
    mask when ``config.lung_mask`` is on.
    """
    return normalize_contrast(to_geometry(gray, config, crop, mask), config)


def heatmap_to_image(
    heatmap: np.ndarray,
    shape: tuple[int, int],
    config: PreprocessConfig,
    crop: Box | None = None,
) -> np.ndarray:
    """Maps a heatmap on the model input back onto the original image.

    Undoes padding, resizing and cropping (borders or lung box), so an overlay stays aligned
    with the image the user uploaded. Cropped-away borders get 0.

    Args:
        heatmap: Float map over the model input (any square size; it is first
            resized to ``config.size``).
        shape: (height, width) of the original image.
        config: The preprocessing that made the model input.
        crop: The crop box the input was made with (a lung box), if any.

    Returns:
        float32 map of ``shape``; 0 outside the crop.
    """
    s = config.size
    hm: np.ndarray = heatmap.astype(np.float32)
    if hm.shape != (s, s):
        hm = cv2.resize(hm, (s, s), interpolation=cv2.INTER_LINEAR)
    p = placement(shape, config, crop)
    by, bx, bh, bw = p.box
    inner = hm[by : by + bh, bx : bx + bw]
    top, bottom, left, right = p.crop
    out = np.zeros(shape[:2], np.float32)
    out[top:bottom, left:right] = cv2.resize(
        inner, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    return out

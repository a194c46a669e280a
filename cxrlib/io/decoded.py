"""What a decode returns: the grayscale pixels, the notices and safe metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLANK = "The image is blank: every pixel has the same value"
"""The notice for an image whose pixels all have one value."""


@dataclass
class DecodedImage:
    """A decoded upload.

    Attributes:
        pixels: 2-D ``uint8`` grayscale array (height, width), C-contiguous.
        format: ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"GIF"``,
            ``"WebP"`` or ``"DICOM"``.
        notices: What was done to the image, in plain words (e.g.
            "Animated GIF: showing the first of 12 frames").
        meta: Safe technical fields only: ``width``, ``height``, ``bit_depth``,
            ``frames``, ``colourfulness`` (mean chroma, 0 = gray, computed
            before the grayscale conversion), ``mode`` (Pillow) and for DICOM
            ``Modality``, ``PhotometricInterpretation``, ``ViewPosition``,
            ``BodyPartExamined``, ``Rows``, ``Columns``, ``BitsStored``,
            ``BitsAllocated``, ``SamplesPerPixel``, ``TransferSyntax`` and the
            ``window_center``/``window_width`` used.
    """

    pixels: np.ndarray
    format: str
    notices: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def is_blank(pixels: np.ndarray) -> bool:
    """Whether a non-empty image has one value everywhere (then :data:`BLANK` is noted)."""
    return bool(pixels.size) and int(pixels.min()) == int(pixels.max())


def frames_notice(fmt: str, frames: int) -> str:
    """The notice for a file of several frames or pages, of which only the first is shown."""
    if fmt == "TIFF":
        return f"Multi-page TIFF: showing the first of {frames:,} pages"
    if fmt == "JPEG":
        return f"This JPEG holds {frames:,} pictures: showing the first"
    if fmt == "DICOM":
        return f"Multi-frame DICOM: showing the first of {frames:,} frames"
    return f"Animated {fmt}: showing the first of {frames:,} frames"

"""DICOM uploads: read the dataset, check its header, decode the first frame, show it in gray.

Deflated DICOM (a zlib stream of the whole dataset) is refused rather than inflated
without a bound. Width, height and pixel format are checked from the header before
any pixel is decoded; only the first frame of a multi-frame file is decoded, with a
notice. pydicom is imported inside functions: it is an optional, heavy dependency
only DICOM uploads need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlib.core.errors import ImageError
from cxrlib.io.budget import DeadlineReader, TooSlow, tick
from cxrlib.io.decoded import BLANK, DecodedImage, frames_notice, is_blank
from cxrlib.io.dicom_codecs import LAYOUT_REFUSED, Layout, first_frame
from cxrlib.io.dicom_display import dicom_colour, dicom_mono
from cxrlib.io.dicom_fields import dicom_code, dicom_int, dicom_meta, transfer_syntax
from cxrlib.io.limits import MAX_FRAME_BYTES, MAX_MEGAPIXELS, PLEASE, check_dimensions

_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_IMAGE_GROUPS = (0x0008, 0x0010, 0x0020, 0x0028)


def decode_dicom(data: bytes, forced: bool) -> DecodedImage:
    """Decode a DICOM file's first frame to grayscale.

    Args:
        data: The file's bytes.
        forced: The file lacks the standard preamble (then it must look like DICOM).
    """
    ds = _read_dataset(data, forced)
    ts, ts_name = transfer_syntax(ds)
    layout = _layout(ds)
    arr = first_frame(ds, ts, ts_name, layout)
    tick()
    notices: list[str] = []
    meta = dicom_meta(ds, ts_name)
    meta["frames"] = layout.frames
    meta["colourfulness"] = 0.0
    meta["bit_depth"] = dicom_int(ds, "BitsStored") or layout.bits
    pixels = _to_gray(arr, ds, meta, notices)
    if layout.frames > 1:
        notices.append(frames_notice("DICOM", layout.frames))
    if is_blank(pixels):
        notices.append(BLANK)
    return DecodedImage(pixels=pixels, format="DICOM", notices=notices, meta=meta)


def _read_dataset(data: bytes, forced: bool) -> Any:
    """The parsed dataset, refused when deflated, unreadable or without an image."""
    import pydicom  # heavy; only DICOM uploads load it

    if _DEFLATED_UID in data[:65536]:
        raise ImageError(
            "This DICOM file uses the 'deflated' format, which is not supported. "
            "Please export it uncompressed or as PNG."
        )
    try:
        ds = pydicom.dcmread(DeadlineReader(data), force=forced)
    except TooSlow:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError("This DICOM file is damaged and could not be read. " + PLEASE) from exc
    _check_has_pixels(ds, forced)
    return ds


def _check_has_pixels(ds: Any, forced: bool) -> None:
    """Refuse a dataset without pixel data (or, read by force, one that is not DICOM)."""
    tags = set(ds.keys())
    has_pixels = any(tag in tags for tag in _PIXEL_TAGS)
    if forced and not has_pixels:
        known = [tag for tag in tags if (int(tag) >> 16) in _IMAGE_GROUPS]
        if len(known) < 2:
            raise ImageError(f"This file is not a valid DICOM file. {PLEASE}")
    if not has_pixels:
        raise ImageError(
            "This DICOM file has no image in it (it may be a report or other non-image data)."
        )


def _layout(ds: Any) -> Layout:
    """The image's size and pixel format from the header, refused when invalid or huge."""
    rows = dicom_int(ds, "Rows")
    cols = dicom_int(ds, "Columns")
    if rows is None or cols is None:
        raise ImageError("This DICOM file is damaged: it does not say how big its image is.")
    check_dimensions(cols, rows)
    samples = dicom_int(ds, "SamplesPerPixel") or 1
    bits = dicom_int(ds, "BitsAllocated") or 16
    if samples < 1 or samples > 4 or bits < 1 or bits > 64:
        raise ImageError("This DICOM file is damaged: its pixel format is invalid.")
    if rows * cols * samples * max(1, bits // 8) > MAX_FRAME_BYTES:
        raise ImageError(
            f"The DICOM image is too large to open; the limit is {MAX_MEGAPIXELS} megapixels."
        )
    frames = max(1, dicom_int(ds, "NumberOfFrames") or 1)
    return Layout(rows=rows, cols=cols, samples=samples, bits=bits, frames=frames)


def _to_gray(arr: np.ndarray, ds: Any, meta: dict[str, Any], notices: list[str]) -> np.ndarray:
    """The decoded frame (palette, colour or monochrome) as 8-bit gray."""
    photometric = dicom_code(ds, "PhotometricInterpretation") or ""
    if arr.ndim == 2 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut  # heavy; only DICOM uploads load it

        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return dicom_colour(arr[..., :3], meta, notices)
    if arr.ndim == 2:
        return dicom_mono(arr, ds, photometric, meta, notices)
    raise ImageError(LAYOUT_REFUSED)

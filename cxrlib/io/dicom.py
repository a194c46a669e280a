"""DICOM uploads: read the dataset, check its header, decode the first frame, show it in gray
in the standard's order (PS3.3 C.11). Only technical header fields reach the result.

pydicom is imported inside functions: a heavy dependency only DICOM uploads need.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image

from cxrlib.core.errors import ImageError
from cxrlib.io import limits
from cxrlib.io.decoded import (
    BLANK,
    DecodedImage,
    colourfulness,
    fmt_value,
    is_blank,
    map_rows,
    stretch,
)
from cxrlib.io.dicom_codecs import LAYOUT_REFUSED, Layout, first_frame

_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_IMAGE_GROUPS = (0x0008, 0x0010, 0x0020, 0x0028)
_CS_VALUE = re.compile(r"[A-Z0-9 _]{1,16}")
_UID_VALUE = re.compile(r"[0-9.]{1,64}")
_CODE_FIELDS = ("Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined")
_NUMBER_FIELDS = ("Rows", "Columns", "BitsStored", "BitsAllocated", "SamplesPerPixel")


def decode_dicom(data: bytes, forced: bool) -> DecodedImage:
    """Decode a DICOM file's first frame to grayscale (``forced``: it lacks the preamble)."""
    ds = _read_dataset(data, forced)
    ts, ts_name = _transfer_syntax(ds)
    layout = _layout(ds)
    arr = first_frame(ds, ts, ts_name, layout)
    limits.tick()
    notices: list[str] = []
    meta = _meta(ds, ts_name, layout)
    pixels = _to_gray(arr, ds, meta, notices)
    if layout.frames > 1:
        notices.append(f"Multi-frame DICOM: showing the first of {layout.frames:,} frames")
    if is_blank(pixels):
        notices.append(BLANK)
    return DecodedImage(pixels=pixels, format="DICOM", notices=notices, meta=meta)


def _read_dataset(data: bytes, forced: bool) -> Any:
    """The parsed dataset, refused when deflated, unreadable or without an image."""
    import pydicom  # heavy; only DICOM uploads load it

    if _DEFLATED_UID in data[:65536]:
        # A zlib stream of the whole dataset: refused rather than inflated without a bound.
        raise ImageError(
            "This DICOM file uses the 'deflated' format, which is not supported. "
            "Please export it uncompressed or as PNG."
        )
    try:
        ds = pydicom.dcmread(limits.DeadlineReader(data), force=forced)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(
            "This DICOM file is damaged and could not be read. " + limits.PLEASE
        ) from exc
    tags = set(ds.keys())
    has_pixels = any(tag in tags for tag in _PIXEL_TAGS)
    if forced and not has_pixels:
        known = [tag for tag in tags if (int(tag) >> 16) in _IMAGE_GROUPS]
        if len(known) < 2:
            raise ImageError(f"This file is not a valid DICOM file. {limits.PLEASE}")
    if not has_pixels:
        raise ImageError(
            "This DICOM file has no image in it (it may be a report or other non-image data)."
        )
    return ds


def _layout(ds: Any) -> Layout:
    """The image's size and pixel format from the header, refused when invalid or huge."""
    rows = _int(ds, "Rows")
    cols = _int(ds, "Columns")
    if rows is None or cols is None:
        raise ImageError("This DICOM file is damaged: it does not say how big its image is.")
    limits.check_dimensions(cols, rows)
    samples = _int(ds, "SamplesPerPixel") or 1
    bits = _int(ds, "BitsAllocated") or 16
    if samples < 1 or samples > 4 or bits < 1 or bits > 64:
        raise ImageError("This DICOM file is damaged: its pixel format is invalid.")
    if rows * cols * samples * max(1, bits // 8) > limits.MAX_FRAME_BYTES:
        raise ImageError(
            f"The DICOM image is too large to open; the limit is {limits.MAX_MEGAPIXELS} megapixels."
        )
    return Layout(
        rows=rows,
        cols=cols,
        samples=samples,
        bits=bits,
        frames=max(1, _int(ds, "NumberOfFrames") or 1),
        bits_stored=_int(ds, "BitsStored") or bits,
        signed=_int(ds, "PixelRepresentation") == 1,
        photometric=_code(ds, "PhotometricInterpretation") or "",
    )


def _int(ds: Any, keyword: str) -> int | None:
    """An integer field, or None when absent or invalid."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(value)
    except Exception:  # noqa: BLE001
        return None


def _float(ds: Any, keyword: str) -> float | None:
    """First value of a numeric field, or None when absent, invalid or not finite."""
    from pydicom.multival import MultiValue  # heavy; only DICOM uploads load it

    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple | MultiValue):
            value = value[0]
        out = float(value)
        return out if np.isfinite(out) else None
    except Exception:  # noqa: BLE001
        return None


def _code(ds: Any, keyword: str) -> str | None:
    """A code-string field, only if it looks like a code (never a name or free text)."""
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        text = str(value).strip().upper()
    except Exception:  # noqa: BLE001
        return None
    return text if _CS_VALUE.fullmatch(text) else None


def _meta(ds: Any, ts_name: str, layout: Layout) -> dict[str, Any]:
    """The allow-listed technical fields of a dataset, for :attr:`DecodedImage.meta`."""
    fields: list[tuple[str, Any]] = [(key, _code(ds, key)) for key in _CODE_FIELDS]
    fields += [(key, _int(ds, key)) for key in _NUMBER_FIELDS]
    header = {key: value for key, value in fields if value is not None}
    return {
        "TransferSyntax": ts_name,
        **header,
        "frames": layout.frames,
        "colourfulness": 0.0,
        "bit_depth": layout.bits_stored,
    }


def _transfer_syntax(ds: Any) -> tuple[Any, str]:
    """The dataset's transfer syntax (filled in when absent) and a safe display name."""
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ts = ds.file_meta.get("TransferSyntaxUID")
    if not ts:
        implicit = ds.original_encoding[0] is not False
        ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = ts
    ts = UID(str(ts))
    if ts.is_transfer_syntax and ts.name != str(ts):
        name = ts.name
    elif _UID_VALUE.fullmatch(str(ts)):
        name = f"transfer syntax {ts}"
    else:
        name = "an unknown transfer syntax"
    return ts, name


def _to_gray(arr: np.ndarray, ds: Any, meta: dict[str, Any], notices: list[str]) -> np.ndarray:
    """The decoded frame (palette, colour or monochrome) as 8-bit gray."""
    photometric = _code(ds, "PhotometricInterpretation") or ""
    if arr.ndim == 2 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut  # heavy; only DICOM uploads load it

        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[..., :3]
        if rgb.dtype != np.uint8:
            rgb, _, _, _ = stretch(rgb)
        meta["colourfulness"] = colourfulness(rgb, notices)
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    if arr.ndim != 2:
        raise ImageError(LAYOUT_REFUSED)
    values = _modality_values(arr, ds)
    pixels = _voi_lut(values, ds, notices)
    if pixels is None:
        pixels = _header_window(values, ds, meta, notices)
    if pixels is None:
        pixels, lo, hi, _ = stretch(np.asarray(values))
        if hi > lo:
            notices.append(
                f"No display window in the DICOM file: values {fmt_value(lo)} to "
                f"{fmt_value(hi)} shown black to white"
            )
    if photometric == "MONOCHROME1":
        notices.append("MONOCHROME1 image inverted so that bone appears white")
        return 255 - pixels
    if _code(ds, "PresentationLUTShape") == "INVERSE":
        # PS3.3 C.11.6. With MONOCHROME1, INVERSE repeats the same instruction.
        notices.append("Inverted as the DICOM file asks (Presentation LUT Shape INVERSE)")
        return 255 - pixels
    return pixels


def _modality_values(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Stored values through the modality LUT, or rescale slope and intercept."""
    from pydicom.pixels import apply_modality_lut  # heavy; only DICOM uploads load it

    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(arr, ds)
    slope = _float(ds, "RescaleSlope")
    intercept = _float(ds, "RescaleIntercept")
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    if (slope, intercept) == (1.0, 0.0):
        return arr
    # float32, not pydicom's float64: half the memory for the largest images.
    values = arr.astype(np.float32)
    values *= np.float32(slope)
    values += np.float32(intercept)
    return values


def _voi_lut(values: np.ndarray, ds: Any, notices: list[str]) -> np.ndarray | None:
    """The file's VOI LUT applied and stretched to 0..255, or None (absent or unusable)."""
    from pydicom.pixels import apply_voi  # heavy; only DICOM uploads load it

    if not ds.get("VOILUTSequence"):
        return None
    try:
        item = ds.VOILUTSequence[0]
        entries = int(item.LUTDescriptor[0]) or 65536
        first = int(item.LUTDescriptor[1])
        table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, 0)
        lo, hi = float(table.min()), float(table.max())
        if hi <= lo:
            return None
        scale = 255.0 / (hi - lo)
        pixels = map_rows(
            values,
            lambda x: (apply_voi(np.rint(x).astype(np.int64), ds, 0) - lo) * scale,
        )
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - fall back to the window or the used range
        return None
    notices.append("The DICOM file's display lookup table (VOI LUT) was applied")
    return pixels


def _header_window(
    values: np.ndarray, ds: Any, meta: dict[str, Any], notices: list[str]
) -> np.ndarray | None:
    """The file's window (PS3.3 C.11.2.1.2) applied straight to 0..255, or None when it has
    none or an unsupported one.

    By hand: pydicom's ``apply_windowing`` masks and indexes the whole image, too slow
    for the time budget on large images.
    """
    center = _float(ds, "WindowCenter")
    width = _float(ds, "WindowWidth")
    function = _code(ds, "VOILUTFunction") or "LINEAR"
    if center is None or width is None or width <= 0:
        return None
    if function == "SIGMOID":
        pixels = map_rows(
            values,
            lambda x: 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / width, -700, 700))),
        )
    elif function == "LINEAR_EXACT":
        pixels = map_rows(values, lambda x: ((x - center) / width + 0.5) * 255.0)
    elif function != "LINEAR" or width < 1:
        return None
    elif width == 1:
        pixels = map_rows(values, lambda x: np.where(x > center - 0.5, 255.0, 0.0))
    else:
        pixels = map_rows(values, lambda x: ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0)
    meta["window_center"] = center
    meta["window_width"] = width
    notices.append(
        f"DICOM display window applied (centre {fmt_value(center)}, width {fmt_value(width)})"
    )
    return pixels

"""DICOM uploads: read the dataset, check its header, decode the first frame whatever its
transfer syntax, show it in gray in the standard's order (PS3.3 C.11). Only technical header
fields reach the result. A compressed frame's own header must claim the size the DICOM header
states before any decoder runs. pydicom is imported inside functions: only DICOM needs it.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

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

_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_RLE_LOSSLESS = "1.2.840.10008.1.2.5"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_IMAGE_GROUPS = (0x0008, 0x0010, 0x0020, 0x0028)
_CS_VALUE = re.compile(r"[A-Z0-9 _]{1,16}")
_UID_VALUE = re.compile(r"[0-9.]{1,64}")
_CODE_FIELDS = ("Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined")
_NUMBER_FIELDS = ("Rows", "Columns", "BitsStored", "BitsAllocated", "SamplesPerPixel")
# JPEG start-of-frame markers (ITU T.81 B.1.1.3, every process incl. lossless) and JPEG-LS's.
_JPEG_SOF = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD, 0xCE, 0xCF, 0xF7}
)
_LAYOUT_REFUSED = "This DICOM image has a pixel layout that this app cannot show."


class Layout(NamedTuple):
    """The checked size and pixel format of a DICOM image, from its header."""

    rows: int
    cols: int
    samples: int
    bits: int
    frames: int
    bits_stored: int
    signed: bool
    photometric: str


def decode_dicom(data: bytes, forced: bool) -> DecodedImage:
    """Decode a DICOM file's first frame to grayscale (``forced``: it lacks the preamble)."""
    ds = _read_dataset(data, forced)
    ts, ts_name = _transfer_syntax(ds)
    layout = _layout(ds)
    arr = _first_frame(ds, ts, ts_name, layout)
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
    tags = ds.keys()
    if not any(tag in tags for tag in _PIXEL_TAGS):
        if forced and sum((int(tag) >> 16) in _IMAGE_GROUPS for tag in tags) < 2:
            raise ImageError(f"This file is not a valid DICOM file. {limits.PLEASE}")
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


def _field(ds: Any, keyword: str, convert: Callable[[Any], Any]) -> Any:
    """``convert`` of a header field's value, or None when absent, empty or invalid."""
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else convert(value)
    except Exception:  # noqa: BLE001
        return None


def _int(ds: Any, keyword: str) -> int | None:
    return _field(ds, keyword, int)


def _float(ds: Any, keyword: str) -> float | None:
    """First value of a numeric field, or None when absent, invalid or not finite."""
    from pydicom.multival import MultiValue  # heavy; only DICOM uploads load it

    sequence = list | tuple | MultiValue
    first = _field(ds, keyword, lambda v: float(v[0] if isinstance(v, sequence) else v))
    return first if first is not None and np.isfinite(first) else None


def _code(ds: Any, keyword: str) -> str | None:
    """A code-string field, only if it looks like a code (never a name or free text)."""
    text = _field(ds, keyword, lambda v: str(v).strip().upper())
    return text if text and _CS_VALUE.fullmatch(text) else None


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


def _first_frame(ds: Any, ts: Any, ts_name: str, layout: Layout) -> np.ndarray:
    """The first frame's stored values as pydicom's ``pixel_array`` returns them."""
    from pydicom.pixels import get_decoder, pixel_array  # heavy; only DICOM uploads load it

    if ts.is_compressed:
        try:
            available = get_decoder(ts).is_available
        except Exception:  # noqa: BLE001 - pydicom knows no decoder for it at all
            available = False
        if not available:
            raise ImageError(
                f"This DICOM image is compressed as {ts_name}, which this app cannot decode. "
                "Please export it uncompressed or as PNG."
            )
        if ts.is_encapsulated and 0x7FE00010 in ds:  # Pixel Data
            _check_encapsulated_size(ds, layout)
    try:
        if ts == _RLE_LOSSLESS:
            return _rle_first_frame(ds, layout)
        return pixel_array(ds, index=0)
    except (MemoryError, ImageError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(
            f"The image data in this DICOM file ({ts_name}) is damaged or incomplete and "
            "could not be decoded."
        ) from exc


def jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the frame header of a JPEG (any process, ITU T.81) or JPEG-LS
    stream, or None; the header is read, never the image."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # a scan, or the end, before any frame header
            return None
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            # A height of 0 is left to a later DNL marker (T.81 B.2.5): unknown here.
            return (width, height) if height and width else None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _check_encapsulated_size(ds: Any, layout: Layout) -> None:
    """Refuse a compressed first frame whose own header claims a huge or another size
    (read before any decoder runs, so a claimed 60,000 x 60,000 is never allocated)."""
    from pydicom.encaps import get_frame  # heavy; only DICOM uploads load it

    try:
        fragment = bytes(get_frame(ds.PixelData, 0, number_of_frames=layout.frames)[:65536])
    except Exception:  # noqa: BLE001 - pydicom's decoder will report the damage
        return
    size = jpeg_frame_size(fragment)
    if size is None:
        try:
            with Image.open(io.BytesIO(fragment), formats=["JPEG2000"]) as inner:
                size = inner.size
        except Image.DecompressionBombError as exc:
            raise limits.bomb_error(exc) from None
        except Exception:  # noqa: BLE001 - not a format that can be sized; nothing to check
            return
    width, height = size
    limits.check_dimensions(width, height)
    if (width, height) != (layout.cols, layout.rows):
        raise ImageError(
            "This DICOM file is damaged: its compressed image does not match its stated size."
        )


def _rle_first_frame(ds: Any, layout: Layout) -> np.ndarray:
    """Decode the first frame of DICOM RLE Lossless data (PS3.5 Annex G) as pydicom's
    ``pixel_array`` would; its segments are PackBits streams, decoded in C by Pillow
    (pydicom's decoder loops over each run in Python: a file of one-byte runs would hang)."""
    from pydicom.encaps import get_frame  # heavy; only DICOM uploads load it

    rows, cols, samples, bits, frames, stored, signed, photometric = layout
    if bits not in (8, 16, 32) or samples not in (1, 3):
        raise ImageError(_LAYOUT_REFUSED)
    frame = bytes(get_frame(ds.PixelData, 0, number_of_frames=frames))
    planes = _rle_planes(frame, samples, bits // 8, rows * cols)
    if signed:
        values = planes.view(f"<i{bits // 8}")
        if 0 < stored < bits:
            values = (values << (bits - stored)) >> (bits - stored)
        planes = values
    if samples == 1:
        return planes[0].reshape(rows, cols)
    rgb = planes.reshape(samples, rows, cols).transpose(1, 2, 0)
    if photometric.startswith("YBR") and bits == 8:
        from pydicom.pixels import convert_color_space  # heavy; only DICOM uploads load it

        rgb = convert_color_space(rgb, "YBR_FULL", "RGB")
    return rgb


def _rle_planes(frame: bytes, samples: int, bytes_per_sample: int, n: int) -> np.ndarray:
    """The ``samples`` planes of ``n`` unsigned values each, from an RLE frame's segments."""
    header = struct.unpack("<16I", frame[:64]) if len(frame) >= 64 else (0,)
    count = header[0]
    offsets = [*header[1 : count + 1], len(frame)]
    if (
        count != samples * bytes_per_sample
        or offsets[0] != 64
        or any(a > b for a, b in zip(offsets, offsets[1:], strict=False))
    ):
        raise ValueError("invalid RLE header")
    planes = np.zeros((samples, n), dtype=f"<u{bytes_per_sample}")
    for index in range(count):
        limits.tick()
        decoded = Image.frombytes(
            "L", (n, 1), frame[offsets[index] : offsets[index + 1]], "packbits", "L"
        )
        sample, byte = divmod(index, bytes_per_sample)  # byte 0 is the most significant
        shift = 8 * (bytes_per_sample - 1 - byte)
        plane = np.frombuffer(decoded.tobytes(), np.uint8).astype(planes.dtype)
        planes[sample] |= plane << shift if shift else plane
    return planes


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
        raise ImageError(_LAYOUT_REFUSED)
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
    slope = _float(ds, "RescaleSlope") or 1.0  # absent or 0: the identity
    intercept = _float(ds, "RescaleIntercept") or 0.0
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
    none or an unsupported one. By hand: pydicom's ``apply_windowing`` is too slow for the
    time budget on large images."""
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
    meta.update(window_center=center, window_width=width)
    notices.append(
        f"DICOM display window applied (centre {fmt_value(center)}, width {fmt_value(width)})"
    )
    return pixels

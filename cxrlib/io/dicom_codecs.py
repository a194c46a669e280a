"""The first frame of a DICOM image's pixel data, whatever its transfer syntax.

Compressed data is checked before any decoder runs: the decoder must be available, and
the compressed frame's own header must claim the size the DICOM header states. pydicom
is imported inside functions: a heavy dependency only DICOM uploads need.
"""

from __future__ import annotations

import io
import struct
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from cxrlib.core.errors import ImageError
from cxrlib.io.limits import bomb_error, check_dimensions, tick

_RLE_LOSSLESS = "1.2.840.10008.1.2.5"
# JPEG start-of-frame markers (ITU T.81 B.1.1.3, every process incl. lossless) and JPEG-LS's.
_JPEG_SOF = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD, 0xCE, 0xCF}
)
_JPEG_LS_SOF = 0xF7
LAYOUT_REFUSED = "This DICOM image has a pixel layout that this app cannot show."


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


def first_frame(ds: Any, ts: Any, ts_name: str, layout: Layout) -> np.ndarray:
    """The first frame's stored values as pydicom's ``pixel_array`` returns them (``ts``: the
    dataset's transfer syntax, a pydicom ``UID``; ``ts_name``: its display name)."""
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
        if marker in _JPEG_SOF or marker == _JPEG_LS_SOF:
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
            raise bomb_error(exc) from None
        except Exception:  # noqa: BLE001 - not a format that can be sized; nothing to check
            return
    width, height = size
    check_dimensions(width, height)
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
        raise ImageError(LAYOUT_REFUSED)
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
        tick()
        decoded = Image.frombytes(
            "L", (n, 1), frame[offsets[index] : offsets[index + 1]], "packbits", "L"
        )
        sample, byte = divmod(index, bytes_per_sample)  # byte 0 is the most significant
        shift = 8 * (bytes_per_sample - 1 - byte)
        plane = np.frombuffer(decoded.tobytes(), np.uint8).astype(planes.dtype)
        planes[sample] |= plane << shift if shift else plane
    return planes

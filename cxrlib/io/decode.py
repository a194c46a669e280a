"""The only entry point for untrusted image bytes: upload -> 2-D uint8 grayscale.

:func:`decode_image` turns the bytes of an uploaded file into a grayscale
``uint8`` array, or refuses it with an :class:`~cxrlib.core.errors.ImageError`
whose message a clinician can read ("This file is a PDF document, not an image").
Whatever the bytes, no other exception type escapes, and nothing is ever written
to disk.

Supported: PNG, JPEG (EXIF orientation applied), BMP, TIFF, GIF, WebP
(:mod:`cxrlib.io.pillow`) and DICOM (:mod:`cxrlib.io.dicom`). 16-bit, 32-bit and
floating-point images are stretched from their used range (min..max) to 0..255;
DICOM goes through the modality LUT (rescale slope/intercept), then the file's VOI
LUT or window when present (else the used range), and MONOCHROME1 is inverted.
Alpha is composited on black. For animations, multi-page TIFFs and multi-frame
DICOMs only the first frame is decoded, with a notice.

Safety measures:
  * The byte size is capped (:data:`~cxrlib.io.limits.MAX_BYTES`), the type is
    sniffed from the content (:mod:`cxrlib.io.sniff`, never trusted from the name),
    and only a short list of Pillow plugins may open the file.
  * Width and height are checked from the header before any pixel is decoded
    (:mod:`cxrlib.io.limits`).
  * A call is abandoned once :data:`~cxrlib.io.budget.TIME_BUDGET_S` seconds have
    passed (:mod:`cxrlib.io.budget`; a single decoder call in C cannot be
    interrupted, so the largest legal images, ~50 MP, can overrun it by a few
    hundred ms).
  * Only the first frame is decoded; frames are counted from their headers under a
    short budget of their own.
  * Deflated DICOM (a zlib stream of the whole dataset) is refused rather than
    inflated without a bound.
  * Truncated files are refused (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left False
    and every image is fully loaded).
  * Metadata is an allow-list of technical fields (:mod:`cxrlib.io.dicom_fields`);
    no DICOM patient, study or institution field, EXIF tag, PNG text chunk or file
    name is ever copied into the result or into a message.
  * Decoding is serialised by a lock, which bounds memory when several users upload
    at once and keeps the warning filters (which are process-wide) consistent.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from cxrlib.core.errors import ImageError
from cxrlib.io import budget
from cxrlib.io.decoded import DecodedImage
from cxrlib.io.dicom import decode_dicom
from cxrlib.io.limits import (
    PLEASE,
    check_bytes,
    check_dimensions,
    checked_size,
    too_slow_message,
    tracking_size,
)
from cxrlib.io.pillow import decode_pillow
from cxrlib.io.sniff import sniff

_LOCK = threading.Lock()


def read_image(data: bytes, filename: str = "") -> np.ndarray:
    """Decode an upload to a 2-D uint8 grayscale array (see :func:`decode_image`)."""
    return decode_image(data, filename).pixels


def decode_image(data: bytes, filename: str = "") -> DecodedImage:
    """Decode untrusted bytes to a grayscale image, or refuse them.

    Args:
        data: The file's bytes (kept in memory, never written anywhere).
        filename: The uploaded name; only its extension is used (``.dcm`` for
            DICOM files without the standard preamble). It never appears in
            messages or metadata.

    Returns:
        The decoded image with notices and safe technical metadata.

    Raises:
        ImageError: For anything that is not a usable image; no other
            exception type escapes.
    """
    try:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ImageError(f"Expected the file's bytes, got {type(data).__name__}.")
        name = filename.lower() if isinstance(filename, str) else ""
        return _finish(_decode_within_budget(bytes(data), name))
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(
            "The image is too large to open in the memory available. " + PLEASE
        ) from None
    except RecursionError:
        raise ImageError("The file is damaged (it is nested too deeply to read).") from None
    except Exception as exc:  # noqa: BLE001 - the contract: only ImageError escapes
        raise ImageError(
            "The file could not be read as an image; it may be damaged. " + PLEASE
        ) from exc


def _decode_within_budget(data: bytes, name: str) -> DecodedImage:
    """:func:`_decode` under the lock, the time budget and recorded (ignored) warnings."""
    with _LOCK, warnings.catch_warnings(record=True):
        # Record (and ignore) warnings: callers running with -W error must
        # not see a library's warning escape as an exception.
        warnings.simplefilter("always")
        with tracking_size():
            try:
                with budget.within(budget.TIME_BUDGET_S):
                    return _decode(data, name)
            except budget.TooSlow:
                raise ImageError(too_slow_message(checked_size())) from None


def _decode(data: bytes, name: str) -> DecodedImage:
    """Sniff the type from the content and decode with the matching decoder."""
    check_bytes(data)
    kind, forced = sniff(data, name)
    if kind == "DICOM":
        return decode_dicom(data, forced=forced)
    return decode_pillow(data, kind)


def _finish(result: DecodedImage) -> DecodedImage:
    """Final contract check: 2-D, uint8, contiguous, within the size limits."""
    pixels = result.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2:
        raise ImageError("The image could not be converted to grayscale. " + PLEASE)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    check_dimensions(width, height)
    result.pixels = pixels
    result.meta["width"] = int(width)
    result.meta["height"] = int(height)
    return result

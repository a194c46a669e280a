"""The only entry point for untrusted image bytes: upload -> 2-D uint8 grayscale.

Whatever the bytes, :func:`decode_image` returns an image or raises an
:class:`~cxrlib.core.errors.ImageError` whose message a clinician can read; nothing is
written to disk. The safety measures are described in docs/upload-decoding.md.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from cxrlib.core.errors import ImageError
from cxrlib.io import limits
from cxrlib.io.decoded import DecodedImage
from cxrlib.io.dicom import decode_dicom
from cxrlib.io.limits import PLEASE
from cxrlib.io.pillow import decode_pillow

_LOCK = threading.Lock()


def read_image(data: bytes, filename: str = "") -> np.ndarray:
    """Decode an upload to a 2-D uint8 grayscale array (see :func:`decode_image`)."""
    return decode_image(data, filename).pixels


def decode_image(data: bytes, filename: str = "") -> DecodedImage:
    """Decode untrusted bytes to a grayscale image with notices and safe metadata.

    Args:
        data: The file's bytes (kept in memory, never written anywhere).
        filename: The uploaded name; only its extension is read (``.dcm`` for DICOM
            without the standard preamble), never shown in messages or metadata.

    Raises:
        ImageError: For anything that is not a usable image; no other exception escapes.
    """
    try:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ImageError(f"Expected the file's bytes, got {type(data).__name__}.")
        name = filename.lower() if isinstance(filename, str) else ""
        data = bytes(data)
        # The lock bounds memory when several users upload at once and keeps the
        # process-wide warning filters consistent; warnings are recorded and ignored so
        # that callers running with -W error never see one as an exception.
        with _LOCK, warnings.catch_warnings(record=True), limits.time_budget():
            warnings.simplefilter("always")
            limits.check_bytes(data)
            kind, forced = limits.sniff(data, name)
            if kind == "DICOM":
                result = decode_dicom(data, forced=forced)
            else:
                result = decode_pillow(data, kind)
        return _finish(result)
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


def _finish(result: DecodedImage) -> DecodedImage:
    """Final contract check: 2-D, uint8, contiguous, within the size limits."""
    pixels = result.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2:
        raise ImageError("The image could not be converted to grayscale. " + PLEASE)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    limits.check_dimensions(width, height)
    result.pixels = pixels
    result.meta["width"] = int(width)
    result.meta["height"] = int(height)
    return result

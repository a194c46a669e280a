"""The only entry point for untrusted image bytes: upload -> 2-D uint8 grayscale, or an
:class:`~cxrlib.core.errors.ImageError` a clinician can read (docs/upload-decoding.md).
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
    """Decode untrusted bytes (kept in memory) to a grayscale image with notices and safe
    metadata. Only ``filename``'s extension is read (``.dcm``: DICOM without the preamble),
    and it is never shown.

    Raises:
        ImageError: For anything that is not a usable image; no other exception escapes.
    """
    try:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ImageError(f"Expected the file's bytes, got {type(data).__name__}.")
        name = filename.lower() if isinstance(filename, str) else ""
        data = bytes(data)
        # The lock bounds memory and keeps the process-wide warning filters consistent;
        # warnings are recorded so that callers running with -W error never see one.
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
    result.meta.update(width=int(width), height=int(height))
    return result

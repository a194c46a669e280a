"""The only entry point for untrusted image bytes: upload -> 2-D uint8 grayscale.

:func:`decode_image` turns the bytes of an uploaded file into a grayscale
``uint8`` array, or refuses it with an :class:`ImageError` whose message a
clinician can read ("This file is a PDF document, not an image"). Whatever the
bytes, no other exception type escapes, and nothing is ever written to disk.

Supported: PNG, JPEG (EXIF orientation applied), BMP, TIFF, GIF, WebP and
DICOM. 16-bit, 32-bit and floating-point images are stretched from their used
range (min..max) to 0..255; DICOM goes through the modality LUT (rescale
slope/intercept), then the file's VOI LUT or window when present (else the
used range), and MONOCHROME1 is inverted. Alpha is composited on black. For
animations, multi-page TIFFs and multi-frame DICOMs only the first frame is
decoded, with a notice.

Safety measures:
  * The byte size is capped (:data:`MAX_BYTES`), the type is sniffed from the
    content (never trusted from the name), and only a short list of Pillow
    plugins may open the file.
  * Width and height are checked from the header before any pixel is decoded
    (:data:`MAX_MEGAPIXELS`, :data:`MIN_SIDE`, :data:`MAX_ASPECT`).
  * A call is abandoned once :data:`TIME_BUDGET_S` seconds have passed: the
    clock is checked at every read from the in-memory file and between blocks
    of pixel processing (a single decoder call in C cannot be interrupted, so
    the largest legal images, ~50 MP, can overrun it by a few hundred ms).
  * Only the first frame is decoded; frames are counted from their headers
    under a short budget of their own.
  * Deflated DICOM (a zlib stream of the whole dataset) is refused rather than
    inflated without a bound.
  * Truncated files are refused (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left
    False and every image is fully loaded).
  * Metadata is an allow-list of technical fields; no DICOM patient, study or
    institution field, EXIF tag, PNG text chunk or file name is ever copied
    into the result or into a message.
  * Decoding is serialised by a lock, which bounds memory when several users
    upload at once and keeps the warning filters (which are process-wide)
    consistent.
"""

from __future__ import annotations

import contextvars
import io
import math
import re
import struct
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

MIN_SIDE = 128
"""Smallest accepted width and height, in pixels."""
MAX_MEGAPIXELS = 50
"""Largest accepted image area (width x height), in millions of pixels."""
MAX_BYTES = 60_000_000
"""Largest accepted file, in bytes."""
MAX_ASPECT = 4.0
"""Largest accepted ratio of the longer side to the shorter side."""
MAX_FRAME_BYTES = 256 * 1024 * 1024
"""Largest decoded first frame (DICOM), in bytes."""
TIME_BUDGET_S = 1.5
"""Reading a file is abandoned after this many seconds."""
_FRAME_COUNT_S = 0.25  # counting frames gives up (without failing) after this long

SUPPORTED = "PNG, JPEG, TIFF, BMP, GIF, WebP or DICOM"
_PLEASE = f"Please upload a chest X-ray as {SUPPORTED}."

# Pillow plugins allowed to open uploads, and the name shown for each.
# (MPO, multi-picture JPEG, is opened through the JPEG plugin.)
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_FORMAT_NAMES = {"MPO": "JPEG", "WEBP": "WebP"}

# Colourfulness above which "Colour image converted to grayscale" is noted.
_COLOUR_NOTICE = 0.02
_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_RLE_LOSSLESS = "1.2.840.10008.1.2.5"
# JPEG start-of-frame markers (ITU T.81 B.1.1.3, every process incl. lossless) and JPEG-LS's.
_JPEG_SOF = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD, 0xCE, 0xCF}
)
_JPEG_LS_SOF = 0xF7
_CS_VALUE = re.compile(r"[A-Z0-9 _]{1,16}")
_UID_VALUE = re.compile(r"[0-9.]{1,64}")
_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")

_LOCK = threading.Lock()
# Per-call state (context variables, so concurrent callers never share them).
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)
_SIZE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("size", default=None)


class ImageError(ValueError):
    """The upload cannot be used; the message is meant for the person who sent it."""


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
        data = bytes(data)
        name = filename.lower() if isinstance(filename, str) else ""
        with _LOCK, warnings.catch_warnings(record=True):
            # Record (and ignore) warnings: callers running with -W error must
            # not see a library's warning escape as an exception.
            warnings.simplefilter("always")
            deadline_token = _DEADLINE.set(time.monotonic() + TIME_BUDGET_S)
            size_token = _SIZE.set(None)
            try:
                result = _decode(data, name)
            except _TooSlow:
                size = _SIZE.get()
                raise ImageError(_too_slow_message(size)) from None
            finally:
                _DEADLINE.reset(deadline_token)
                _SIZE.reset(size_token)
        return _finish(result)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(
            "The image is too large to open in the memory available. " + _PLEASE
        ) from None
    except RecursionError:
        raise ImageError("The file is damaged (it is nested too deeply to read).") from None
    except Exception as exc:  # noqa: BLE001 - the contract: only ImageError escapes
        raise ImageError(
            "The file could not be read as an image; it may be damaged. " + _PLEASE
        ) from exc


# --------------------------------------------------------------------------- helpers


class _TooSlow(BaseException):
    """Raised from inside a library's read() when the time budget is spent.

    A BaseException so that libraries' ``except Exception`` blocks do not
    swallow it; :func:`decode_image` turns it into an :class:`ImageError`.
    """


def _tick() -> None:
    """Raise :class:`_TooSlow` once this call's time budget is spent."""
    if time.monotonic() > _DEADLINE.get():
        raise _TooSlow


def _too_slow_message(size: tuple[int, int] | None) -> str:
    if size is None:
        return (
            "Reading this file took too long, so it was stopped; the file may be damaged. "
            + _PLEASE
        )
    width, height = size
    return (
        f"The image ({width:,} x {height:,} pixels) took too long to open, so it was "
        "stopped. Please upload a smaller copy (about 3,000 pixels per side is plenty)."
    )


class _DeadlineReader(io.BytesIO):
    """In-memory file whose reads fail once the time budget is spent."""

    def read(self, size: int | None = -1) -> bytes:
        _tick()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        _tick()
        return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        _tick()
        return super().readinto(buffer)


def _fmt_mp(megapixels: float) -> str:
    return f"{megapixels:,.0f}" if megapixels >= 100 else f"{megapixels:,.1f}"


def exif_orientation(im: Image.Image) -> int | None:
    """The image's EXIF orientation tag (1-8), or None when it has none or it is unreadable
    (then the image is shown as stored)."""
    try:
        return im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the image
        return None


def _check_dimensions(width: int, height: int) -> None:
    """Refuse sizes that cannot be a chest X-ray or would be a decompression bomb."""
    if width <= 0 or height <= 0:
        raise ImageError(f"The image has no pixels ({width:,} x {height:,}).")
    megapixels = width * height / 1e6
    if megapixels > MAX_MEGAPIXELS:
        raise ImageError(
            f"The image has {_fmt_mp(megapixels)} megapixels; the limit is {MAX_MEGAPIXELS}."
        )
    long_side, short_side = max(width, height), min(width, height)
    if long_side / short_side > MAX_ASPECT:
        raise ImageError(
            f"The image is {width:,} x {height:,} pixels: far too long and thin for a chest "
            f"X-ray (one side may be at most {MAX_ASPECT:g} times the other)."
        )
    if short_side < MIN_SIDE:
        raise ImageError(
            f"The image is {width:,} x {height:,} pixels; a chest X-ray needs at least "
            f"{MIN_SIDE} pixels per side."
        )
    _SIZE.set((int(width), int(height)))


def _finish(result: DecodedImage) -> DecodedImage:
    """Final contract check: 2-D, uint8, contiguous, within the size limits."""
    pixels = result.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2:
        raise ImageError("The image could not be converted to grayscale. " + _PLEASE)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    _check_dimensions(width, height)
    result.pixels = pixels
    result.meta["width"] = int(width)
    result.meta["height"] = int(height)
    return result


# --------------------------------------------------------------------------- sniffing

_IMAGE_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"II+\x00", 0, "TIFF"),
    (b"MM\x00+", 0, "TIFF"),
)
# BITMAPINFOHEADER sizes that may follow the 14-byte "BM" file header.
_BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)

_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (Word, Excel and PowerPoint files are ZIP archives too)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a Microsoft Office document"),
    (b"\x1f\x8b", "a compressed (gzip) archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"%!PS", "a PostScript document"),
    (b"{\\rtf", "a rich-text (RTF) document"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image, which is not supported"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image, which is not supported"),
    (b"ID3", "an audio file"),
    (b"OggS", "an audio or video file"),
    (b"\x1a\x45\xdf\xa3", "a video file"),
    (b"\x00\x00\x01\x00", "an icon file"),
)


def _sniff_other(data: bytes) -> str | None:
    """Describe well-known non-image (or unsupported) types, or None."""
    if b"%PDF" in data[:1024]:
        return "a PDF document"
    for magic, what in _OTHER_MAGIC:
        if data.startswith(magic):
            return what
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"):
            return "a HEIC/HEIF photo, which is not supported (export it as JPEG or PNG)"
        if brand in (b"avif", b"avis"):
            return "an AVIF image, which is not supported (export it as JPEG or PNG)"
        return "a video file"
    if data.startswith(b"RIFF") and data[8:12] != b"WEBP":
        return "an audio or video file"
    return None


def _describe_text(data: bytes) -> str | None:
    """Describe text-like content (SVG, HTML, XML, JSON, plain text), or None."""
    head = data[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="replace")
    else:
        text = head.decode("utf-8", errors="replace")
    if not text:
        return None
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f"))
    if bad > 0.02 * len(text):
        return None
    lower = text.lstrip("\ufeff \t\r\n").lower()
    if lower.startswith(("<!doctype html", "<html")):
        return "a web page (HTML)"
    if "<svg" in lower:
        return "an SVG drawing"
    if any(tag in lower for tag in ("<html", "<head", "<body")):
        return "a web page (HTML)"
    if lower.startswith("<"):
        return "XML data"
    if lower.startswith(("{", "[")):
        return "JSON data"
    return "plain text"


def _looks_like_raw_dicom(data: bytes) -> bool:
    """DICOM without the 128-byte preamble: group 0002/0008 tag then an explicit VR."""
    return (
        len(data) >= 8
        and data[:2] in (b"\x02\x00", b"\x08\x00")
        and data[4:6].isalpha()
        and data[4:6].isupper()
    )


def _decode(data: bytes, name: str) -> DecodedImage:
    if not data:
        raise ImageError("The file is empty (0 bytes). " + _PLEASE)
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"The file is {len(data) / 1e6:,.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB."
        )
    if data[128:132] == b"DICM":
        return _decode_dicom(data, forced=False)
    for magic, offset, kind in _IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return _decode_pillow(data, kind)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _decode_pillow(data, "WebP")
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES:
        return _decode_pillow(data, "BMP")
    other = _sniff_other(data)
    if other is not None:
        raise ImageError(f"This file is {other}, not an image. {_PLEASE}")
    if name.endswith((".dcm", ".dicom", ".dic")) or _looks_like_raw_dicom(data):
        return _decode_dicom(data, forced=True)
    text = _describe_text(data)
    if text is not None:
        raise ImageError(f"This file is {text}, not an image. {_PLEASE}")
    raise ImageError(f"This file is not an image this app can read. {_PLEASE}")


# --------------------------------------------------------------------------- Pillow


def _pillow_failure(exc: BaseException, kind: str) -> ImageError:
    msg = str(exc).lower()
    if isinstance(exc, EOFError) or any(
        s in msg for s in ("truncated", "broken data stream", "premature end", "end of file")
    ):
        return ImageError(
            f"The {kind} file is incomplete (it was cut short); please upload it again."
        )
    return ImageError(f"The {kind} file is damaged and could not be read. {_PLEASE}")


def _bomb_error(exc: BaseException) -> ImageError:
    match = _BOMB_PIXELS.search(str(exc))
    if match:
        megapixels = int(match.group(1)) / 1e6
        return ImageError(
            f"The image has {_fmt_mp(megapixels)} megapixels; the limit is {MAX_MEGAPIXELS}."
        )
    return ImageError(f"The image is far too large; the limit is {MAX_MEGAPIXELS} megapixels.")


def _sample(im: Image.Image | np.ndarray, pixels: int = 250_000) -> np.ndarray:
    """At most about ``pixels`` pixels of an image, evenly spaced (nearest neighbour)."""
    if isinstance(im, np.ndarray):
        step = max(1, int(np.ceil(np.sqrt(im.shape[0] * im.shape[1] / pixels))))
        return im[::step, ::step]
    width, height = im.size
    step = max(1, int(np.ceil(np.sqrt(width * height / pixels))))
    if step > 1:
        size = (max(1, width // step), max(1, height // step))
        im = im.resize(size, Image.Resampling.NEAREST)
    return np.asarray(im)


def _colourfulness(
    rgb: Image.Image | np.ndarray, alpha: Image.Image | np.ndarray | None = None
) -> float:
    """Mean chroma, (max - min of R, G, B) / 255, over a sample of ~250k pixels.

    0 for gray; with ``alpha``, chroma is weighted as composited on black.
    """
    sample = _sample(rgb).astype(np.float32)
    chroma = sample.max(axis=2) - sample.min(axis=2)
    if alpha is not None:
        chroma *= _sample(alpha).astype(np.float32) / 255.0
    return round(float(chroma.mean()) / 255.0, 4)


def _stretch(arr: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
    """Map the used range (min..max of finite values) linearly onto 0..255.

    Returns:
        (uint8 array, min, max, whether non-finite values were replaced).
    """
    nonfinite = False
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            nonfinite = True
            if not finite.any():
                return np.zeros(arr.shape, np.uint8), 0.0, 0.0, True
            lo = float(arr[finite].min())
            hi = float(arr[finite].max())
            arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
        del finite
    lo = float(arr.min())
    hi = float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8), lo, hi, nonfinite
    if arr.dtype.kind == "b":
        arr = arr.view(np.uint8)
    scale = 255.0 / (hi - lo)
    if arr.dtype in (np.uint8, np.uint16, np.int8, np.int16):
        # Small integer types: one lookup table, no float copy of the image.
        info = np.iinfo(arr.dtype)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.float64)
        lut = np.clip(np.floor((values - lo) * scale + 0.5), 0, 255).astype(np.uint8)
        index = arr.astype(np.int32) - int(info.min) if info.min else arr
        return lut[index], lo, hi, nonfinite
    out = _map_rows(arr, lambda block: (block - lo) * scale)
    return out, lo, hi, nonfinite


def _map_rows(values: np.ndarray, fn: Any) -> np.ndarray:
    """Apply ``fn`` (float64 block -> 0..255 floats) in blocks of rows; round to uint8.

    Working in blocks of about a million pixels keeps the float64 copies small.
    """
    out = np.empty(values.shape, np.uint8)
    per_row = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1
    rows = max(1, 1_000_000 // max(1, per_row))
    for start in range(0, values.shape[0], rows):
        _tick()
        block = fn(values[start : start + rows].astype(np.float64))
        out[start : start + rows] = np.clip(np.floor(block + 0.5), 0, 255)
    return out


def _fmt_value(value: float) -> str:
    return f"{value:,.6g}"


def _frame_count(im: Image.Image) -> int | None:
    """Number of frames/pages, or None if they cannot be counted quickly.

    Counting walks every frame header (never the pixel data), so it gets its
    own short budget: a file with thousands of bloated TIFF directories must
    not cost more than the first frame did.
    """
    token = _DEADLINE.set(min(_DEADLINE.get(), time.monotonic() + _FRAME_COUNT_S))
    try:
        return int(getattr(im, "n_frames", 1))
    except _TooSlow:
        return None
    except Exception:  # noqa: BLE001 - a damaged later frame must not spoil the first
        return None
    finally:
        _DEADLINE.reset(token)


def _decode_pillow(data: bytes, kind: str) -> DecodedImage:
    notices: list[str] = []
    reader = _DeadlineReader(data)
    try:
        im = Image.open(reader, formats=list(_PIL_FORMATS))
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc) from None
    except UnidentifiedImageError as exc:
        text = _describe_text(data)
        if text is not None:
            raise ImageError(f"This file is {text}, not an image. {_PLEASE}") from None
        raise ImageError(f"The {kind} file is damaged and could not be read. {_PLEASE}") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError) as exc:
        text = _describe_text(data)
        if text is not None:
            raise ImageError(f"This file is {text}, not an image. {_PLEASE}") from None
        raise _pillow_failure(exc, kind) from exc
    with im:
        fmt = _FORMAT_NAMES.get(str(im.format), str(im.format))
        width, height = im.size
        _check_dimensions(width, height)
        try:
            if im.tell() != 0:
                im.seek(0)
            im.load()
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc) from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _pillow_failure(exc, fmt) from exc
        _check_dimensions(*im.size)
        _tick()

        frame: Image.Image = im
        if exif_orientation(im) in (2, 3, 4, 5, 6, 7, 8):
            try:
                frame = ImageOps.exif_transpose(im)
                notices.append("Rotated upright using the photo's orientation tag (EXIF)")
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001
                notices.append("The photo's orientation tag could not be applied")
                frame = im

        pixels, meta = _pillow_to_gray(frame, notices)
        meta["mode"] = str(im.mode)

        frames = _frame_count(im)
        if frames is not None and frames > 1:
            meta["frames"] = frames
            notices.append(_frames_notice(fmt, frames))
        else:
            meta["frames"] = 1
            if frames is None and fmt in ("GIF", "TIFF", "WebP"):
                notices.append(
                    f"Showing the first frame only (the rest of this {fmt} could not be read)"
                )
    return DecodedImage(pixels=pixels, format=fmt, notices=notices, meta=meta)


def _frames_notice(fmt: str, frames: int) -> str:
    if fmt == "TIFF":
        return f"Multi-page TIFF: showing the first of {frames:,} pages"
    if fmt == "JPEG":
        return f"This JPEG holds {frames:,} pictures: showing the first"
    if fmt == "DICOM":
        return f"Multi-frame DICOM: showing the first of {frames:,} frames"
    return f"Animated {fmt}: showing the first of {frames:,} frames"


def _pillow_to_gray(im: Image.Image, notices: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Convert any Pillow mode to 8-bit grayscale; returns (pixels, meta)."""
    mode = im.mode
    meta: dict[str, Any] = {"colourfulness": 0.0}
    _tick()
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))
        bits = 16 if mode.startswith("I;16") else 32
        meta["bit_depth"] = bits
        pixels, lo, hi, nonfinite = _stretch(arr)
        what = "Floating-point" if mode == "F" else f"{bits}-bit"
        if hi > lo:
            notices.append(
                f"{what} image rescaled to 8 bits "
                f"(values {_fmt_value(lo)} to {_fmt_value(hi)} shown black to white)"
            )
        if nonfinite:
            notices.append("Some pixels had no valid value (NaN or infinity)")
        if hi <= lo:
            notices.append("The image is blank: every pixel has the same value")
        return pixels, meta

    meta["bit_depth"] = 1 if mode == "1" else 8
    if mode in ("L", "1"):
        gray = im.convert("L") if mode == "1" else im
    else:
        # Pillow images are converted in C; only small samples become numpy
        # arrays (np.asarray of a Pillow image copies it through tobytes()).
        has_alpha = "A" in mode or "a" in mode or "transparency" in im.info
        alpha = None
        if has_alpha:
            rgba = im if mode == "RGBA" else im.convert("RGBA")
            alpha = rgba.getchannel("A")
            rgb = rgba.convert("RGB")
            del rgba
            lowest, _ = cast(tuple[int, int], alpha.getextrema())  # one band: (min, max)
            if lowest < 255:
                notices.append("Transparent areas shown as black")
            else:
                alpha = None
        else:
            rgb = im if mode == "RGB" else im.convert("RGB")
        _tick()
        meta["colourfulness"] = _colourfulness(rgb, alpha)
        gray = rgb.convert("L")
        del rgb
        if alpha is not None:
            gray = ImageChops.multiply(gray, alpha)
        if meta["colourfulness"] > _COLOUR_NOTICE:
            notices.append("Colour image converted to grayscale")
    pixels = np.array(gray, dtype=np.uint8)
    if pixels.size and int(pixels.min()) == int(pixels.max()):
        notices.append("The image is blank: every pixel has the same value")
    return pixels, meta


# --------------------------------------------------------------------------- DICOM


def _dicom_int(ds: Any, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(value)
    except Exception:  # noqa: BLE001
        return None


def _dicom_float(ds: Any, keyword: str) -> float | None:
    """First value of a numeric field, or None when absent, invalid or not finite."""
    from pydicom.multival import MultiValue

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


def _dicom_code(ds: Any, keyword: str) -> str | None:
    """A code-string field, only if it looks like a code (never a name or free text)."""
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        text = str(value).strip().upper()
    except Exception:  # noqa: BLE001
        return None
    return text if _CS_VALUE.fullmatch(text) else None


def _dicom_meta(ds: Any, ts_name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"TransferSyntax": ts_name}
    for keyword in ("Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined"):
        value = _dicom_code(ds, keyword)
        if value is not None:
            meta[keyword] = value
    for keyword in ("Rows", "Columns", "BitsStored", "BitsAllocated", "SamplesPerPixel"):
        number = _dicom_int(ds, keyword)
        if number is not None:
            meta[keyword] = number
    return meta


def _transfer_syntax(ds: Any) -> tuple[Any, str]:
    """The dataset's transfer syntax (filled in when absent) and a safe display name."""
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    file_meta = getattr(ds, "file_meta", None)
    ts = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not ts:
        encoding = getattr(ds, "original_encoding", None) or (True, True)
        implicit = encoding[0] is not False
        ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        if file_meta is None:
            from pydicom.dataset import FileMetaDataset

            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    ts = UID(str(ts))
    if ts.is_transfer_syntax and ts.name != str(ts):
        name = ts.name
    elif _UID_VALUE.fullmatch(str(ts)):
        name = f"transfer syntax {ts}"
    else:
        name = "an unknown transfer syntax"
    return ts, name


def jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the frame header of a JPEG or JPEG-LS stream, or None.

    Covers every JPEG process (baseline, extended, progressive, lossless; ITU T.81)
    and JPEG-LS, which Pillow cannot open: the header is read, never the image.
    """
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


def _check_encapsulated_size(ds: Any, frames: int, rows: int, cols: int) -> None:
    """Refuse a compressed first frame whose own header claims a huge or another size.

    Read from the frame header before any decoder runs, so a small DICOM header over
    a JPEG that claims 60,000 x 60,000 pixels is refused without allocating them.
    """
    from pydicom.encaps import get_frame

    try:
        fragment = bytes(get_frame(ds.PixelData, 0, number_of_frames=frames)[:65536])
    except Exception:  # noqa: BLE001 - pydicom's decoder will report the damage
        return
    size = jpeg_frame_size(fragment)
    if size is None:
        try:
            with Image.open(io.BytesIO(fragment), formats=["JPEG2000"]) as inner:
                size = inner.size
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc) from None
        except Exception:  # noqa: BLE001 - not a format that can be sized; nothing to check
            return
    width, height = size
    _check_dimensions(width, height)
    if (width, height) != (cols, rows):
        raise ImageError(
            "This DICOM file is damaged: its compressed image does not match its stated size."
        )


def _decode_dicom(data: bytes, forced: bool) -> DecodedImage:
    import pydicom
    from pydicom.pixels import get_decoder, pixel_array

    if _DEFLATED_UID in data[:65536]:
        raise ImageError(
            "This DICOM file uses the 'deflated' format, which is not supported. "
            "Please export it uncompressed or as PNG."
        )
    try:
        ds = pydicom.dcmread(_DeadlineReader(data), force=forced)
    except _TooSlow:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError("This DICOM file is damaged and could not be read. " + _PLEASE) from exc

    tags = set(ds.keys())
    has_pixels = any(tag in tags for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    if forced and not has_pixels:
        known = [tag for tag in tags if (int(tag) >> 16) in (0x0008, 0x0010, 0x0020, 0x0028)]
        if len(known) < 2:
            raise ImageError(f"This file is not a valid DICOM file. {_PLEASE}")
    if not has_pixels:
        raise ImageError(
            "This DICOM file has no image in it (it may be a report or other non-image data)."
        )

    ts, ts_name = _transfer_syntax(ds)
    rows = _dicom_int(ds, "Rows")
    cols = _dicom_int(ds, "Columns")
    if rows is None or cols is None:
        raise ImageError("This DICOM file is damaged: it does not say how big its image is.")
    _check_dimensions(cols, rows)
    samples = _dicom_int(ds, "SamplesPerPixel") or 1
    bits = _dicom_int(ds, "BitsAllocated") or 16
    if samples < 1 or samples > 4 or bits < 1 or bits > 64:
        raise ImageError("This DICOM file is damaged: its pixel format is invalid.")
    if rows * cols * samples * max(1, bits // 8) > MAX_FRAME_BYTES:
        raise ImageError(
            f"The DICOM image is too large to open; the limit is {MAX_MEGAPIXELS} megapixels."
        )
    frames = _dicom_int(ds, "NumberOfFrames") or 1
    frames = max(1, frames)

    if ts.is_compressed:
        try:
            decoder = get_decoder(ts)
            available = decoder.is_available
        except Exception:  # noqa: BLE001 - pydicom knows no decoder for it at all
            available = False
        if not available:
            raise ImageError(
                f"This DICOM image is compressed as {ts_name}, which this app cannot decode. "
                "Please export it uncompressed or as PNG."
            )
        if ts.is_encapsulated and 0x7FE00010 in tags:
            _check_encapsulated_size(ds, frames, rows, cols)

    try:
        if ts == _RLE_LOSSLESS:
            arr = _rle_first_frame(ds, frames, rows, cols, samples, bits)
        else:
            arr = pixel_array(ds, index=0)
    except (_TooSlow, MemoryError, ImageError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(
            f"The image data in this DICOM file ({ts_name}) is damaged or incomplete and "
            "could not be decoded."
        ) from exc

    _tick()
    notices: list[str] = []
    meta = _dicom_meta(ds, ts_name)
    meta["frames"] = frames
    meta["colourfulness"] = 0.0
    stored = _dicom_int(ds, "BitsStored") or bits
    meta["bit_depth"] = stored
    photometric = _dicom_code(ds, "PhotometricInterpretation") or ""

    if arr.ndim == 2 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        pixels = _dicom_colour(arr[..., :3], meta, notices)
    elif arr.ndim == 2:
        pixels = _dicom_mono(arr, ds, photometric, meta, notices)
    else:
        raise ImageError("This DICOM image has a pixel layout that this app cannot show.")
    if frames > 1:
        notices.append(_frames_notice("DICOM", frames))
    if pixels.size and int(pixels.min()) == int(pixels.max()):
        notices.append("The image is blank: every pixel has the same value")
    return DecodedImage(pixels=pixels, format="DICOM", notices=notices, meta=meta)


def _rle_first_frame(
    ds: Any, frames: int, rows: int, cols: int, samples: int, bits: int
) -> np.ndarray:
    """Decode the first frame of DICOM RLE Lossless data (PS3.5 Annex G).

    pydicom's own RLE decoder loops over every run in Python: a crafted 60 MB
    file of one-byte runs would take about half a minute. The segments are
    PackBits streams, which Pillow decodes in C (50-100 times faster); the
    result is the array pydicom's ``pixel_array`` returns.
    """
    from pydicom.encaps import get_frame

    if bits not in (8, 16, 32) or samples not in (1, 3):
        raise ImageError("This DICOM image has a pixel layout that this app cannot show.")
    frame = bytes(get_frame(ds.PixelData, 0, number_of_frames=frames))
    bytes_per_sample = bits // 8
    header = struct.unpack("<16I", frame[:64]) if len(frame) >= 64 else (0,)
    count = header[0]
    offsets = [*header[1 : count + 1], len(frame)]
    if (
        count != samples * bytes_per_sample
        or offsets[0] != 64
        or any(a > b for a, b in zip(offsets, offsets[1:], strict=False))
    ):
        raise ValueError("invalid RLE header")
    n = rows * cols
    planes = np.zeros((samples, n), dtype=f"<u{bytes_per_sample}")
    for index in range(count):
        _tick()
        decoded = Image.frombytes(
            "L", (n, 1), frame[offsets[index] : offsets[index + 1]], "packbits", "L"
        )
        sample, byte = divmod(index, bytes_per_sample)  # byte 0 is the most significant
        shift = 8 * (bytes_per_sample - 1 - byte)
        plane = np.frombuffer(decoded.tobytes(), np.uint8).astype(planes.dtype)
        planes[sample] |= plane << shift if shift else plane
    if _dicom_int(ds, "PixelRepresentation") == 1:
        signed = planes.view(f"<i{bytes_per_sample}")
        stored = _dicom_int(ds, "BitsStored") or bits
        if 0 < stored < bits:
            signed = (signed << (bits - stored)) >> (bits - stored)
        planes = signed
    if samples == 1:
        return planes[0].reshape(rows, cols)
    rgb = planes.reshape(samples, rows, cols).transpose(1, 2, 0)
    photometric = _dicom_code(ds, "PhotometricInterpretation") or ""
    if photometric.startswith("YBR") and bits == 8:
        from pydicom.pixels import convert_color_space

        rgb = convert_color_space(rgb, "YBR_FULL", "RGB")
    return rgb


def _dicom_colour(rgb: np.ndarray, meta: dict[str, Any], notices: list[str]) -> np.ndarray:
    if rgb.dtype != np.uint8:
        rgb, _, _, _ = _stretch(rgb)
    meta["colourfulness"] = _colourfulness(rgb)
    if meta["colourfulness"] > _COLOUR_NOTICE:
        notices.append("Colour image converted to grayscale")
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))


def _dicom_mono(
    arr: np.ndarray,
    ds: Any,
    photometric: str,
    meta: dict[str, Any],
    notices: list[str],
) -> np.ndarray:
    """Modality LUT, then VOI LUT / window / used range, then MONOCHROME1 or
    Presentation LUT Shape INVERSE inversion."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    if ds.get("ModalityLUTSequence"):
        values = apply_modality_lut(arr, ds)
    else:
        slope = _dicom_float(ds, "RescaleSlope")
        intercept = _dicom_float(ds, "RescaleIntercept")
        slope = 1.0 if slope is None or slope == 0 else slope
        intercept = 0.0 if intercept is None else intercept
        if (slope, intercept) != (1.0, 0.0):
            values = arr.astype(np.float32)
            values *= np.float32(slope)
            values += np.float32(intercept)
        else:
            values = arr

    pixels = None
    if ds.get("VOILUTSequence"):
        try:
            item = ds.VOILUTSequence[0]
            entries = int(item.LUTDescriptor[0]) or 65536
            first = int(item.LUTDescriptor[1])
            table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, 0)
            lo, hi = float(table.min()), float(table.max())
            if hi > lo:
                scale = 255.0 / (hi - lo)
                pixels = _map_rows(
                    values,
                    lambda x: (apply_voi(np.rint(x).astype(np.int64), ds, 0) - lo) * scale,
                )
                notices.append("The DICOM file's display lookup table (VOI LUT) was applied")
        except (_TooSlow, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - fall back to the window or the used range
            pixels = None
    if pixels is None:
        center = _dicom_float(ds, "WindowCenter")
        width = _dicom_float(ds, "WindowWidth")
        function = _dicom_code(ds, "VOILUTFunction") or "LINEAR"
        if center is not None and width is not None and width > 0:
            pixels = _window(values, center, width, function)
            if pixels is not None:
                meta["window_center"] = center
                meta["window_width"] = width
                notices.append(
                    f"DICOM display window applied (centre {_fmt_value(center)}, "
                    f"width {_fmt_value(width)})"
                )
    if pixels is None:
        pixels, lo, hi, _ = _stretch(np.asarray(values))
        if hi > lo:
            notices.append(
                f"No display window in the DICOM file: values {_fmt_value(lo)} to "
                f"{_fmt_value(hi)} shown black to white"
            )
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
        notices.append("MONOCHROME1 image inverted so that bone appears white")
    elif _dicom_code(ds, "PresentationLUTShape") == "INVERSE":
        # PS3.3 C.11.6: the stored values are to be shown inverted. (With MONOCHROME1,
        # INVERSE is the same instruction as the photometric interpretation, not a second.)
        pixels = 255 - pixels
        notices.append("Inverted as the DICOM file asks (Presentation LUT Shape INVERSE)")
    return pixels


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray | None:
    """DICOM PS3.3 C.11.2.1.2 windowing straight to 0..255 (None if unsupported)."""
    if function == "SIGMOID":
        return _map_rows(
            values,
            lambda x: 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / width, -700, 700))),
        )
    if function == "LINEAR_EXACT":
        return _map_rows(values, lambda x: ((x - center) / width + 0.5) * 255.0)
    if function != "LINEAR" or width < 1:
        return None
    if width == 1:
        return _map_rows(values, lambda x: np.where(x > center - 0.5, 255.0, 0.0))
    return _map_rows(values, lambda x: ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0)

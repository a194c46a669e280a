"""What an upload may be: its type (from the content, never the name), byte and pixel size,
and the time one decode may take (checked where Python gets control back from a decoder);
and the messages that refuse the rest.
"""

from __future__ import annotations

import contextvars
import io
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cxrlib.core.errors import ImageError

# Accepted sizes: pixels per side, millions of pixels, bytes of the file, longer side over
# shorter side, bytes of a decoded first DICOM frame.
MIN_SIDE = 128
MAX_MEGAPIXELS = 50
MAX_BYTES = 60_000_000
MAX_ASPECT = 4.0
MAX_FRAME_BYTES = 256 * 1024 * 1024
TIME_BUDGET_S = 1.5  # reading a file is abandoned after this many seconds
FRAME_COUNT_S = 0.25  # counting frames gives up (without failing) after this long

PLEASE = "Please upload a chest X-ray as PNG, JPEG, TIFF, BMP, GIF, WebP or DICOM."

_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")
_SIZE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("size", default=None)
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)

_IMAGE_MAGIC: dict[str, tuple[bytes, ...]] = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}
# BITMAPINFOHEADER sizes that may follow the 14-byte "BM" file header.
_BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
# DICOM without the 128-byte preamble: a group 0002 or 0008 tag, then an explicit VR.
_RAW_DICOM = re.compile(rb"(\x02\x00|\x08\x00)..[A-Z]{2}..", re.DOTALL)
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
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1")


class TooSlow(BaseException):
    """The time budget is spent (a BaseException, so libraries' ``except Exception`` pass it)."""


@contextmanager
def time_budget() -> Iterator[None]:
    """Run one decode under :data:`TIME_BUDGET_S`; refuse it, with its size, once spent."""
    token = _SIZE.set(None)
    try:
        with within(TIME_BUDGET_S):
            yield
    except TooSlow:
        size = _SIZE.get()
        if size is None:
            raise ImageError(
                "Reading this file took too long, so it was stopped; the file may be damaged. "
                + PLEASE
            ) from None
        raise ImageError(
            f"The image ({size[0]:,} x {size[1]:,} pixels) took too long to open, so it was "
            "stopped. Please upload a smaller copy (about 3,000 pixels per side is plenty)."
        ) from None
    finally:
        _SIZE.reset(token)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block under a deadline ``seconds`` from now (or the current one, if sooner)."""
    token = _DEADLINE.set(min(_DEADLINE.get(), time.monotonic() + seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def tick() -> None:
    """Raise :class:`TooSlow` once the current deadline has passed."""
    if time.monotonic() > _DEADLINE.get():
        raise TooSlow


class DeadlineReader(io.BytesIO):
    """In-memory file whose reads (Pillow and pydicom call only ``read``) fail once the
    deadline has passed."""

    def read(self, size: int | None = -1) -> bytes:
        tick()
        return super().read(size)


def check_bytes(data: bytes) -> None:
    """Refuse an empty file or one over :data:`MAX_BYTES`."""
    if not data:
        raise ImageError("The file is empty (0 bytes). " + PLEASE)
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"The file is {len(data) / 1e6:,.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB."
        )


def check_dimensions(width: int, height: int) -> None:
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


def bomb_error(exc: BaseException) -> ImageError:
    """The refusal for Pillow's decompression-bomb error, with the size it names."""
    match = _BOMB_PIXELS.search(str(exc))
    if match:
        megapixels = int(match.group(1)) / 1e6
        return ImageError(
            f"The image has {_fmt_mp(megapixels)} megapixels; the limit is {MAX_MEGAPIXELS}."
        )
    return ImageError(f"The image is far too large; the limit is {MAX_MEGAPIXELS} megapixels.")


def _fmt_mp(megapixels: float) -> str:
    return f"{megapixels:,.0f}" if megapixels >= 100 else f"{megapixels:,.1f}"


def sniff(data: bytes, name: str) -> tuple[str, bool]:
    """(kind, forced: DICOM without the preamble) from the file's first bytes, or an
    :class:`ImageError` that names what it is; ``name`` is read only for a DICOM extension."""
    if data[128:132] == b"DICM":
        return "DICOM", False
    for kind, magics in _IMAGE_MAGIC.items():
        if data.startswith(magics):
            return kind, False
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP", False
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES:
        return "BMP", False
    other = _describe_other(data)
    if other is not None:
        raise _not_an_image(other)
    if name.endswith(_DICOM_SUFFIXES) or _RAW_DICOM.match(data):
        return "DICOM", True
    refuse_text(data)
    raise ImageError(f"This file is not an image this app can read. {PLEASE}")


def _not_an_image(what: str) -> ImageError:
    """The refusal for a file found to be ``what`` (e.g. "a PDF document")."""
    return ImageError(f"This file is {what}, not an image. {PLEASE}")


def refuse_text(data: bytes) -> None:
    """Refuse text-like content (SVG, HTML, XML, JSON, plain text), naming it."""
    text = _describe_text(data)
    if text is not None:
        raise _not_an_image(text) from None


def _describe_text(data: bytes) -> str | None:
    head = data[:4096]
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    text = head.decode(encoding, errors="replace")
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


def _describe_other(data: bytes) -> str | None:
    """Describe well-known non-image (or unsupported) types, or None."""
    if b"%PDF" in data[:1024]:
        return "a PDF document"
    for magic, what in _OTHER_MAGIC:
        if data.startswith(magic):
            return what
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            return "a HEIC/HEIF photo, which is not supported (export it as JPEG or PNG)"
        if brand in (b"avif", b"avis"):
            return "an AVIF image, which is not supported (export it as JPEG or PNG)"
        return "a video file"
    if data.startswith(b"RIFF"):  # WebP is sniffed before
        return "an audio or video file"
    return None

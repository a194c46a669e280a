"""What a file is, from its content (never its name): an image format, DICOM, or a refusal.

Known non-image types (PDF, ZIP, Office, archives, programs, audio, video, HEIC,
JPEG 2000, text, HTML, SVG, ...) are named in the refusal so that the person who
sent the file knows what went wrong.
"""

from __future__ import annotations

from typing import NamedTuple

from cxrlib.core.errors import ImageError
from cxrlib.io.limits import PLEASE

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)
# BITMAPINFOHEADER sizes that may follow the 14-byte "BM" file header.
_BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

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


class Sniffed(NamedTuple):
    """What the content says a file is.

    Attributes:
        kind: ``"PNG"``, ``"JPEG"``, ``"GIF"``, ``"TIFF"``, ``"WebP"``, ``"BMP"`` or
            ``"DICOM"``.
        forced: DICOM without the standard preamble (read with ``force=True``).
    """

    kind: str
    forced: bool = False


def sniff(data: bytes, name: str) -> Sniffed:
    """The file's type from its first bytes, or an :class:`ImageError` that names it.

    Args:
        data: The file's bytes (not empty).
        name: The lower-case file name; only a DICOM extension is read from it, for
            DICOM files without the standard preamble.
    """
    if data[128:132] == b"DICM":
        return Sniffed("DICOM")
    for magic, kind in _IMAGE_MAGIC:
        if data.startswith(magic):
            return Sniffed(kind)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return Sniffed("WebP")
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES:
        return Sniffed("BMP")
    other = _sniff_other(data)
    if other is not None:
        raise not_an_image(other)
    if name.endswith(_DICOM_SUFFIXES) or _looks_like_raw_dicom(data):
        return Sniffed("DICOM", forced=True)
    text = describe_text(data)
    if text is not None:
        raise not_an_image(text)
    raise ImageError(f"This file is not an image this app can read. {PLEASE}")


def not_an_image(what: str) -> ImageError:
    """The refusal for a file found to be ``what`` (e.g. "a PDF document")."""
    return ImageError(f"This file is {what}, not an image. {PLEASE}")


def describe_text(data: bytes) -> str | None:
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


def _looks_like_raw_dicom(data: bytes) -> bool:
    """DICOM without the 128-byte preamble: group 0002/0008 tag then an explicit VR."""
    return (
        len(data) >= 8
        and data[:2] in (b"\x02\x00", b"\x08\x00")
        and data[4:6].isalpha()
        and data[4:6].isupper()
    )

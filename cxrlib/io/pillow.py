"""Raster formats through Pillow: PNG, JPEG (EXIF orientation applied), BMP, TIFF, GIF, WebP.

Only the plugins in :data:`PIL_FORMATS` may open an upload, only the first frame is decoded,
and truncated files are refused (``LOAD_TRUNCATED_IMAGES`` is left False).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from PIL import Image, ImageChops, ImageOps

from cxrlib.core.errors import ImageError
from cxrlib.io import limits
from cxrlib.io.decoded import BLANK, DecodedImage, colourfulness, fmt_value, is_blank, stretch

# Pillow plugins allowed to open uploads (MPO is opened through JPEG), and names shown.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_FORMAT_NAMES = {"MPO": "JPEG", "WEBP": "WebP"}
_OPEN_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError)


def decode_pillow(data: bytes, kind: str) -> DecodedImage:
    """Decode a raster image's first frame to grayscale (``kind``: sniffed, for refusals)."""
    notices: list[str] = []
    with _open(data, kind) as im:
        fmt = _FORMAT_NAMES.get(str(im.format), str(im.format))
        _load_first_frame(im, fmt)
        pixels, meta = _to_gray(_upright(im, notices), notices)
        meta["mode"] = str(im.mode)
        meta["frames"] = _note_frames(im, fmt, notices)
    return DecodedImage(pixels=pixels, format=fmt, notices=notices, meta=meta)


def _to_gray(im: Image.Image, notices: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Any Pillow mode as 8-bit grayscale; returns (pixels, meta)."""
    mode = im.mode
    meta: dict[str, Any] = {"colourfulness": 0.0}
    limits.tick()
    if mode.startswith("I;16") or mode in ("I", "F"):
        pixels = _wide_to_gray(im, meta, notices)
    else:
        meta["bit_depth"] = 1 if mode == "1" else 8
        if mode in ("L", "1"):
            gray = im.convert("L") if mode == "1" else im
        else:
            gray, meta["colourfulness"] = _colour_to_gray(im, notices)
        pixels = np.array(gray, dtype=np.uint8)
    if is_blank(pixels):
        notices.append(BLANK)
    return pixels, meta


def _open(data: bytes, kind: str) -> Image.Image:
    """Open (not decode) the image with the allowed plugins, or refuse it."""
    try:
        return Image.open(limits.DeadlineReader(data), formats=list(PIL_FORMATS))
    except Image.DecompressionBombError as exc:
        raise limits.bomb_error(exc) from None
    except _OPEN_ERRORS as exc:  # UnidentifiedImageError is an OSError
        limits.refuse_text(data)
        raise _pillow_failure(exc, kind) from exc


def _load_first_frame(im: Image.Image, fmt: str) -> None:
    """Check the header's size, then decode the first frame (and check its size again)."""
    limits.check_dimensions(*im.size)
    try:
        if im.tell() != 0:
            im.seek(0)
        im.load()
    except Image.DecompressionBombError as exc:
        raise limits.bomb_error(exc) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _pillow_failure(exc, fmt) from exc
    limits.check_dimensions(*im.size)
    limits.tick()


def _upright(im: Image.Image, notices: list[str]) -> Image.Image:
    """The image turned as its EXIF orientation tag says (as stored when it cannot be)."""
    try:
        orientation = im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the image
        return im
    if orientation not in range(2, 9):  # 1 is upright already
        return im
    try:
        frame = ImageOps.exif_transpose(im)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001
        notices.append("The photo's orientation tag could not be applied")
        return im
    notices.append("Rotated upright using the photo's orientation tag (EXIF)")
    return frame


def _note_frames(im: Image.Image, fmt: str, notices: list[str]) -> int:
    """The number of frames, counted from their headers under a short budget of their own;
    a notice says only the first is shown."""
    try:
        with limits.within(limits.FRAME_COUNT_S):
            frames: int | None = int(getattr(im, "n_frames", 1))
    except (limits.TooSlow, Exception):  # a damaged later frame must not spoil the first
        frames = None
    if frames is not None and frames > 1:
        if fmt == "TIFF":
            notices.append(f"Multi-page TIFF: showing the first of {frames:,} pages")
        elif fmt == "JPEG":
            notices.append(f"This JPEG holds {frames:,} pictures: showing the first")
        else:
            notices.append(f"Animated {fmt}: showing the first of {frames:,} frames")
        return frames
    if frames is None and fmt in ("GIF", "TIFF", "WebP"):
        notices.append(f"Showing the first frame only (the rest of this {fmt} could not be read)")
    return 1


def _pillow_failure(exc: BaseException, kind: str) -> ImageError:
    msg = str(exc).lower()
    if isinstance(exc, EOFError) or any(
        s in msg for s in ("truncated", "broken data stream", "premature end", "end of file")
    ):
        return ImageError(
            f"The {kind} file is incomplete (it was cut short); please upload it again."
        )
    return ImageError(f"The {kind} file is damaged and could not be read. {limits.PLEASE}")


def _wide_to_gray(im: Image.Image, meta: dict[str, Any], notices: list[str]) -> np.ndarray:
    """16-bit, 32-bit and floating-point modes, stretched from their used range."""
    mode = im.mode
    arr = np.asarray(im)
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # native byte order
    bits = 16 if mode.startswith("I;16") else 32
    meta["bit_depth"] = bits
    pixels, lo, hi, nonfinite = stretch(arr)
    what = "Floating-point" if mode == "F" else f"{bits}-bit"
    if hi > lo:
        notices.append(
            f"{what} image rescaled to 8 bits "
            f"(values {fmt_value(lo)} to {fmt_value(hi)} shown black to white)"
        )
    if nonfinite:
        notices.append("Some pixels had no valid value (NaN or infinity)")
    return pixels


def _colour_to_gray(im: Image.Image, notices: list[str]) -> tuple[Image.Image, float]:
    """Any colour or palette mode to gray (in C by Pillow), alpha composited on black; and
    its colourfulness."""
    mode = im.mode
    alpha = None
    if "A" in mode or "a" in mode or "transparency" in im.info:
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
    limits.tick()
    colour = colourfulness(rgb, notices, alpha)
    gray = rgb.convert("L")
    del rgb
    if alpha is not None:
        gray = ImageChops.multiply(gray, alpha)
    return gray, colour

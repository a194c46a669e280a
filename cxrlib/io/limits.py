"""What an upload may be: its byte size, pixel size and shape, and the messages that refuse it.

Sizes are checked from the header before any pixel is decoded, so a decompression
bomb is refused without allocating its pixels. The last size checked is kept for
the call (a context variable) so that a decode stopped for taking too long can say
how big the image was.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from contextlib import contextmanager

from cxrlib.core.errors import ImageError

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

SUPPORTED = "PNG, JPEG, TIFF, BMP, GIF, WebP or DICOM"
"""The formats an upload may be in, as a message names them."""
PLEASE = f"Please upload a chest X-ray as {SUPPORTED}."
"""The sentence that ends most refusals."""

_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")
_SIZE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("size", default=None)


@contextmanager
def tracking_size() -> Iterator[None]:
    """Forget any size checked before the block; :func:`checked_size` reads it inside."""
    token = _SIZE.set(None)
    try:
        yield
    finally:
        _SIZE.reset(token)


def checked_size() -> tuple[int, int] | None:
    """(width, height) last accepted by :func:`check_dimensions`, or None."""
    return _SIZE.get()


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


def too_slow_message(size: tuple[int, int] | None) -> str:
    """The refusal for a decode stopped by the time budget (``size``: as far as known)."""
    if size is None:
        return (
            "Reading this file took too long, so it was stopped; the file may be damaged. " + PLEASE
        )
    width, height = size
    return (
        f"The image ({width:,} x {height:,} pixels) took too long to open, so it was "
        "stopped. Please upload a smaller copy (about 3,000 pixels per side is plenty)."
    )


def _fmt_mp(megapixels: float) -> str:
    return f"{megapixels:,.0f}" if megapixels >= 100 else f"{megapixels:,.1f}"

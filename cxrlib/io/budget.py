"""The time budget of one decode: a deadline checked at every read and between blocks.

A decoder call in C cannot be interrupted, so the clock is checked where Python
gets control back: at every read from the in-memory file (:class:`DeadlineReader`)
and between blocks of pixel processing (:func:`tick`). Once the deadline has passed
:class:`TooSlow` is raised; :func:`cxrlib.io.decode.decode_image` turns it into an
:class:`~cxrlib.core.errors.ImageError`. The deadline is a context variable, so
concurrent callers never share it.
"""

from __future__ import annotations

import contextvars
import io
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TIME_BUDGET_S = 1.5
"""Reading a file is abandoned after this many seconds."""
FRAME_COUNT_S = 0.25
"""Counting frames gives up (without failing) after this long."""

_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)


class TooSlow(BaseException):
    """Raised from inside a library's read() when the time budget is spent.

    A BaseException so that libraries' ``except Exception`` blocks do not
    swallow it.
    """


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
    """In-memory file whose reads fail once the time budget is spent."""

    def read(self, size: int | None = -1) -> bytes:
        tick()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        tick()
        return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        tick()
        return super().readinto(buffer)

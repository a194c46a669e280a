"""cxrlib.io.decode: the entry point's contract.

Only ImageError escapes, nothing touches the disk, a time budget holds, threads
get their own results.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from cxrlib.core.errors import ImageError
from cxrlib.io import limits
from cxrlib.io.decode import decode_image, read_image

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import (  # noqa: E402
    gradient,
    make_dicom,
    pil_bytes,
    refused,
)


def test_read_image_returns_the_pixels():
    src = gradient()
    np.testing.assert_array_equal(read_image(pil_bytes(Image.fromarray(src), "PNG")), src)


def test_messages_never_echo_the_file_name():
    for data in (b"%PDF-1.4", b"hello", pil_bytes(Image.new("L", (5, 5)), "PNG")):
        assert "Jane" not in refused(data, "Jane_Doe_chest.png")


def test_refuse_non_bytes():
    with pytest.raises(ImageError):
        decode_image("not bytes")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_only_image_error_escapes_even_with_warnings_as_errors():
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    # An invalid value for a UI element makes pydicom warn while reading.
    odd = make_dicom(src, SOPInstanceUID="not-a-uid!")
    cases = [odd, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, make_dicom(src)[:-300]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in cases:
            try:
                out = decode_image(data)
            except ImageError:
                continue
            assert out.pixels.ndim == 2 and out.pixels.dtype == np.uint8


def test_time_budget_aborts_slow_reads(monkeypatch):
    monkeypatch.setattr(limits, "TIME_BUDGET_S", -1.0)
    data = pil_bytes(Image.fromarray(gradient()), "PNG")
    assert "too long" in refused(data)


def test_nothing_is_written_to_disk(monkeypatch):
    import builtins
    import os
    import tempfile

    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    files = [
        pil_bytes(Image.fromarray(gradient()), "PNG"),
        pil_bytes(Image.fromarray(gradient()), "JPEG"),
        pil_bytes(Image.fromarray(src), "TIFF"),
        pil_bytes(Image.fromarray(gradient()), "GIF"),
        make_dicom(src, WindowCenter="2000", WindowWidth="4000"),
    ]
    expected = [decode_image(data).pixels for data in files]  # warm up lazy imports

    def forbidden(*args, **kwargs):
        raise AssertionError(f"file access during decoding: {args!r}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(io, "open", forbidden)
    monkeypatch.setattr(os, "open", forbidden)
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, forbidden)
    for data, pixels in zip(files, expected, strict=True):
        np.testing.assert_array_equal(decode_image(data).pixels, pixels)


def test_concurrent_callers_get_their_own_results():
    from concurrent.futures import ThreadPoolExecutor

    inputs = [
        (pil_bytes(Image.fromarray(gradient()), "PNG"), gradient()),
        (pil_bytes(Image.fromarray(255 - gradient()), "PNG"), 255 - gradient()),
        (b"%PDF-1.4", None),
    ] * 8

    def run(case):
        data, want = case
        try:
            got = decode_image(data).pixels
        except ImageError:
            return want is None
        return want is not None and np.array_equal(got, want)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(run, inputs))

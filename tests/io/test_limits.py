"""cxrlib.io.limits: empty, tiny, thin, huge and bomb files are refused from their headers; a
file's type is read from its content, and non-images are named.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import io
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from cxrlib.io.decode import decode_image
from cxrlib.io.limits import MAX_BYTES, MIN_SIDE

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import (  # noqa: E402
    pil_bytes,
    png_header_only,
    refused,
)


def test_refuse_empty():
    assert "empty" in refused(b"", "x.png")


def test_refuse_1x1():
    msg = refused(pil_bytes(Image.new("L", (1, 1)), "PNG"))
    assert msg.startswith(
        "The image is 1 x 1 pixels; a chest X-ray needs at least 128 pixels per side"
    )


def test_refuse_just_too_small():
    assert f"at least {MIN_SIDE}" in refused(pil_bytes(Image.new("L", (300, 127)), "PNG"))
    decode_image(pil_bytes(Image.new("L", (300, 128)), "PNG"))  # the limit itself is fine


def test_refuse_extreme_aspect():
    msg = refused(pil_bytes(Image.new("L", (20000, 10)), "PNG"))
    assert "20,000 x 10" in msg and "long and thin" in msg


def test_refuse_png_bomb_header_fast_and_small():
    data = png_header_only(60000, 60000)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        msg = refused(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert msg.startswith("The image has 3,600 megapixels; the limit is 50")
    assert peak < 20 * 1024 * 1024  # never allocated the 3.6 GB image
    print(f"60000 x 60000 PNG refused in {elapsed * 1000:.1f} ms, peak {peak / 1e6:.2f} MB")


def test_refuse_just_over_the_megapixel_limit():
    # 8,000 x 6,500 = 52 MP: under Pillow's own bomb limit, over ours.
    msg = refused(png_header_only(8000, 6500))
    assert "52.0 megapixels" in msg


def test_refuse_pillow_bomb_warning_range_even_with_warnings_as_errors():
    # 100 MP: Pillow warns (DecompressionBombWarning) rather than raising.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = refused(png_header_only(10000, 10000))
    assert msg.startswith("The image has 100 megapixels; the limit is 50")


def test_refuse_too_many_bytes():
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES)
    assert "MB; the limit is" in refused(data)


def test_refuse_pdf_named_png():
    assert "PDF" in refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "cxr.png")


def test_refuse_zip():
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("image.png", pil_bytes(Image.new("L", (200, 200)), "PNG"))
    assert "ZIP" in refused(buf.getvalue(), "images.zip")


def test_refuse_svg_html_xml_text():
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="512"></svg>'
    assert "SVG" in refused(svg, "x.svg")
    assert "SVG" in refused(b'<svg width="300" height="300"><rect/></svg>', "x.png")
    assert "HTML" in refused(b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "x.jpg")
    assert "XML" in refused(b'<?xml version="1.0"?><report><p>x</p></report>')
    assert "text" in refused(b"Patient has a cough.\nChest clear.\n" * 10, "note.png")
    # A text file that happens to start like a bitmap header.
    assert "text" in refused(b"BMI report: 24.1, normal range.\n", "x.bmp")


def test_refuse_random_bytes():
    data = np.random.default_rng(7).bytes(20_000)
    assert "not an image" in refused(data, "x.png")

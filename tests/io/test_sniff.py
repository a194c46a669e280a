"""cxrlib.io.limits.sniff: a file's type is read from its content, and non-images are named.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import (  # noqa: E402
    pil_bytes,
    refused,
)


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

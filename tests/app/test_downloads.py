"""cxrlib.app.downloads: the overlay PNG and the PDF report, in memory."""

from __future__ import annotations

from app_helpers import png_of

from cxrlib.app.downloads import report_bytes, report_warnings
from cxrlib.app.resources import get_resources
from cxrlib.core.cache import LRUCache
from cxrlib.describe.report import overlay_png
from cxrlib.infer.pipeline import GateVerdict, decode, diagnose_image


def test_report_bytes_from_a_diagnosis(app_env):
    from cxrlib.infer.overlay import overlay

    res = get_resources()
    cache = LRUCache()
    decoded = decode(png_of("covid_cxnet_265.jpg"))
    d = diagnose_image(res, decoded, "gradcam", cache=cache)
    over = overlay(decoded.pixels, d.heatmap, 0.5, "jet")
    pdf = report_bytes(res, decoded, d, over, "gradcam", {"opacity": "0.50"})
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    png = overlay_png(over)
    assert png.startswith(b"\x89PNG")


def test_report_warnings_name_a_rejection():
    decoded = decode(png_of("covid_cxnet_265.jpg"))
    assert report_warnings(decoded, None) == []
    assert report_warnings(decoded, GateVerdict(True, 0.3, "")) == []
    (line,) = report_warnings(decoded, GateVerdict(False, 3.0, "a photograph"))
    assert line == "Analysed although the input check rejected the image (a photograph)."

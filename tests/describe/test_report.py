"""cxrlib.describe.report: a PDF in memory with the analysis, the disclaimer and no patient data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pdf_text import pdf_plaintext
from PIL import Image

from cxrlib.describe.report import ReportData, build_report, overlay_png, pdf_text


def _data(**kw) -> ReportData:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (300, 260), dtype=np.uint8)
    base = dict(
        image=gray,
        overlay=np.stack([gray, gray // 2, gray], axis=-1),
        class_names=["covid", "normal", "pneumonia"],
        probabilities=[0.12, 0.08, 0.80],
        ranges=np.array([[0.1, 0.2], [0.05, 0.1], [0.7, 0.85]]),
        predicted="pneumonia",
        method="Grad-CAM",
        explained_class="pneumonia",
        settings={"opacity": "0.45", "colour map": "jet"},
        model_version="cxr_classifier · mobilenetv2 · 160 px",
        weights_sha256="ab" * 32,
        image_sha256="0123456789abcdef" * 4,
        lung_focus_text="84% of the heatmap lies inside the lungs (which cover 35% of the image).",
        gate_text="Looks like a frontal chest X-ray (score 0.93).",
        probability_note="Calibrated probabilities: the model's outputs averaged over 9 views.",
        track_record=["On the internal test split, 93% of its 'pneumonia' answers were right."],
        created=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
    )
    base.update(kw)
    return ReportData(**base)


def test_report_is_a_pdf_with_the_analysis():
    pdf = build_report(_data())
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = pdf_plaintext(pdf)
    for needed in (
        "RESEARCH DEMO, NOT FOR DIAGNOSIS",
        "not a medical device",
        "2026-11-26 09:30 UTC",
        "80.0%",
        "70.0% - 85.0%",
        "(predicted)",
        "Grad-CAM",
        "84% of the heatmap lies inside the lungs",
        "outputs averaged over 9 views",
        "Track record",
        "93% of its 'pneumonia' answers were right",
        "ab" * 32,
        "0123456789abcdef",
        "opacity: 0.45",
        "cxr_classifier - mobilenetv2 - 160 px",
    ):
        assert needed in text, needed
    assert text.count("/Subtype /Image") >= 2


def test_report_handles_any_text_and_missing_ranges():
    pdf = build_report(
        _data(
            ranges=None,
            warnings=["Analysed although rejected — “quoted” ≥ 50% ✓"],
            notices=["MONOCHROME1 image inverted so that bone appears white"],
        )
    )
    text = pdf_plaintext(pdf)
    assert 'Analysed although rejected - "quoted" >= 50%' in text
    assert "MONOCHROME1 image inverted" in text


def test_pdf_text_is_latin1():
    s = pdf_text("a – b ≥ c ✓ é")
    s.encode("latin-1")
    assert s.startswith("a - b >= c") and "é" in s


def test_overlay_png_round_trips():
    rgb = np.random.default_rng(1).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    import io

    back = np.asarray(Image.open(io.BytesIO(overlay_png(rgb))))
    np.testing.assert_array_equal(back, rgb)


def test_report_with_every_method_compared():
    rng = np.random.default_rng(1)
    strip = [
        (f"Method {i} · {60 + i}% in the lungs", rng.integers(0, 255, (120, 100, 3), np.uint8))
        for i in range(5)
    ]
    plain = pdf_plaintext(build_report(_data()))
    text = pdf_plaintext(
        build_report(_data(comparison=strip, comparison_text="They overlap by **55%**."))
    )
    assert "All methods compared (class 'pneumonia')" in text
    assert "Method 4 - 64% in the lungs" in text and "They overlap by 55%." in text
    # Five more images than the report without a comparison.
    assert text.count("/Subtype /Image") == plain.count("/Subtype /Image") + 5
    assert "All methods compared" not in plain

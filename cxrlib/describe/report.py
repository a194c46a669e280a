"""A one-page PDF report of one analysed image, built in memory with fpdf2: no patient fields
and no file name (which can hold a patient's name), the image named by its SHA-256."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from fpdf import FPDF
from PIL import Image

from cxrlib.core.formatting import pct

DISCLAIMER = (
    "Research demo, not for diagnosis. CXR Lens is a research and teaching tool, not a "
    "medical device. Its output has not been validated for clinical use and must not be "
    "used to make decisions about patients."
)

#: Characters Latin-1 lacks, as the PDF writes them.
_LATIN1 = str.maketrans(
    {
        **dict.fromkeys("\u2013\u2014\u2212\u00b7\u2022", "-"),
        **dict.fromkeys("\u2018\u2019", "'"),
        **dict.fromkeys("\u201c\u201d", '"'),
        "\u2265": ">=",
        "\u2264": "<=",
        "\u2026": "...",
        "\u00d7": "x",
    }
)


def pdf_text(text: object) -> str:
    """Text the PDF's core fonts can print (Latin-1; other characters replaced)."""
    s = unicodedata.normalize("NFKC", str(text).translate(_LATIN1))
    return s.encode("latin-1", errors="replace").decode("latin-1")


@dataclass
class ReportData:
    """What goes into a report: the uint8 image and its RGB overlay, the sentences the page
    shows ("" or empty for none), every method's ``(caption, overlay)`` when compared."""

    image: np.ndarray
    overlay: np.ndarray
    class_names: Sequence[str]
    probabilities: Sequence[float]
    predicted: str
    method: str
    explained_class: str
    model_version: str
    weights_sha256: str
    image_sha256: str
    ranges: np.ndarray | None = None
    settings: dict[str, object] = field(default_factory=dict)
    lung_focus_text: str = ""
    probability_note: str = ""
    track_record: list[str] = field(default_factory=list)
    gate_text: str = ""
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    comparison: list[tuple[str, np.ndarray]] = field(default_factory=list)
    comparison_text: str = ""
    created: datetime | None = None


def _png(array: np.ndarray, max_side: int = 900) -> Image.Image:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    img = Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # never enlarges
    return img


class _Report(FPDF):
    def footer(self) -> None:  # on every page
        self.set_y(-14)
        self.set_font("Helvetica", "I", 7.5)
        self.set_text_color(110, 110, 110)
        self.multi_cell(0, 3.5, pdf_text(DISCLAIMER), align="C")


def _line(pdf: FPDF, height: float, text: str) -> None:
    """One line of text the page wide."""
    pdf.cell(0, height, pdf_text(text), new_x="LMARGIN", new_y="NEXT")


def _images(pdf: FPDF, data: ReportData, width: float) -> None:
    """The image as analysed and its overlay, side by side."""
    gap = 6
    img_w = (width - gap) / 2
    pictures = [_png(data.image), _png(data.overlay)]
    img_h = min(max(img_w * im.height / im.width for im in pictures), 95)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(img_w, 5, "Image (as analysed)")
    pdf.set_x(pdf.l_margin + img_w + gap)
    pdf.cell(img_w, 5, pdf_text(f"{data.method} for '{data.explained_class}'"))
    pdf.ln(6)
    top = pdf.get_y()
    for x, im in zip((pdf.l_margin, pdf.l_margin + img_w + gap), pictures):
        pdf.image(im, x=x, y=top, w=img_w, h=img_h, keep_aspect_ratio=True)
    pdf.set_y(top + img_h + 4)


def _probabilities(pdf: FPDF, data: ReportData) -> None:
    """Each class, its probability and its test-time range."""
    pdf.set_font("Helvetica", "B", 11)
    _line(pdf, 6, "Model output (calibrated probabilities)")
    pdf.set_font("Helvetica", "", 9)
    col = [45, 35, 70]
    pdf.set_fill_color(235, 241, 245)
    for text, w in zip(("class", "probability", "range over test-time views"), col):
        pdf.cell(w, 6, text, border=1, fill=True)
    pdf.ln()
    probs = np.asarray(data.probabilities, dtype=float)
    ranges = None if data.ranges is None else np.asarray(data.ranges, dtype=float)
    for i, name in enumerate(data.class_names):
        bold = name == data.predicted
        pdf.set_font("Helvetica", "B" if bold else "", 9)
        pdf.cell(col[0], 6, pdf_text(name + ("  (predicted)" if bold else "")), border=1)
        pdf.cell(col[1], 6, pct(probs[i], 1), border=1)
        rng = "-" if ranges is None else f"{pct(ranges[i, 0], 1)} - {pct(ranges[i, 1], 1)}"
        pdf.cell(col[2], 6, pdf_text(rng), border=1)
        pdf.ln()
    pdf.ln(2)


def _labelled_lines(data: ReportData) -> list[tuple[str, str]]:
    """The report's (label, text) lines, in order; empty sentences left out."""
    lines = [
        ("Probabilities", data.probability_note),
        *(("Track record", line) for line in data.track_record),
        ("Input check", data.gate_text),
        ("Lung focus", data.lung_focus_text),
        *(("Warning", warning) for warning in data.warnings),
        ("Explanation", f"{data.method} for class '{data.explained_class}'"),
        ("Display", ", ".join(f"{k}: {v}" for k, v in data.settings.items())),
        ("Image notes", "; ".join(data.notices)),
    ]
    return [(label, text) for label, text in lines if text] + [
        ("Model", data.model_version),
        ("Weights SHA-256", data.weights_sha256 or "unknown"),
    ]


def build_report(data: ReportData) -> bytes:
    """The PDF of ``data``."""
    created = data.created or datetime.now(UTC)
    pdf = _Report(orientation="P", unit="mm", format="A4")
    pdf.set_creator("CXR Lens")
    pdf.set_title("CXR Lens research report")
    pdf.set_creation_date(created)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(15, 14, 15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    # The header: title, banner, date and the image's hash.
    pdf.set_font("Helvetica", "B", 16)
    pdf.set_text_color(27, 42, 53)
    _line(pdf, 8, "CXR Lens - research report")
    pdf.set_fill_color(253, 236, 200)
    pdf.set_text_color(120, 60, 0)
    pdf.set_font("Helvetica", "B", 10)
    banner = "RESEARCH DEMO, NOT FOR DIAGNOSIS"
    pdf.multi_cell(0, 6, banner, fill=True, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_text_color(27, 42, 53)
    pdf.set_font("Helvetica", "", 9)
    _line(pdf, 5, f"Date: {created.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    _line(pdf, 5, f"Image SHA-256 (first 16): {data.image_sha256[:16]}")
    pdf.ln(2)
    _images(pdf, data, width)
    _probabilities(pdf, data)
    for label, text in _labelled_lines(data):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(32, 5, pdf_text(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(width - 32, 5, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    if data.comparison:
        _comparison(pdf, data, width)
    return bytes(pdf.output())


def _comparison(pdf: FPDF, data: ReportData, width: float) -> None:
    """Every method's overlay in a row, captioned, then the agreement sentence."""
    n, gap = len(data.comparison), 3.0
    size = (width - gap * (n - 1)) / n
    if pdf.get_y() + size + 30 > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, pdf_text(f"All methods compared (class '{data.explained_class}')"))
    pdf.ln(7)
    top = pdf.get_y()
    for i, (caption, rgb) in enumerate(data.comparison):
        x = pdf.l_margin + i * (size + gap)
        pdf.image(_png(rgb, 400), x=x, y=top, w=size, h=size, keep_aspect_ratio=True)
        pdf.set_xy(x, top + size + 1)
        pdf.set_font("Helvetica", "", 7)
        pdf.multi_cell(size, 3.2, pdf_text(caption), align="C")
    pdf.set_xy(pdf.l_margin, top + size + 9)
    if data.comparison_text:
        pdf.set_font("Helvetica", "", 8.5)
        text = data.comparison_text.replace("**", "")
        pdf.multi_cell(width, 4.5, pdf_text(text), new_x="LMARGIN", new_y="NEXT")


def overlay_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB (or grayscale) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()

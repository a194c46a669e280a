"""A PDF's text for assertions (the report tests and the browser test)."""

from __future__ import annotations

import re
import zlib


def pdf_plaintext(pdf: bytes) -> str:
    """Every stream of the PDF, inflated where compressed, plus the raw bytes, as text."""
    parts = [pdf.decode("latin-1")]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        body = m.group(1)
        try:
            parts.append(zlib.decompress(body).decode("latin-1"))
        except zlib.error:
            parts.append(body.decode("latin-1"))
    text = "\n".join(parts)
    # Undo PDF string escapes: \( \) \\.
    return text.replace("\\(", "(").replace("\\)", ")").replace("\\\\", "\\")

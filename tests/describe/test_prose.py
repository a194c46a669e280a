"""cxrlib.describe.prose: the fixed prose, read from cxrlib/describe/text/*.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrlib.describe import prose

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "cxrlib" / "describe" / "text"
CODE = [*(ROOT / "cxrlib").rglob("*.py"), *(ROOT / "pages").glob("*.py")]


def test_every_text_file_is_used_and_every_name_used_exists():
    used = set()
    for path in CODE:
        used |= set(re.findall(r'prose\("(\w+)"\)', path.read_text()))
    used |= {"caveats", "sources"}  # read by caveats() and markdown_rows("sources")
    used |= {"loso", "loso_full"}  # read as prose(key) of the two leave-one-source-out sections
    files = {p.stem for p in TEXT.glob("*.md")}
    assert used <= files, used - files
    assert files <= used, files - used


def test_caveats_each_name_a_metrics_tab_as_evidence():
    caveats = prose.caveats()
    assert len(caveats) == 3
    for c in caveats:
        assert c.title and c.body and c.tab in prose.METRICS_TABS
        assert "Evidence" not in c.body and "##" not in c.body


def test_a_caveat_without_a_known_tab_is_an_error(monkeypatch):
    monkeypatch.setattr(prose, "prose", lambda name: "## A\n\nText.\n\nEvidence: Nowhere")
    with pytest.raises(ValueError, match="names no Metrics tab"):
        prose.caveats()


def test_the_sources_table_lists_the_seven_sources():
    rows = prose.markdown_rows("sources")
    assert [r["source"] for r in rows] == [
        "ieee8023",
        "figure1",
        "cxnet",
        "radiography",
        "kermany",
        "nih",
        "quex",
    ]
    assert all(r["what it is"] and r["stored as"] and r["licence"] for r in rows)
    quex = rows[-1]
    assert "256 x 256" in quex["stored as"] and "lung opacity" in quex["what it is"]


def test_a_link_may_name_a_metrics_tab_in_lower_case_or_with_dashes():
    assert prose.metrics_tab("calibration") == "Calibration"
    assert prose.metrics_tab("shortcut-audit") == "Shortcut audit"
    assert prose.metrics_tab("Outside+data") == "Outside data"
    assert prose.metrics_tab("by_source") == "By source"
    assert prose.metrics_tab("nowhere") is None

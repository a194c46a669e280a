"""cxrlib.app.batch: what the Batch page computes (counting, scoring, sorting rows)."""

from __future__ import annotations

import io
import zipfile

from app_helpers import SAMPLES, png_of

from cxrlib.app import batch
from cxrlib.app.resources import get_resources
from cxrlib.core.timings import COUNTERS


def test_signature_follows_the_files_and_the_focus_option():
    a = batch.signature(["id1", "id2"])
    assert a == batch.signature(iter(["id1", "id2"]))
    assert a != batch.signature(["id2", "id1"]) and len(a) == 64
    assert batch.signature(["id1", "id2"], with_focus=True) == a + "+focus"


def test_count_items_counts_zip_members():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", b"x")
        zf.writestr("scans/IM0001", b"x")  # DICOM exports often have no extension
        zf.writestr("__MACOSX/._a.png", b"x")
        zf.writestr("notes.txt", b"x")
    items = [("archive.zip", buf.getvalue()), ("b.png", b"y"), ("broken.zip", b"PK\x03\x04no")]
    assert batch.count_items(items) == 2 + 1 + 1
    assert batch.count_items([]) == 1


def test_score_uploads_scores_and_lists(app_env):
    res = get_resources()
    items = [
        ("a.png", png_of("covid_cxnet_265.jpg")),
        ("b.png", b"not an image"),
        ("c.jpg", (SAMPLES / "normal_kermany_tr_IM-0675-0001.jpg").read_bytes()),
    ]
    seen = []
    focus = res.segmenter is not None
    counted = COUNTERS["heatmaps"]
    rows, csv_text = batch.score_uploads(res, items, focus, lambda i, name: seen.append(name))
    assert [r["file"] for r in rows] == ["a.png", "b.png", "c.jpg"] and len(seen) == 3
    assert csv_text.splitlines()[0].startswith("file,") and len(csv_text.splitlines()) == 4
    good, bad, rejected = batch.split_rows(rows)
    assert [r["file"] for r in good] == ["a.png", "c.jpg"] and [r["file"] for r in bad] == ["b.png"]
    assert all(r.get("is_cxr") is False for r in rejected)
    if focus:
        assert COUNTERS["heatmaps"] == counted + 2
        assert all(r["lung_focus"] is not None for r in good)

"""cxrlib.predict: batch scoring of files, folders, zips and manifests, and its CSV."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cxrlib.infer.classifier import load_classifier
from cxrlib.infer.explain import Explainer
from cxrlib.infer.pipeline import Models
from cxrlib.io.decode import decode_image
from cxrlib.predict.cli import main
from cxrlib.predict.inputs import expand_items, is_image_name, list_inputs
from cxrlib.predict.rows import rows_to_csv, score_items


def _png(value: int = 90, size: tuple[int, int] = (200, 160)) -> bytes:
    rng = np.random.default_rng(value)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size[::-1], dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clf(tiny_model_path):
    return load_classifier(tiny_model_path)


@pytest.fixture(scope="module")
def explainer(clf):
    return Explainer(clf)


class FixedMask:
    def __init__(self, empty: bool) -> None:
        self.empty = empty

    def segment(self, gray):
        m = np.zeros(gray.shape, bool)
        if not self.empty:
            m[: gray.shape[0] // 2] = True
        return m


def test_zip_members_are_expanded_and_bad_ones_listed(clf, explainer):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", _png(1))
        zf.writestr("b.png", b"%PDF-1.4 not an image")
        zf.writestr("notes.txt", "skipped: not an image name")
    items = [("scans.zip", buf.getvalue()), ("c.png", _png(2))]
    assert [n for n, _ in expand_items(items)] == ["scans.zip/a.png", "scans.zip/b.png", "c.png"]
    rows = score_items(items, Models(clf, explainer))
    assert [bool(r.error) for r in rows] == [False, True, False]
    assert "PDF" in rows[1].error
    for r in (rows[0], rows[2]):
        assert r.predicted in clf.class_names
        assert sum(r.probabilities.values()) == pytest.approx(1, abs=1e-4)
    table = list(csv.DictReader(io.StringIO(rows_to_csv(rows, clf.class_names))))
    assert [t["file"] for t in table] == ["scans.zip/a.png", "scans.zip/b.png", "c.png"]
    assert table[1]["predicted"] == "" and table[1]["error"]


@pytest.mark.parametrize(
    ("name", "scored"),
    [
        ("a.png", True),
        ("scan.WEBP", True),
        ("DICOM/PT0/ST0/IM000001", True),  # PACS exports: no extension
        ("series\\x.dcm", True),
        ("notes.txt", False),
        (".DS_Store", False),
        ("__MACOSX/._a.png", False),
        (".git/objects/ab", False),
        ("dir/", False),
    ],
)
def test_is_image_name(name, scored):
    assert is_image_name(name) is scored


def test_folder_and_zip_scans_take_the_same_files(tmp_path):
    names = ["a.png", "IM000001", "b.webp", "readme.txt", ".DS_Store", ".hidden/c.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    from_folder = sorted(r.name.rsplit("/", 1)[-1] for r in list_inputs([str(tmp_path)]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, b"x")
    from_zip = sorted(n.rsplit("/", 1)[-1] for n, _ in expand_items([("s.zip", buf.getvalue())]))
    assert from_folder == from_zip == ["IM000001", "a.png", "b.webp"]


def test_a_dicom_header_naming_a_lateral_view_is_flagged(clf, explainer):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rows = []
    for view in ("PA", "LL"):
        ds = Dataset()
        ds.file_meta = meta
        ds.Modality, ds.ViewPosition = "DX", view
        ds.set_pixel_data(
            np.random.default_rng(4).integers(0, 4000, (200, 160), np.uint16), "MONOCHROME2", 12
        )
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        rows += score_items([(f"{view}.dcm", buf.getvalue())], Models(clf, explainer))
    assert rows[0].predicted and not any("lateral" in f for f in rows[0].flags)
    assert rows[1].predicted and any("lateral view (View Position LL)" in f for f in rows[1].flags)


def test_lung_focus_is_none_without_lungs_and_a_share_with_them(clf, explainer):
    items = [("a.png", _png(4))]
    empty = score_items(items, Models(clf, explainer, FixedMask(empty=True)), focus=True)[0]
    assert empty.predicted and empty.lung_focus is None
    share = score_items(items, Models(clf, explainer, FixedMask(empty=False)), focus=True)[0]
    assert 0.0 <= share.lung_focus <= 1.0
    assert score_items(items, Models(clf, explainer, FixedMask(empty=False)))[0].lung_focus is None


def test_lung_focus_is_of_the_predicted_class(clf, explainer):
    items = [("a.png", _png(4)), ("b.png", _png(5))]
    rows = score_items(items, Models(clf, explainer, FixedMask(empty=False)), focus=True)
    for (_, data), row in zip(items, rows, strict=True):
        gray = decode_image(data).pixels
        k = clf.class_names.index(row.predicted)
        explained = explainer.explain(gray, "gradcam", k)
        top = gray.shape[0] // 2
        want = float(explained[:top].sum() / explained.sum())
        assert row.lung_focus == pytest.approx(want, abs=1e-4)


def test_scoring_without_focus_needs_no_heatmap(clf, explainer, heatmap_calls):
    items = [("a.png", _png(4)), ("b.png", _png(200))]
    heatmap_calls["n"] = 0
    bare = score_items(items, Models(clf, None, None))  # no explainer at all
    assert heatmap_calls["n"] == 0
    full = score_items(items, Models(clf, explainer, FixedMask(empty=False)), focus=True)
    assert heatmap_calls["n"] == len(items)
    for b, f in zip(bare, full, strict=True):
        assert b.predicted == f.predicted and b.lung_focus is None
        assert b.probabilities == pytest.approx(f.probabilities, abs=1e-6)


def test_cli_scores_a_folder_to_csv(tiny_model_path, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(_png(3))
    (tmp_path / "in" / "y.png").write_bytes(b"")
    out = tmp_path / "out.csv"
    assert (
        main(
            [str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model_path), "--no-gate"]
        )
        == 0
    )
    table = list(csv.DictReader(out.open()))
    assert len(table) == 2
    by_name = {t["file"].rsplit("/", 1)[-1]: t for t in table}
    assert by_name["x.png"]["predicted"] and not by_name["x.png"]["error"]
    assert by_name["y.png"]["error"] and not by_name["y.png"]["predicted"]

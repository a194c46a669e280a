"""Privacy: an upload stays in memory and DICOM patient fields go nowhere.

A whole session (upload a DICOM that carries patient fields -> Diagnose ->
PDF report -> Batch -> CSV) runs through the real app (AppTest) while

* an audit hook (``sys.addaudithook``) records every file opened for writing,
  every directory made and every rename, anywhere on the file system, by
  Python code in this process, and
* the file listings of the working directory and of ``tempfile.gettempdir()``
  (pointed at a fresh folder for the test, so other programs' temporary files
  cannot interfere) are compared before and after.

Nothing may be written. Then the page text, the report and the CSV must not
contain the patient's name, ID, birth date, accession number or institution.
The same holds for a study with those fields in a PACS (a real Orthanc): the
watcher's log, the worklist, the page it opens and "Send to PACS".
The models are loaded before recording starts: loading weights is not part
of handling an upload.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import sys
import tempfile
import zlib
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from app_helpers import SAMPLES, new_app, texts
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from cxrlib.app.downloads import report_bytes
from cxrlib.app.resources import get_resources
from cxrlib.core.hashing import sha256_bytes
from cxrlib.describe.report import overlay_png
from cxrlib.infer.pipeline import decode, diagnose_image

PATIENT = {
    "PatientName": "Zyxwvut^Quorraline",
    "PatientID": "PID-88231907",
    "PatientBirthDate": "19470312",
    "AccessionNumber": "ACC55417732",
    "InstitutionName": "Saint Qwerty Infirmary",
}
FORBIDDEN = [
    "Zyxwvut",
    "Quorraline",
    "PID-88231907",
    "88231907",
    "19470312",
    "1947-03-12",
    "ACC55417732",
    "55417732",
    "Qwerty",
]
IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", ".git"}

_RECORDING: list[tuple[str, str]] | None = None


def _audit(event: str, args: tuple) -> None:
    rec = _RECORDING
    if rec is None:
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if isinstance(path, int) or path is None:
            return
        path = os.fsdecode(path)
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int)
            and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
        )
        if (
            writes
            and not path.startswith(("/dev/", "/proc/", "/sys/"))
            and ("__pycache__" not in path)
        ):
            rec.append((event, path))
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.link", "os.symlink"):
        rec.append((event, os.fsdecode(args[0]) if args and not isinstance(args[0], int) else ""))
    elif event in ("tempfile.mkstemp", "tempfile.mkdtemp"):
        rec.append((event, os.fsdecode(args[0]) if args else ""))


sys.addaudithook(_audit)


def _listing(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and d != ".venv"]
        for name in filenames:
            out.add(os.path.join(dirpath, name))
        for name in dirnames:
            out.add(os.path.join(dirpath, name) + "/")
    return out


def dicom_with_patient_fields() -> bytes:
    """A real chest X-ray as DICOM, carrying made-up patient, study and institution fields."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    gray = np.asarray(Image.open(SAMPLES / "pneumonia_nih_00001200_000.jpg").convert("L"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.ReferringPhysicianName = "Zyxwvut^Doctor"
    ds.StudyDescription = "CHEST Quorraline"
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = gray.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = gray.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pdf_text(pdf: bytes) -> str:
    parts = [pdf.decode("latin-1")]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            parts.append(m.group(1).decode("latin-1"))
    return "\n".join(parts).replace("\\(", "(").replace("\\)", ")")


def _all_strings(at) -> str:
    """Every text the page shows, widget labels and values included."""
    parts = [texts(at)]
    for kind in ("text", "code", "json", "dataframe", "table", "metric"):
        try:
            parts.extend(str(e.value) for e in getattr(at, kind))
        except Exception:  # noqa: BLE001 - element kinds AppTest does not have
            pass
    for w in at.file_uploader:
        parts.extend(f.name for f in (w.value or []) if hasattr(f, "name"))
    return "\n".join(parts)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert tempfile.gettempdir() == str(tmp)
    return tmp


def test_the_fixture_dicom_really_carries_the_fields():
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_with_patient_fields()))
    assert str(ds.PatientName) == PATIENT["PatientName"]
    assert ds.InstitutionName == PATIENT["InstitutionName"]
    assert b"Zyxwvut" in dicom_with_patient_fields()


def test_audit_hook_sees_writes(private_tmp):
    """The recorder works: a write anywhere is caught (so the test below can fail)."""
    global _RECORDING
    _RECORDING = []
    try:
        (private_tmp / "probe.txt").write_text("x")
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"x")
    finally:
        seen, _RECORDING = _RECORDING, None
    paths = [p for _, p in seen]
    assert str(private_tmp / "probe.txt") in paths
    assert any(p.startswith(str(private_tmp)) and "probe" not in p for p in paths)


def test_upload_session_writes_no_file_and_leaks_no_patient_field(
    app_env,  # noqa: F811 - the imported fixture
    private_tmp,
    monkeypatch,
):
    global _RECORDING
    data = dicom_with_patient_fields()
    assert all(s.encode() in data for s in ("Zyxwvut", "PID-88231907", "Qwerty"))
    # Load the models first (not part of handling an upload).
    res = get_resources()
    assert res.classifier is not None
    warm = new_app().run()
    assert not warm.exception

    cwd = Path.cwd()
    before_cwd, before_tmp = _listing(cwd), _listing(private_tmp)
    _RECORDING = []
    try:
        at = new_app().run()
        at.file_uploader(key="diag_upload").set_value(
            ("upload.dcm", data, "application/dicom")
        ).run()
        assert not at.exception, [e.value for e in at.exception]
        page = _all_strings(at)
        assert "Most likely:" in page
        # Move a display control too (a full interactive session).
        at.slider(key="diag_opacity").set_value(0.7).run()
        page += _all_strings(at)

        # The report exactly as the page's download button builds it.
        from cxrlib.infer.overlay import overlay
        from pages import _ui

        cache = _ui.cache()
        sha = sha256_bytes(data)
        decoded = cache.get(("decoded", sha))
        assert decoded is not None and decoded.format == "DICOM"
        diagnosis = diagnose_image(res, decoded, "gradcam", cache=cache)
        over = overlay(decoded.pixels, diagnosis.heatmap, 0.7, "jet")
        pdf = report_bytes(res, decoded, diagnosis, over, "gradcam", {"opacity": "0.70"})
        png = overlay_png(over)

        at.switch_page("pages/batch.py").run()
        at.file_uploader(key="batch_upload").set_value(
            [("upload.dcm", data, "application/dicom")]
        ).run()
        at.button(key="batch_run").click().run()
        assert not at.exception, [e.value for e in at.exception]
        csv_text = at.session_state["batch_results"]["csv"]
        page += _all_strings(at)
    finally:
        written, _RECORDING = _RECORDING, None

    assert written == [], f"files written during the session: {written}"
    assert _listing(cwd) == before_cwd
    assert _listing(private_tmp) == before_tmp

    assert pdf.startswith(b"%PDF") and png.startswith(b"\x89PNG")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert rows[0]["file"] == "upload.dcm" and rows[0]["predicted"]
    pdf_text = _pdf_text(pdf)
    for secret in FORBIDDEN:
        assert secret not in page, f"{secret!r} shown on the page"
        assert secret not in pdf_text, f"{secret!r} in the PDF report"
        assert secret not in csv_text, f"{secret!r} in the CSV"
    assert "DICOM" in page  # the upload was really read as DICOM


def test_decoded_metadata_has_no_patient_field():
    d = decode(dicom_with_patient_fields(), "x.dcm")
    assert d.ok
    blob = repr(d.meta) + repr(d.notices) + d.format
    for secret in FORBIDDEN:
        assert secret not in blob


# ----------------------------------------------------------------------------- from a PACS

#: What of the patient may never show, from a PACS either. The accession number is not here:
#: the worklist shows it (it identifies the order, not the patient).
PATIENT_ONLY = [s for s in FORBIDDEN if "55417732" not in s]


def pacs_instance_with_patient_fields():
    """:func:`dicom_with_patient_fields` as a DX instance of a study dated today."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(io.BytesIO(dicom_with_patient_fields()))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate = date.today().strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.PatientSex = "F"
    ds.ViewPosition = "PA"
    return ds


def test_pacs_session_writes_no_file_and_leaks_no_patient_field(
    app_env,  # noqa: F811 - the imported fixture
    private_tmp,
    tmp_path,
    monkeypatch,
    caplog,
    capsys,
):
    """The watcher scores a study with patient fields, then the worklist lists it, a row opens
    it in Diagnose and Send to PACS runs: nothing written by the app, no patient field shown
    or logged, no credential either."""
    global _RECORDING
    from pacs_fixtures import client_of, running_orthanc

    from cxrlib.pacs import cli

    caplog.set_level(logging.DEBUG)
    get_resources()  # the models, loaded before recording (as above)
    with running_orthanc(tmp_path / "orthanc") as server:
        client_of(server).store([pacs_instance_with_patient_fields()])
        monkeypatch.setenv("CXR_PACS_URL", server.dicomweb_url)
        monkeypatch.setenv("CXR_PACS_USER", server.user)
        monkeypatch.setenv("CXR_PACS_PASSWORD", server.password)
        assert cli.main(["watch", "--once", "--state", str(tmp_path / "watch.json")]) == 0
        out = capsys.readouterr()
        watch_log = caplog.text + out.out + out.err
        assert "scored 1" in watch_log

        cwd = Path.cwd()
        before_cwd, before_tmp = _listing(cwd), _listing(private_tmp)
        _RECORDING = []
        try:
            at = new_app().run()
            at.switch_page("pages/worklist.py").run()
            assert not at.exception, [e.value for e in at.exception]
            page = _all_strings(at)
            (table,) = at.dataframe
            assert list(table.value["Accession"]) == [PATIENT["AccessionNumber"]]
            assert table.value["Most likely"][0] != "not scored"
            at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            page += _all_strings(at)
            assert "Most likely:" in page and "DICOM" in page
            at.switch_page("pages/diagnose.py").run()
            send = next(b for b in at.button if b.label == "Send to PACS")
            send.click().run()
            assert not at.exception, [e.value for e in at.exception]
            assert any("Already in the PACS" in i.value for i in at.info)  # scored by the watcher
            page += _all_strings(at)
        finally:
            written, _RECORDING = _RECORDING, None
        app_log = caplog.text + "".join(capsys.readouterr())

    assert written == [], f"files written during the session: {written}"
    assert _listing(cwd) == before_cwd
    assert _listing(private_tmp) == before_tmp
    for secret in PATIENT_ONLY:
        assert secret not in page, f"{secret!r} shown on a page"
        assert secret not in watch_log, f"{secret!r} in the watcher's log"
        assert secret not in app_log, f"{secret!r} logged by the app"
    for log in (page, watch_log, app_log):
        assert server.password not in log

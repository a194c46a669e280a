"""cxrlib.pacs.results: the SR and Secondary Capture written back for a scored image, checked
with dciodvfy, read back, and held to the source's study and its patient (nothing more)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from app_helpers import ROOT
from pydicom.sr.codedict import codes

from cxrlib.core.errors import ModelError, ReportError
from cxrlib.infer.overlay import overlay
from cxrlib.infer.pipeline import Diagnosis, GateVerdict
from cxrlib.io.decode import decode_image
from cxrlib.pacs import results
from cxrlib.pacs.report_codes import CHEST_XRAY

SAMPLE = ROOT / "samples" / "normal_nih_00003353_006_synthetic.dcm"
CLASSES = ("covid", "normal", "pneumonia")
MODEL = results.ModelIdentity(
    "CXR Lens small classifier", "0123456789ab", "0123456789ab" + "c" * 52
)
#: What the written objects may say about the patient and the study, copied from the source.
COPIED = {"PatientName", "PatientID", "PatientBirthDate", "PatientSex"}
STUDY = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
    "ReferringPhysicianName",
)  # fmt: skip
#: More about the patient (and the visit) that a source may carry and no result may repeat.
IDENTIFIED = {
    "PatientName": "Doe^Jane",
    "PatientID": "P-0042",
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "OtherPatientIDs": "OLD-7",
    "PatientAddress": "1 Main Street",
    "PatientTelephoneNumbers": "555-0100",
    "PatientAge": "056Y",
    "PatientComments": "allergic to latex",
    "StudyDate": "20260101",
    "StudyTime": "101500",
    "AccessionNumber": "ACC-9",
    "StudyID": "S1",
    "ReferringPhysicianName": "Who^Doctor",
    "StudyDescription": "Chest PA",
    "InstitutionName": "General Hospital",
    "OperatorsName": "Tech^Tina",
}


def _source(identified: bool) -> tuple[pydicom.Dataset, np.ndarray]:
    """The sample DICOM (with a full patient header if ``identified``) and its display pixels."""
    data = SAMPLE.read_bytes()
    source = pydicom.dcmread(io.BytesIO(data))
    if identified:
        for keyword, value in IDENTIFIED.items():
            setattr(source, keyword, value)
        other = pydicom.Dataset()
        other.PatientID = "OLD-8"
        source.OtherPatientIDsSequence = [other]
    return source, decode_image(data, "x.dcm").pixels


def _diagnosis(gray: np.ndarray, lung_focus: float | None) -> Diagnosis:
    """A diagnosis as the pipeline makes one: float32 probabilities of four test-time views,
    a heatmap and lung mask at the display size, a target other than the prediction."""
    h, w = gray.shape
    yy, xx = np.mgrid[0:h, 0:w]
    heatmap = np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / (2 * (h / 6) ** 2))
    mask = np.zeros((h, w), bool)
    mask[h // 4 : 3 * h // 4, w // 6 : 5 * w // 6] = True
    views = np.random.default_rng(7).dirichlet([2, 1, 1], size=4).astype(np.float32)
    probs = views.mean(axis=0).astype(np.float32)
    predicted = int(np.argmax(probs))
    target = (predicted + 1) % len(CLASSES)
    return Diagnosis(
        class_names=CLASSES,
        probabilities=probs,
        predicted_index=predicted,
        predicted_name=CLASSES[predicted],
        uncertainty=np.stack([views.min(axis=0), views.max(axis=0)], axis=1),
        view_probabilities=views,
        view_names=("original", "flip", "zoom", "shift"),
        target_index=target,
        target_name=CLASSES[target],
        method="gradcampp",
        heatmap=heatmap.astype(np.float32),
        lung_mask=mask if lung_focus is not None else None,
        lung_focus=lung_focus,
        lung_area=float(mask.mean()),
        focus_level="good",
        focus_verdict="The heatmap is mostly inside the lungs.",
    )


def _part10(ds: pydicom.Dataset, path: Path) -> bytes:
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


GATES = {
    "accepted": GateVerdict(True, 0.4123456789012345, "Looks like a frontal chest X-ray."),
    "refused": GateVerdict(False, 3.25, "This does not look like a frontal chest X-ray."),
    "no-gate": None,
}


@pytest.fixture(
    params=[(True, "accepted", 0.8125), (False, "refused", None), (True, "no-gate", 0.5)],
    ids=["identified-accepted", "bare-refused-no-lungs", "identified-no-gate"],
)
def written(request, tmp_path):
    """A source, its diagnosis and gate verdict, and the SR and SC written for them (Part 10)."""
    identified, gate_name, focus = request.param
    source, gray = _source(identified)
    diagnosis, gate = _diagnosis(gray, focus), GATES[gate_name]
    sr, sc = results.result_objects(source, diagnosis, gray, gate, MODEL)
    series = sr.SeriesInstanceUID
    files = {"sr": _part10(sr, tmp_path / "sr.dcm"), "sc": _part10(sc, tmp_path / "sc.dcm")}
    return SimpleNamespace(
        source=source, gray=gray, diagnosis=diagnosis, gate=gate, series=series, files=files,
        sr=pydicom.dcmread(io.BytesIO(files["sr"])), sc=pydicom.dcmread(io.BytesIO(files["sc"])),
        tmp=tmp_path,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed")
@pytest.mark.parametrize("kind", ["sr", "sc"])
def test_dciodvfy_finds_no_errors(written, kind):
    path = written.tmp / f"{kind}.dcm"
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    lines = (out.stdout + out.stderr).splitlines()
    print("\n".join(line for line in lines if line.startswith("Warning")))
    assert [line for line in lines if line.startswith("Error")] == []


def test_report_reads_back_what_was_written(written):
    d, gate = written.diagnosis, written.gate
    content = results.read_report(written.sr)
    for i, name in enumerate(CLASSES):
        assert content.probabilities[name] == pytest.approx(float(d.probabilities[i]), abs=1e-6)
        assert content.probabilities[name] == float(d.probabilities[i])  # not rounded at all
        low, high = content.ranges[name]
        assert (low, high) == (float(d.uncertainty[i, 0]), float(d.uncertainty[i, 1]))
        assert low <= content.probabilities[name] <= high
    assert content.predicted == d.predicted_name
    assert (content.heatmap_class, content.heatmap_method) == (d.target_name, "gradcampp")
    assert content.lung_focus == d.lung_focus
    if gate is None:
        assert content.input_accepted is None and content.input_score is None
    else:
        assert (content.input_accepted, content.input_score) == (gate.is_cxr, gate.score)
    assert content.model == MODEL
    assert content.source_sop_instance_uid == written.source.SOPInstanceUID


def test_both_objects_are_a_new_series_of_the_source_study(written):
    sr, sc, source = written.sr, written.sc, written.source
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    for ds, number in ((sr, 1), (sc, 2)):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID == written.series != source.SeriesInstanceUID
        assert ds.InstanceNumber == number
        assert ds.SeriesDescription == results.SERIES_DESCRIPTION
        assert ds.SeriesDescription.startswith("CXR Lens")
        assert ds.Manufacturer == "CXR Lens"
        assert ds.ManufacturerModelName == MODEL.name
    assert sr.SOPInstanceUID != sc.SOPInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    for data in written.files.values():  # Part 10 with a preamble: dicomweb-client reads it
        assert data[:132] == b"\0" * 128 + b"DICM"


def test_patient_and_study_are_copied_and_nothing_more(written):
    source = written.source
    for ds in (written.sr, written.sc):
        found = {elem.keyword for elem in ds.iterall()}  # nested elements included
        patient = {k for k in found if k and pydicom.datadict.tag_for_keyword(k) >> 16 == 0x0010}
        assert patient == COPIED
        for keyword in COPIED | set(STUDY):
            assert str(ds.get(keyword) or "") == str(source.get(keyword) or ""), keyword
        # The rest of the source's header stays behind, however identifying.
        assert not (set(IDENTIFIED) - COPIED - set(STUDY)) & found


def test_secondary_capture_shows_the_overlay_above_the_notice(written):
    sc, gray, d = written.sc, written.gray, written.diagnosis
    pixels = sc.pixel_array
    h, w = gray.shape
    assert sc.PhotometricInterpretation == "RGB" and pixels.dtype == np.uint8
    assert pixels.shape[1:] == (w, 3) and pixels.shape[0] > h
    np.testing.assert_array_equal(pixels[:h], overlay(gray, d.heatmap, lung_mask=d.lung_mask))
    band = pixels[h:]
    blank = results.notice_band(w, ())[: band.shape[0]]
    assert band.shape[0] >= 32
    # The text was burned in: bright pixels on the dark band.
    assert (band.max(axis=2) > 200).sum() > 0.01 * band[..., 0].size
    assert int(np.median(band)) == int(blank[0, 0, 0])
    assert "NOT FOR DIAGNOSIS" in sc.DerivationDescription.upper()


def test_notice_band_text_depends_on_what_it_says():
    one = results.notice_band(384, (results.NOTICE, "CXR Lens: Grad-CAM heatmap of covid"))
    other = results.notice_band(384, (results.NOTICE, "CXR Lens: Grad-CAM heatmap of normal"))
    assert one.shape == other.shape and not np.array_equal(one, other)


def test_read_report_refuses_what_cxr_lens_did_not_write():
    source = _source(identified=True)[0]
    with pytest.raises(ReportError, match="not written by CXR Lens"):
        results.read_report(source)  # an image
    foreign_group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="other"),
        measurements=[hd.sr.Measurement(codes.DCM.Probability, 0.5, codes.UCUM.NoUnits)],
    )
    context = hd.sr.ObservationContext()
    foreign = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=hd.sr.MeasurementReport(context, CHEST_XRAY, [foreign_group]),
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Elsewhere",
    )  # fmt: skip
    with pytest.raises(ReportError):
        results.read_report(foreign)


def test_model_identity_names_the_weights(tmp_path):
    sha = "ab" * 32
    meta = {"weights_sha256": sha, "train_config": {"arch": "mobilenetv2"}}
    assert results.model_identity(meta) == results.ModelIdentity(
        "CXR Lens mobilenetv2 classifier", sha[:12], sha
    )
    assert results.model_identity({"weights_sha256": sha, "version": "2.1"}).version == "2.1"
    with pytest.raises(ModelError, match="no weights hash"):
        results.model_identity({})
    weights = tmp_path / "m.keras"
    weights.write_bytes(b"weights")
    identity = results.model_identity({}, str(weights))
    assert identity.weights_sha256 == hashlib.sha256(b"weights").hexdigest()


def test_a_diagnosis_of_the_real_pipeline_round_trips(tiny_model_path, tmp_path):
    """The tiny fixture classifier scores the sample; what it said comes back from the SR."""
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.pipeline import diagnose

    clf = load_classifier(tiny_model_path)
    source, gray = _source(identified=True)
    diagnosis = diagnose(clf, gray, Explainer(clf), method="gradcam")
    model = results.model_identity(clf.meta)
    assert model.weights_sha256 == clf.weights_sha256 and len(model.version) == 12
    sr, sc = results.result_objects(source, diagnosis, gray, None, model, hd.UID())
    content = results.read_report(pydicom.dcmread(io.BytesIO(_part10(sr, tmp_path / "sr.dcm"))))
    assert content.probabilities == {
        name: float(p) for name, p in zip(diagnosis.class_names, diagnosis.probabilities)
    }
    assert content.predicted == diagnosis.predicted_name and content.model == model
    assert sc.SeriesInstanceUID == sr.SeriesInstanceUID

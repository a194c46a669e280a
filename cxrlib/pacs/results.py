"""The results of one scored image as DICOM, for the source's study: a TID 1500 Comprehensive
SR (what the model said) and a Secondary Capture (the heatmap overlay, "NOT FOR DIAGNOSIS"
burned in), instances 1 and 2 of one new series; :func:`read_report` reads the SR back.

The SR holds one measurement group with the predicted class, the class and method the heatmap
explains, the input check (accepted or refused, and its score) and the heatmap's lung focus;
then one group per class (its Finding) with its Probability and, by derivation Minimum and
Maximum, the lowest and highest probability over the test-time views. Every group names the
source image and the model (Algorithm Identification; parameter ``weights_sha256=<hex>``).

Only the Patient and General Study attributes DICOM requires are copied from the source (name,
ID, birth date, sex, study identifiers): nothing else about the patient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept
from highdicom.sr.utils import find_content_items
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from cxrlib.core.errors import ModelError, ReportError
from cxrlib.core.hashing import sha256_file
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.infer.overlay import overlay
from cxrlib.infer.pipeline import Diagnosis, GateVerdict
from cxrlib.pacs import report_codes as rc

SERIES_DESCRIPTION = "CXR Lens AI results (not for diagnosis)"
SERIES_NUMBER = 9901  # high, so that the results list after the acquired series
MANUFACTURER = "CXR Lens"
NOTICE = "NOT FOR DIAGNOSIS"
#: What a written object keeps of the source: the Patient and General Study attributes of
#: type 1 and 2 (highdicom fills them in), the character set, and the source's identity.
COPIED = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID",
)  # fmt: skip
_WEIGHTS = "weights_sha256="


@dataclass(frozen=True)
class ModelIdentity:
    """Which classifier scored an image: a name, a version, and the hash of its weights."""

    name: str
    version: str
    weights_sha256: str


def model_identity(meta: Mapping[str, Any], model_path: str | None = None) -> ModelIdentity:
    """The identity of a classifier from its JSON (``meta``): its architecture, its
    ``version`` (else the first 12 hex of the weights hash) and the weights hash (else that of
    the file at ``model_path``)."""
    sha = str(meta.get("weights_sha256") or "") or (sha256_file(model_path) if model_path else "")
    if not sha:
        raise ModelError("The model's JSON has no weights hash: give the model file's path.")
    arch = meta.get("train_config", {}).get("arch", "")
    name = " ".join(filter(None, ("CXR Lens", arch, "classifier")))
    return ModelIdentity(name, str(meta.get("version") or sha[:12]), sha)


@dataclass(frozen=True)
class ReportContent:
    """What :func:`read_report` finds in a CXR Lens report; ``input_accepted`` and
    ``input_score`` are None when no input check ran, ``lung_focus`` without lung mask."""

    predicted: str
    probabilities: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    heatmap_class: str
    heatmap_method: str
    lung_focus: float | None
    input_accepted: bool | None
    input_score: float | None
    model: ModelIdentity
    source_sop_instance_uid: str


def _reference(source: Dataset) -> Dataset:
    """The attributes of :data:`COPIED` (empty when the source lacks a required one)."""
    ref = Dataset()
    for keyword in COPIED:
        if keyword != "SpecificCharacterSet" or keyword in source:
            setattr(ref, keyword, source.get(keyword))
    return ref


def _group(
    label: str,
    source: Dataset,
    model: ModelIdentity,
    measurements: Sequence[hd.sr.Measurement],
    evaluations: Sequence[hd.sr.QualitativeEvaluation] = (),
    finding: Code | None = None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One measurement group (TID 1501) on ``source`` by ``model``."""
    algorithm = hd.sr.AlgorithmIdentification(
        model.name, model.version, parameters=[_WEIGHTS + model.weights_sha256]
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
        finding_type=finding,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=list(evaluations),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )


def _number(name: Code, value: float, derivation: Code | None = None) -> hd.sr.Measurement:
    # A Python float is written as FloatingPointValue too: read back without rounding.
    return hd.sr.Measurement(name, float(value), codes.UCUM.NoUnits, derivation=derivation)


def structured_report(
    source: Dataset,
    diagnosis: Diagnosis,
    gate: GateVerdict | None,
    model: ModelIdentity,
    series_uid: str,
) -> hd.sr.ComprehensiveSR:
    """The TID 1500 measurement report of ``diagnosis`` (see the module), instance 1 of
    ``series_uid`` in the source's study."""
    d = diagnosis
    summary = [
        hd.sr.QualitativeEvaluation(rc.PREDICTED_CLASS, rc.class_code(d.predicted_name)),
        hd.sr.QualitativeEvaluation(rc.HEATMAP_CLASS, rc.class_code(d.target_name)),
        hd.sr.QualitativeEvaluation(rc.HEATMAP_METHOD, rc.method_code(d.method)),
    ]
    numbers = [] if d.lung_focus is None else [_number(rc.LUNG_FOCUS, d.lung_focus)]
    if gate is not None:
        verdict = rc.ACCEPTED if gate.is_cxr else rc.REFUSED
        summary.append(hd.sr.QualitativeEvaluation(rc.INPUT_CHECK, verdict))
        numbers.append(_number(rc.INPUT_SCORE, gate.score))
    groups = [_group("CXR Lens result", source, model, numbers, summary)]
    for i, name in enumerate(d.class_names):
        low, high = d.uncertainty[i]
        probability = [
            _number(codes.DCM.Probability, d.probabilities[i]),
            _number(codes.DCM.Probability, low, codes.SCT.Minimum),
            _number(codes.DCM.Probability, high, codes.SCT.Maximum),
        ]
        groups.append(
            _group(f"CXR Lens {name}", source, model, probability, [], rc.class_code(name))
        )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[model.weights_sha256]), name=MANUFACTURER,
        manufacturer_name=MANUFACTURER, model_name=model.name,
    )  # fmt: skip
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device)
    )
    report = hd.sr.MeasurementReport(context, rc.CHEST_XRAY, groups)
    sr = hd.sr.ComprehensiveSR(
        evidence=[_reference(source)], content=report, series_instance_uid=series_uid,
        series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        is_complete=True, coding_schemes=[CodingSchemeIdentificationItem(
            rc.LOCAL_SCHEME, name="CXR Lens local codes")], **_equipment(model),
    )  # fmt: skip
    sr.preamble = b"\0" * 128  # dicomweb-client reads back only Part 10 files with a preamble
    return sr


def _equipment(model: ModelIdentity) -> dict[str, Any]:
    """The equipment and series attributes both objects share."""
    return {
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": model.name,
        "software_versions": model.version,
        "series_description": SERIES_DESCRIPTION,
    }


def notice_band(width: int, lines: tuple[str, ...]) -> np.ndarray:
    """A dark RGB band ``width`` wide with ``lines`` of white text, each as large as fits."""
    line_h = max(16, width // 24)
    band = np.full((line_h * len(lines) + line_h // 2, width, 3), 24, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for row, text in enumerate(lines):
        (w, h), _ = cv2.getTextSize(text, font, 1.0, 2)
        scale = min(0.7 * line_h / h, 0.95 * width / w)
        thickness = max(1, round(scale * 1.5))
        (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
        origin = ((width - w) // 2, line_h * row + (line_h + h) // 2 + line_h // 4)
        cv2.putText(band, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return band


def secondary_capture(
    source: Dataset, diagnosis: Diagnosis, gray: np.ndarray, model: ModelIdentity, series_uid: str
) -> hd.sc.SCImage:
    """The heatmap over ``gray`` (the display pixels the heatmap was computed on), lungs
    outlined, above a band that says :data:`NOTICE`, the class and the method: instance 2."""
    d = diagnosis
    if d.heatmap is None:
        raise ValueError("the diagnosis has no heatmap to show")
    label = f"{METHOD_LABELS.get(d.method, d.method)} heatmap of {d.target_name}"
    image = overlay(gray, d.heatmap, lung_mask=d.lung_mask)
    rgb = np.vstack([image, notice_band(image.shape[1], (NOTICE, f"CXR Lens: {label}"))])
    sc = hd.sc.SCImage.from_ref_dataset(
        _reference(source), rgb, "RGB", 8, "PATIENT", series_uid, SERIES_NUMBER,
        hd.UID(), 2, patient_orientation=("L", "F"), **_equipment(model),
    )  # fmt: skip
    # highdicom asks for an orientation: the overlay has the source's (empty: unknown), and
    # its laterality (type 2C, which dciodvfy wants present).
    sc.PatientOrientation = source.get("PatientOrientation")
    sc.Laterality = source.get("Laterality")
    sc.DerivationDescription = f"{label} by {model.name} {model.version}; {NOTICE.lower()}"
    sc.SourceImageSequence = [Dataset()]
    sc.SourceImageSequence[0].ReferencedSOPClassUID = source.SOPClassUID
    sc.SourceImageSequence[0].ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.preamble = b"\0" * 128
    return sc


def result_objects(
    source: Dataset,
    diagnosis: Diagnosis,
    gray: np.ndarray,
    gate: GateVerdict | None,
    model: ModelIdentity,
    series_uid: str | None = None,
) -> tuple[hd.sr.ComprehensiveSR, hd.sc.SCImage]:
    """The SR and the Secondary Capture of one scored image, in one new series (``series_uid``,
    else a fresh UID: read it back from either object)."""
    uid = series_uid or hd.UID()
    return (
        structured_report(source, diagnosis, gate, model, uid),
        secondary_capture(source, diagnosis, gray, model, uid),
    )


def _texts(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> list[str]:
    return [str(item.TextValue) for item in find_content_items(group[0], name=name)]


def _coded(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> CodedConcept:
    return group.get_qualitative_evaluations(name)[0].value  # type: ignore[return-value]


def _number_in(group: hd.sr.MeasurementsAndQualitativeEvaluations, name: Code) -> float | None:
    found = group.get_measurements(name)
    return float(found[0].value) if found else None


def read_report(sr: Dataset) -> ReportContent:
    """The content of an SR written by :func:`structured_report`; ReportError otherwise."""
    try:
        content = hd.sr.ComprehensiveSR.from_dataset(sr).content
        groups = hd.sr.MeasurementReport.from_sequence(content).get_image_measurement_groups()
        summary = next(g for g in groups if g.finding_type is None)
        params = _texts(summary, codes.DCM.AlgorithmParameters)
        probabilities, ranges = {}, {}
        for group in groups:
            if group.finding_type is None:
                continue
            by = {  # derivation code (none: the probability itself) -> value
                getattr(m.derivation, "value", ""): float(m.value)
                for m in group.get_measurements(codes.DCM.Probability)
            }
            name = rc.class_name(group.finding_type)
            probabilities[name] = by[""]
            ranges[name] = (by[codes.SCT.Minimum.value], by[codes.SCT.Maximum.value])
        checked = summary.get_qualitative_evaluations(rc.INPUT_CHECK)
        return ReportContent(
            predicted=rc.class_name(_coded(summary, rc.PREDICTED_CLASS)),
            probabilities=probabilities,
            ranges=ranges,
            heatmap_class=rc.class_name(_coded(summary, rc.HEATMAP_CLASS)),
            heatmap_method=str(_coded(summary, rc.HEATMAP_METHOD).value),
            lung_focus=_number_in(summary, rc.LUNG_FOCUS),
            input_accepted=None if not checked else checked[0].value == rc.ACCEPTED,
            input_score=_number_in(summary, rc.INPUT_SCORE),
            model=ModelIdentity(
                _texts(summary, codes.DCM.AlgorithmName)[0],
                _texts(summary, codes.DCM.AlgorithmVersion)[0],
                next(p.removeprefix(_WEIGHTS) for p in params if p.startswith(_WEIGHTS)),
            ),
            source_sop_instance_uid=str(summary.source_images[0].referenced_sop_instance_uid),
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, StopIteration) as exc:
        raise ReportError("This structured report was not written by CXR Lens.") from exc

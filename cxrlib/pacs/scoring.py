"""Score one PACS instance and write the results back to its study: the one path that the
watcher (:mod:`cxrlib.pacs.watch`) and the app's "Send to PACS" share.

An instance is scored as an upload is (:mod:`cxrlib.infer.pipeline`: decode, input gate,
diagnosis with heatmap and lung focus), in memory. The results are written once per source
instance and model: when the study already holds a CXR Lens report on that instance by a model
with the same weights, nothing is stored (skip, never replace: a result already read by
someone stays as it was; a new model has other weights and writes its own series). The check
and the store are two requests, so two writers racing on one instance can both store.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom import Dataset

from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import (
    InputRefusedError,
    NotAnImageError,
    PacsNotFoundError,
    ReportError,
)
from cxrlib.core.hashing import sha256_bytes
from cxrlib.infer.pipeline import Analysis, Models, check_input, decode, diagnose_image
from cxrlib.pacs.client import InstanceRow, PacsClient
from cxrlib.pacs.results import (
    MANUFACTURER,
    ModelIdentity,
    ReportContent,
    read_report,
    result_objects,
)


@dataclass(frozen=True)
class StoredResult:
    """A CXR Lens report found in the PACS: where it is and what it says."""

    row: InstanceRow
    report: ReportContent


@dataclass(frozen=True)
class SendOutcome:
    """What sending the results of one instance did: ``stored`` the SR and the Secondary
    Capture (``sop_uids``) in a new series, or not (a result by this model was there)."""

    stored: bool
    series_uid: str
    sop_uids: tuple[str, ...]


def study_results(
    client: PacsClient, study_uid: str, identity: ModelIdentity
) -> list[StoredResult]:
    """The CXR Lens reports in a study by a model with the weights of ``identity``, on any of
    its instances: one search for the study's reports, then each CXR Lens one fetched.

    Raises:
        PacsNotFoundError: The study is not in the PACS.
    """
    found = []
    for row in client.search_instances(study_uid, modalities=("SR",)):
        if not row.series_description.startswith(MANUFACTURER):
            continue
        try:
            report = read_report(client.retrieve(row.study_uid, row.series_uid, row.sop_uid))
        except ReportError:  # another writer's report under a look-alike description
            continue
        except PacsNotFoundError:  # deleted since the search
            continue
        if report.model.weights_sha256 == identity.weights_sha256:
            found.append(StoredResult(row, report))
    return found


def existing_results(
    client: PacsClient, study_uid: str, sop_uid: str, identity: ModelIdentity
) -> list[StoredResult]:
    """This model's reports (:func:`study_results`) on instance ``sop_uid``.

    Raises:
        PacsNotFoundError: The study is not in the PACS.
    """
    found = study_results(client, study_uid, identity)
    return [r for r in found if r.report.source_sop_instance_uid == sop_uid]


def _skipped(found: list[StoredResult]) -> SendOutcome:
    return SendOutcome(False, found[0].row.series_uid, tuple(f.row.sop_uid for f in found))


def _store(
    client: PacsClient, source: Dataset, analysis: Analysis, identity: ModelIdentity
) -> SendOutcome:
    gray = analysis.decoded.pixels
    if gray is None:
        raise ValueError("the analysis has no decoded pixels")
    sr, sc = result_objects(source, analysis.diagnosis, gray, analysis.gate, identity)
    client.store([sr, sc])
    return SendOutcome(True, str(sr.SeriesInstanceUID), (sr.SOPInstanceUID, sc.SOPInstanceUID))


def send_results(
    client: PacsClient, source: Dataset, analysis: Analysis, identity: ModelIdentity
) -> SendOutcome:
    """Stores the SR and Secondary Capture of ``analysis`` (of ``source``, an instance of the
    PACS) in a new series of its study, unless this model's result is already there.

    Raises:
        PacsError: The PACS cannot be reached, refuses, or lost the study.
    """
    found = existing_results(client, source.StudyInstanceUID, source.SOPInstanceUID, identity)
    return _skipped(found) if found else _store(client, source, analysis, identity)


def analyse_instance(models: Models, ref: InstanceRow, data: bytes) -> Analysis:
    """The pipeline's analysis of an instance's Part 10 bytes; the gate is enforced (no
    diagnosis of what it refuses).

    Raises:
        NotAnImageError: The bytes hold no usable image.
        InputRefusedError: The input gate says this is not a frontal chest X-ray.
    """
    cache = LRUCache()  # a model server is asked once for the verdict and the diagnosis
    decoded = decode(data, f"{ref.sop_uid}.dcm", sha256_bytes(data))
    if not decoded.ok:
        raise NotAnImageError(f"Instance {ref.sop_uid} holds no usable image: {decoded.error}")
    gate = check_input(models, decoded, cache, data=data)
    if gate is not None and not gate.is_cxr:
        raise InputRefusedError(f"Instance {ref.sop_uid} was not scored: {gate.reason}")
    return Analysis(decoded, gate, diagnose_image(models, decoded, cache=cache, data=data))


def score_instance(
    client: PacsClient, models: Models, ref: InstanceRow, identity: ModelIdentity
) -> SendOutcome:
    """Scores one instance of the PACS and stores its results there, unless this model's
    result is already there (checked first: nothing is fetched or computed then).

    Raises:
        NotAnImageError: The instance has no pixel data (a report, say) or none usable.
        InputRefusedError: The input gate refused the image (its reason in the message).
        PacsError: The PACS cannot be reached, refuses, or lost the instance.
    """
    found = existing_results(client, ref.study_uid, ref.sop_uid, identity)
    if found:
        return _skipped(found)
    data = client.retrieve_bytes(ref.study_uid, ref.series_uid, ref.sop_uid)
    try:
        source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on a malformed header
        raise NotAnImageError(f"Instance {ref.sop_uid} cannot be read as DICOM.") from exc
    return _store(client, source, analyse_instance(models, ref, data), identity)

"""cxrlib.pacs.scoring against a real Orthanc: an instance scored and its results read back
through QIDO and WADO, once per model; what is not a scorable image is refused by type."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from scoring_helpers import (
    broken_pixels,
    noise,
    results_in,
    source_of,
    without_pixels,
    xray,
)

from cxrlib.core.errors import InputRefusedError, NotAnImageError
from cxrlib.infer.pipeline import analyse
from cxrlib.pacs import scoring
from cxrlib.pacs.results import SERIES_DESCRIPTION, read_report


@pytest.fixture(scope="module")
def scored(pacs_client, models, identity):
    """A demo X-ray stored in the PACS and scored once."""
    ds = xray(0)
    pacs_client.store([ds])
    ref = source_of(pacs_client, ds)
    return ds, ref, scoring.score_instance(pacs_client, models, ref, identity)


def test_results_read_back_as_the_same_bytes_diagnosed_here(pacs_client, models, identity, scored):
    ds, ref, outcome = scored
    assert outcome.stored and len(outcome.sop_uids) == 2
    rows = results_in(pacs_client, ds.StudyInstanceUID)  # found by QIDO
    assert {r.sop_uid for r in rows} == set(outcome.sop_uids)
    assert {r.series_uid for r in rows} == {outcome.series_uid} != {ds.SeriesInstanceUID}
    assert {r.modality for r in rows} == {"SR", "OT"}
    (sr_row,) = [r for r in rows if r.modality == "SR"]
    report = read_report(
        pacs_client.retrieve(ds.StudyInstanceUID, outcome.series_uid, sr_row.sop_uid)
    )

    data = pacs_client.retrieve_bytes(ref.study_uid, ref.series_uid, ref.sop_uid)
    here = analyse(data, models, "x.dcm")
    for name, p in zip(here.diagnosis.class_names, here.diagnosis.probabilities):
        assert report.probabilities[name] == pytest.approx(float(p), abs=1e-6)
    assert report.predicted == here.diagnosis.predicted_name
    assert report.source_sop_instance_uid == ds.SOPInstanceUID
    assert report.model == identity
    assert report.input_accepted is True and report.lung_focus is not None


def test_both_objects_open_and_pass_dciodvfy(pacs_client, scored, tmp_path):
    ds, _, outcome = scored
    for row in results_in(pacs_client, ds.StudyInstanceUID):
        obj = pacs_client.retrieve(row.study_uid, row.series_uid, row.sop_uid)
        assert obj.StudyInstanceUID == ds.StudyInstanceUID
        assert obj.SeriesDescription == SERIES_DESCRIPTION
        if row.modality == "OT":
            assert obj.pixel_array.ndim == 3 and obj.pixel_array.dtype == np.uint8
        path = tmp_path / f"{row.modality}.dcm"
        obj.save_as(path, enforce_file_format=True)
        pydicom.dcmread(path)
        if shutil.which("dciodvfy"):
            out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            errors = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("Error")]
            assert errors == [], row.modality


def test_scoring_again_with_the_same_model_stores_nothing(pacs_client, models, identity, scored):
    ds, ref, first = scored
    before = pacs_client.search_instances(ds.StudyInstanceUID, modalities=None)
    again = scoring.score_instance(pacs_client, models, ref, identity)
    assert not again.stored and again.series_uid == first.series_uid
    data = pacs_client.retrieve_bytes(ref.study_uid, ref.series_uid, ref.sop_uid)
    sent = scoring.send_results(pacs_client, ds, analyse(data, models, "x.dcm"), identity)
    assert not sent.stored
    assert pacs_client.search_instances(ds.StudyInstanceUID, modalities=None) == before
    (found,) = scoring.existing_results(pacs_client, ref.study_uid, ref.sop_uid, identity)
    assert found.report.source_sop_instance_uid == ref.sop_uid


def test_another_model_writes_its_own_series(pacs_client, models, identity, scored):
    ds, ref, first = scored
    other = dataclasses.replace(identity, weights_sha256="0" * 64)
    assert scoring.existing_results(pacs_client, ref.study_uid, ref.sop_uid, other) == []
    outcome = scoring.score_instance(pacs_client, models, ref, other)
    assert outcome.stored and outcome.series_uid != first.series_uid
    series = {r.series_uid for r in results_in(pacs_client, ds.StudyInstanceUID)}
    assert series == {first.series_uid, outcome.series_uid}


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (without_pixels, NotAnImageError, "is not an image"),
        (broken_pixels, NotAnImageError, "no usable image"),
        (noise, InputRefusedError, "was not scored"),
    ],
    ids=["no-pixel-data", "broken-pixel-data", "refused-by-the-gate"],
)
def test_what_cannot_be_scored_is_a_typed_error(
    pacs_client, models, identity, make, error, message
):
    ds = make()
    pacs_client.store([ds])
    ref = source_of(pacs_client, ds)
    with pytest.raises(error, match=message) as caught:
        scoring.score_instance(pacs_client, models, ref, identity)
    assert ds.SOPInstanceUID in str(caught.value)
    assert results_in(pacs_client, ds.StudyInstanceUID) == []


def test_a_report_is_not_an_image(pacs_client, models, identity, scored):
    ds, _, _ = scored
    (sr,) = [r for r in results_in(pacs_client, ds.StudyInstanceUID) if r.modality == "SR"][:1]
    with pytest.raises(NotAnImageError, match="not an image"):
        scoring.score_instance(pacs_client, models, sr, identity)

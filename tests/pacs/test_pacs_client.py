"""cxrlib.pacs.client against a real Orthanc: searches find exactly what was stored, instances
round-trip, and every failure is a typed error that names what to check."""

from __future__ import annotations

import secrets
import socket
from datetime import date, timedelta

import numpy as np
import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage, generate_uid

from cxrlib.core.errors import (
    NotAnImageError,
    PacsAuthError,
    PacsError,
    PacsNotFoundError,
    PacsUnreachableError,
)
from cxrlib.core.net import free_port
from cxrlib.io.decode import decode_image
from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.demo import DEMO_PATIENT_NAME, demo_datasets

STUDY_KEYS = (
    "PatientName PatientID PatientBirthDate PatientSex StudyInstanceUID StudyDate StudyTime "
    "StudyID AccessionNumber ReferringPhysicianName StudyDescription"
).split()
DAY = date(2001, 3, 10)  # the stored studies' newest day: no other test stores studies then


def _report_in(study: Dataset) -> Dataset:
    """A minimal text SR in ``study``'s own new series: an instance with no pixel data."""
    sr = Dataset()
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    # The study's attributes, as highdicom copies them: Orthanc's study row shows the last stored.
    for key in STUDY_KEYS:
        setattr(sr, key, study.get(key))
    sr.Modality, sr.SeriesInstanceUID = "SR", generate_uid()
    sr.SeriesNumber = sr.InstanceNumber = 1
    sr.ValueType, sr.ContinuityOfContent = "CONTAINER", "SEPARATE"
    return sr


@pytest.fixture(scope="module")
def stored(pacs_client: PacsClient) -> list[Dataset]:
    """Six CR studies dated DAY back to DAY - 5, one DX study on DAY - 1, an SR in the first."""
    token = secrets.token_hex(3)
    datasets = demo_datasets(today=DAY)
    for i, ds in enumerate(datasets):
        ds.AccessionNumber = f"T{i}-{token}"
    dx = demo_datasets(today=DAY - timedelta(days=1))[0]
    dx.Modality, dx.AccessionNumber = "DX", f"DX-{token}"
    datasets.append(dx)
    pacs_client.store([*datasets, _report_in(datasets[0])])
    return datasets


def _uids(rows) -> set[str]:
    return {r.study_uid for r in rows}


def test_a_date_range_finds_exactly_the_studies_of_those_days_newest_first(pacs_client, stored):
    rows = pacs_client.search_studies(DAY - timedelta(days=2), DAY)
    assert _uids(rows) == {ds.StudyInstanceUID for ds in stored[:3] + stored[-1:]}
    assert [r.study_date for r in rows] == sorted((r.study_date for r in rows), reverse=True)
    first = next(r for r in rows if r.study_uid == stored[0].StudyInstanceUID)
    assert first.study_date == DAY and first.study_time is not None
    assert first.accession == stored[0].AccessionNumber
    assert set(first.modalities) == {"CR", "SR"} and first.n_instances == 2
    assert first.description == stored[0].StudyDescription
    # Open at one end: everything stored up to three days before DAY.
    older = pacs_client.search_studies(None, DAY - timedelta(days=3))
    assert {ds.StudyInstanceUID for ds in stored[3:6]} <= _uids(older)
    assert not _uids(older) & {ds.StudyInstanceUID for ds in stored[:3]}


def test_rows_hold_no_patient_name_or_id(pacs_client, stored):
    rows = pacs_client.search_studies(DAY - timedelta(days=5), DAY)
    instances = pacs_client.search_instances(stored[0].StudyInstanceUID, modalities=None)
    shown = repr(rows) + repr(instances)
    assert DEMO_PATIENT_NAME not in shown and "DEMO-0" not in shown


def test_an_accession_number_finds_its_one_study(pacs_client, stored):
    rows = pacs_client.search_studies(accession=stored[2].AccessionNumber)
    assert _uids(rows) == {stored[2].StudyInstanceUID}
    assert pacs_client.search_studies(accession="NO-SUCH-ACC") == []


@pytest.mark.parametrize(
    ("modalities", "which"),
    [(("CR",), "cr"), (("DX",), "dx"), (("CR", "DX"), "both"), (None, "both"), (("MR",), "none")],
)
def test_a_modality_list_keeps_studies_holding_any_of_them(pacs_client, stored, modalities, which):
    cr, dx = {stored[1].StudyInstanceUID}, {stored[-1].StudyInstanceUID}
    want = {"cr": cr, "dx": dx, "both": cr | dx, "none": set()}[which]
    day = DAY - timedelta(days=1)
    assert _uids(pacs_client.search_studies(day, day, modalities=modalities)) == want


def test_instances_of_a_study_x_rays_by_default_and_reports_on_request(pacs_client, stored):
    study = stored[0]
    (image,) = pacs_client.search_instances(study.StudyInstanceUID)
    assert (image.sop_uid, image.series_uid) == (study.SOPInstanceUID, study.SeriesInstanceUID)
    assert (image.modality, image.view, image.body_part) == ("CR", "PA", "CHEST")
    assert image.sop_class_uid == study.SOPClassUID and image.instance_number == 1
    everything = pacs_client.search_instances(study.StudyInstanceUID, modalities=None)
    assert sorted(r.modality for r in everything) == ["CR", "SR"]
    report = next(r for r in everything if r.modality == "SR")
    assert report.sop_class_uid == BasicTextSRStorage
    with pytest.raises(NotAnImageError, match="is not an image"):
        pacs_client.retrieve_bytes(report.study_uid, report.series_uid, report.sop_uid)


def test_retrieve_round_trips_the_pixels_in_memory(pacs_client, stored):
    ds = stored[3]
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    back = pacs_client.retrieve(*uids)
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    data = pacs_client.retrieve_bytes(*uids)
    assert data[128:132] == b"DICM"
    np.testing.assert_array_equal(decode_image(data, "x.dcm").pixels, ds.pixel_array)


def test_store_adds_the_preamble_a_readable_file_needs(pacs_client):
    (ds,) = demo_datasets(today=DAY - timedelta(days=30))[:1]
    ds.preamble = None
    pacs_client.store([ds])
    back = pacs_client.retrieve(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert back.SOPInstanceUID == ds.SOPInstanceUID


def test_what_is_not_there_is_not_found(pacs_client, stored):
    gone = generate_uid()
    with pytest.raises(PacsNotFoundError, match="no longer in the PACS"):
        pacs_client.search_instances(gone)
    with pytest.raises(PacsNotFoundError, match="no longer in the PACS"):
        pacs_client.retrieve(stored[0].StudyInstanceUID, stored[0].SeriesInstanceUID, gone)


def test_ping_passes_with_the_right_credentials(pacs_client):
    pacs_client.ping()


def test_a_wrong_or_missing_password_is_an_auth_error_that_does_not_repeat_it(orthanc):
    wrong = "not-" + orthanc.password
    for config in (
        PacsConfig(orthanc.dicomweb_url, orthanc.user, wrong),
        PacsConfig(orthanc.dicomweb_url),
    ):
        with pytest.raises(PacsAuthError, match="CXR_PACS_PASSWORD") as caught:
            PacsClient(config).search_studies()
        assert wrong not in str(caught.value) and orthanc.password not in str(caught.value)


def test_a_closed_port_is_unreachable_and_says_what_to_check():
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(PacsUnreachableError, match="check CXR_PACS_URL") as caught:
        PacsClient(PacsConfig(url, "u", "p", timeout=5)).ping()
    assert url in str(caught.value)


def test_a_url_that_is_not_one_says_what_to_set():
    with pytest.raises(PacsError, match="CXR_PACS_URL"):
        PacsClient(PacsConfig("pacs.example/dicom-web"))


def test_the_password_stays_out_of_repr_and_str(monkeypatch):
    monkeypatch.delenv("CXR_PACS_URL", raising=False)
    assert PacsConfig.from_env() is None
    monkeypatch.setenv("CXR_PACS_URL", "http://pacs.example:8042/dicom-web/")
    monkeypatch.setenv("CXR_PACS_USER", "reader")
    monkeypatch.setenv("CXR_PACS_PASSWORD", "s3cret-Pw")
    config = PacsConfig.from_env()
    assert config == PacsConfig("http://pacs.example:8042/dicom-web", "reader", "s3cret-Pw")
    for text in (repr(config), str(config), repr(PacsClient(config))):
        assert "s3cret-Pw" not in text and "reader" in text


def test_orthanc_wants_credentials_and_only_from_this_machine(orthanc):
    assert requests.get(f"{orthanc.url}/system", timeout=5).status_code == 401
    auth = (orthanc.user, orthanc.password)
    assert requests.get(f"{orthanc.url}/system", auth=auth, timeout=5).status_code == 200
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outward address
            address = s.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback address to ask from")
    port = orthanc.url.rsplit(":", 1)[1]
    remote = requests.get(f"http://{address}:{port}/system", auth=auth, timeout=5)
    assert remote.status_code in (401, 403)

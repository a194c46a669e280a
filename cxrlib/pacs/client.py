"""A PACS over DICOMweb: find studies (QIDO-RS), fetch instances (WADO-RS), store (STOW-RS).

Built on ``dicomweb-client``, the client the field uses (highdicom's examples, Kaapana, OHIF's
tooling): it speaks the multipart bodies of WADO-RS and STOW-RS, which hand-written requests
would get subtly wrong. Every ``requests`` exception becomes a typed error in one place
(:meth:`PacsClient.answering`). Rows carry UIDs, dates and descriptions only, never a patient's
name, ID or birth date; instances stay in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, TM
from requests.auth import HTTPBasicAuth

from cxrlib.core.errors import (
    NotAnImageError,
    PacsAuthError,
    PacsError,
    PacsNotFoundError,
    PacsUnreachableError,
)
from cxrlib.core.settings import pacs_credentials, pacs_url

#: What a chest X-ray is stored as: computed and digital radiography.
XRAY_MODALITIES = ("CR", "DX")


@dataclass(frozen=True)
class PacsConfig:
    """Where the PACS's DICOMweb root is and how to log in (the password is not in the repr)."""

    url: str
    user: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 20.0

    @classmethod
    def from_env(cls) -> PacsConfig | None:
        """From ``$CXR_PACS_URL``, ``$CXR_PACS_USER``, ``$CXR_PACS_PASSWORD``; None without a URL."""
        url = pacs_url()
        return cls(url, *pacs_credentials()) if url else None


@dataclass(frozen=True)
class StudyRow:
    """One study of a worklist: pseudonymous fields only."""

    study_uid: str
    accession: str
    study_date: date | None
    study_time: time | None
    modalities: tuple[str, ...]
    description: str
    n_instances: int


@dataclass(frozen=True)
class InstanceRow:
    """One instance of a study, with what says whether it is a frontal chest image."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    modality: str
    view: str
    body_part: str
    series_description: str
    instance_number: int | None


def _date(value: Any) -> date | None:
    """A DICOM DA as a plain date; None when empty or malformed."""
    try:
        d = DA(value) if value else None
    except ValueError:
        return None
    return date(d.year, d.month, d.day) if d else None


def _time(value: Any) -> time | None:
    """A DICOM TM as a plain time; None when empty or malformed."""
    try:
        t = TM(value) if value else None
    except ValueError:
        return None
    return time(t.hour, t.minute, t.second, t.microsecond) if t else None


def _date_range(date_from: date | None, date_to: date | None) -> str:
    """QIDO's StudyDate range: ``from-to``, either end open."""
    return "-".join(d.strftime("%Y%m%d") if d else "" for d in (date_from, date_to))


def _modalities(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def _study_row(ds: Dataset) -> StudyRow:
    return StudyRow(
        study_uid=str(ds.StudyInstanceUID),
        accession=str(ds.get("AccessionNumber", "")),
        study_date=_date(ds.get("StudyDate")),
        study_time=_time(ds.get("StudyTime")),
        modalities=_modalities(ds.get("ModalitiesInStudy")),
        description=str(ds.get("StudyDescription", "")),
        n_instances=int(ds.get("NumberOfStudyRelatedInstances") or 0),
    )


def instance_row(tags: Dataset | Mapping[str, Any]) -> InstanceRow:
    """The row of an instance from its attributes by keyword: a QIDO answer, or Orthanc's
    simplified tags (``/instances/{id}/tags?simplify``)."""
    number = str(tags.get("InstanceNumber") or "").strip()
    return InstanceRow(
        study_uid=str(tags.get("StudyInstanceUID", "")),
        series_uid=str(tags.get("SeriesInstanceUID", "")),
        sop_uid=str(tags.get("SOPInstanceUID", "")),
        sop_class_uid=str(tags.get("SOPClassUID", "")),
        modality=str(tags.get("Modality", "")),
        view=str(tags.get("ViewPosition", "")),
        body_part=str(tags.get("BodyPartExamined", "")),
        series_description=str(tags.get("SeriesDescription", "")),
        instance_number=int(number) if number.isdigit() else None,
    )


STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
INSTANCE_FIELDS = ("Modality", "ViewPosition", "BodyPartExamined", "SeriesDescription")


class PacsClient:
    """Searches, fetches and stores through one DICOMweb service."""

    def __init__(self, config: PacsConfig) -> None:
        self.config = config
        #: The logged-in HTTP session (also for a PACS's own REST API, e.g. Orthanc's).
        self.session = requests.Session()
        if config.user:
            self.session.auth = HTTPBasicAuth(config.user, config.password)
        try:
            self._web = DICOMwebClient(config.url, session=self.session, timeout=config.timeout)
        except ValueError as e:
            raise PacsError(
                f"{config.url!r} is not a DICOMweb URL: set CXR_PACS_URL to one like "
                "http://127.0.0.1:8042/dicom-web."
            ) from e

    def __repr__(self) -> str:
        return f"PacsClient({self.config!r})"

    @contextmanager
    def answering(self, missing: str = "") -> Iterator[None]:
        """Turns what ``requests`` raises into typed errors; ``missing`` is the 404 message."""
        url = self.config.url
        try:
            yield
        # A broken answer (ChunkedEncodingError: the PACS stopped while it answered) is a
        # PACS gone too, not a refusal of the request.
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as e:
            raise PacsUnreachableError(
                f"The PACS at {url} does not answer: check CXR_PACS_URL and that it is running."
            ) from e
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            if status in (401, 403):
                raise PacsAuthError(
                    f"The PACS at {url} refused the credentials: "
                    "check CXR_PACS_USER and CXR_PACS_PASSWORD."
                ) from e
            if status == 404 and missing:
                raise PacsNotFoundError(missing) from e
            reason = e.response.reason if e.response is not None else ""
            raise PacsError(f"The PACS at {url} answered HTTP {status} {reason}.") from e
        except requests.RequestException as e:
            raise PacsError(f"The request to the PACS at {url} failed: {e}") from e

    def ping(self) -> None:
        """Checks that the PACS answers and accepts the credentials (one tiny search).

        Raises:
            PacsUnreachableError, PacsAuthError, PacsError: As their messages say.
        """
        with self.answering():
            self._web.search_for_studies(limit=1)

    def search_studies(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        accession: str | None = None,
        modalities: Sequence[str] | None = XRAY_MODALITIES,
        limit: int | None = None,
    ) -> list[StudyRow]:
        """Studies dated ``date_from`` to ``date_to`` (inclusive; None: open) holding any of
        ``modalities`` (None: any), newest first. ``limit`` caps what the PACS sends (which
        studies it picks is its choice: narrow the dates instead for a complete list)."""
        filters: dict[str, str] = {}
        if date_from or date_to:
            filters["StudyDate"] = _date_range(date_from, date_to)
        if accession:
            filters["AccessionNumber"] = accession
        if modalities:
            # QIDO lists values with commas (Orthanc matches none with C-FIND's backslash).
            filters["ModalitiesInStudy"] = ",".join(modalities)
        with self.answering():
            found = self._web.search_for_studies(
                search_filters=filters, fields=STUDY_FIELDS, limit=limit
            )
        rows = [_study_row(Dataset.from_json(item)) for item in found]
        return sorted(rows, key=lambda r: (r.study_date or date.min, r.study_time or time()))[::-1]

    def search_instances(
        self, study_uid: str, modalities: Sequence[str] | None = XRAY_MODALITIES
    ) -> list[InstanceRow]:
        """The instances of a study with one of ``modalities`` (None: all of them, reports too),
        in series then instance order.

        Raises:
            PacsNotFoundError: The study is not in the PACS.
        """
        filters = {"Modality": ",".join(modalities)} if modalities else {}
        with self.answering(f"Study {study_uid} is no longer in the PACS."):
            found = self._web.search_for_instances(
                study_uid, search_filters=filters, fields=INSTANCE_FIELDS
            )
            if not found and not self._web.search_for_studies(
                search_filters={"StudyInstanceUID": study_uid}, limit=1
            ):
                raise PacsNotFoundError(f"Study {study_uid} is no longer in the PACS.")
        rows = [instance_row(Dataset.from_json(item)) for item in found]
        return sorted(rows, key=lambda r: (r.series_uid, r.instance_number or 0, r.sop_uid))

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> Dataset:
        """One instance, in memory, as stored (any transfer syntax).

        Raises:
            PacsNotFoundError: The instance is not in the PACS.
        """
        with self.answering(f"Instance {sop_uid} of study {study_uid} is no longer in the PACS."):
            return self._web.retrieve_instance(study_uid, series_uid, sop_uid)

    def retrieve_bytes(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """One image instance as DICOM Part 10 bytes, in memory: what
        :func:`cxrlib.io.decode.decode_image` reads.

        Raises:
            PacsNotFoundError: The instance is not in the PACS.
            NotAnImageError: The instance has no pixel data (a report, for one).
        """
        ds = self.retrieve(study_uid, series_uid, sop_uid)
        if "PixelData" not in ds:
            kind = pydicom.uid.UID(str(ds.get("SOPClassUID", ""))).name or "unknown"
            raise NotAnImageError(f"Instance {sop_uid} is not an image (SOP class {kind}).")
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()

    def store(self, datasets: Sequence[Dataset]) -> None:
        """Stores instances (STOW-RS).

        Raises:
            PacsError: The PACS refused some of them; the message gives its reasons.
        """
        for ds in datasets:
            # pydicom 3 writes no "DICM" prefix without a preamble, and the PACS then serves a
            # file that cannot be read back.
            if getattr(ds, "preamble", None) is None:
                ds.preamble = b"\0" * 128
        with self.answering():
            answer = self._web.store_instances(datasets)
        failed = answer.get("FailedSOPSequence") or []
        if failed:
            reasons = ", ".join(f"{f.ReferencedSOPInstanceUID} ({f.FailureReason})" for f in failed)
            raise PacsError(f"The PACS did not store {len(failed)} instance(s): {reasons}.")

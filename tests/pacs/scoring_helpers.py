"""What the scoring and watcher tests share (their models: conftest.py): chest X-rays
of the demo patient, a PACS of a test's own, and the results found in a study."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from pacs_fixtures import client_of, running_orthanc
from pydicom import Dataset

from cxrlib.pacs.client import InstanceRow, PacsClient
from cxrlib.pacs.demo import DEMO_PATIENT_NAME, DEMO_SAMPLES, demo_dataset
from cxrlib.pacs.results import SERIES_DESCRIPTION
from cxrlib.pacs.server import RunningOrthanc

#: What no log line may show: the demo patient's name and ID, and a birth date set here.
BIRTH_DATE = "19610203"
PATIENT_DATA = (DEMO_PATIENT_NAME, "DEMO-0", BIRTH_DATE)


def xray(index: int = 0, side: int | None = None) -> Dataset:
    """Demo chest X-ray ``index`` (a CR) in a new study, with a birth date; ``side``: its
    pixels shrunk to a square that size (scored faster)."""
    sample, view = DEMO_SAMPLES[index]
    ds = demo_dataset(sample, view, index + 1, datetime.now())
    ds.PatientBirthDate = BIRTH_DATE
    if side is not None:
        ds.set_pixel_data(cv2.resize(ds.pixel_array, (side, side)), "MONOCHROME2", 8)
    return ds


def noise() -> Dataset:
    """A CR instance whose pixels are noise: the input gate refuses it."""
    ds = xray(1)
    pixels = np.random.default_rng(0).integers(0, 256, (384, 384), dtype=np.uint8)
    ds.set_pixel_data(pixels, "MONOCHROME2", 8)
    return ds


def without_pixels() -> Dataset:
    ds = xray(2)
    del ds.PixelData
    return ds


def broken_pixels() -> Dataset:
    """A CR instance whose header promises more pixels than it holds."""
    ds = xray(3)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    return ds


@contextmanager
def own_pacs(storage: Path) -> Iterator[tuple[RunningOrthanc, PacsClient]]:
    """An empty Orthanc for one test, and a client of it."""
    with running_orthanc(storage) as orthanc:
        yield orthanc, client_of(orthanc)


def results_in(client: PacsClient, study_uid: str) -> list[InstanceRow]:
    """The CXR Lens results (SR and SC) in a study."""
    rows = client.search_instances(study_uid, modalities=None)
    return [r for r in rows if r.series_description == SERIES_DESCRIPTION]


def source_of(client: PacsClient, ds: Dataset) -> InstanceRow:
    """The row of a stored instance."""
    (row,) = [
        r for r in client.search_instances(ds.StudyInstanceUID) if r.sop_uid == ds.SOPInstanceUID
    ]
    return row

"""cxrlib.io.dicom header fields: only allow-listed technical header fields reach the result.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.io.decode import decode_image

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import (  # noqa: E402
    gradient,
    make_dicom,
)


def test_dicom_never_exposes_patient_fields():
    secrets = {
        "PatientName": "SMITHERSON^JANE",
        "PatientID": "PID-998877",
        "PatientBirthDate": "19700203",
        "AccessionNumber": "ACC5566",
        "InstitutionName": "St Example Infirmary",
        "ReferringPhysicianName": "WHO^DOCTOR",
        "StudyDescription": "Chest for Jane Smitherson",
        "OtherPatientIDs": "OTHER-4411",
        "PatientAddress": "12 Secret Lane",
    }
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    data = make_dicom(
        src,
        ViewPosition="PA",
        BodyPartExamined="CHEST",
        SeriesDescription="SMITHERSON",
        **secrets,
    )
    out = decode_image(data, "SMITHERSON_JANE.dcm")
    text = repr(out.meta) + repr(out.notices) + out.format
    for value in [*secrets.values(), "SMITHERSON", "Smitherson", "998877", "Secret"]:
        assert value not in text
    for keyword in secrets:
        assert keyword not in out.meta
    assert out.meta["ViewPosition"] == "PA" and out.meta["BodyPartExamined"] == "CHEST"
    allowed = {
        "width",
        "height",
        "bit_depth",
        "frames",
        "colourfulness",
        "Modality",
        "PhotometricInterpretation",
        "ViewPosition",
        "BodyPartExamined",
        "Rows",
        "Columns",
        "BitsStored",
        "BitsAllocated",
        "SamplesPerPixel",
        "TransferSyntax",
        "window_center",
        "window_width",
    }
    assert set(out.meta) <= allowed


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_dicom_code_fields_with_free_text_are_dropped():
    # A name smuggled into a code-string field must not come through.
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    out = decode_image(make_dicom(src, BodyPartExamined="Jane^Doe", ViewPosition="AP"))
    assert "BodyPartExamined" not in out.meta
    assert "Jane" not in repr(out.meta)

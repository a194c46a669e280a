"""cxrlib.io.header_checks: what a DICOM header says against a frontal chest X-ray."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.io.decode import decode_image
from cxrlib.io.header_checks import header_concerns

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import gradient, make_dicom  # noqa: E402


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({}, []),
        ({"colourfulness": 0.0}, []),  # a PNG: no header fields
        ({"Modality": "DX", "ViewPosition": "PA", "BodyPartExamined": "CHEST"}, []),
        ({"Modality": "CR", "ViewPosition": "AP", "BodyPartExamined": "PORT CHEST"}, []),
        ({"Modality": "OT", "ViewPosition": "", "BodyPartExamined": "THORAX"}, []),
        ({"ViewPosition": "LL"}, ["lateral view (View Position LL)"]),
        ({"ViewPosition": "rl"}, ["lateral view (View Position RL)"]),
        ({"ViewPosition": "RAO"}, ["oblique view (View Position RAO)"]),
        ({"Modality": "CT"}, ["modality as CT (computed tomography)"]),
        ({"Modality": "XC"}, ["modality as XC, not a radiograph"]),
        ({"BodyPartExamined": "KNEE"}, ["body part as KNEE, not the chest"]),
        (
            {"Modality": "MR", "ViewPosition": "LATERAL", "BodyPartExamined": "HEAD"},
            ["modality as MR", "lateral view", "body part as HEAD"],
        ),
    ],
)
def test_header_concerns(meta, expected) -> None:
    concerns = header_concerns(meta)
    assert len(concerns) == len(expected), concerns
    for sentence, fragment in zip(concerns, expected, strict=True):
        assert fragment in sentence
        assert sentence.startswith("The DICOM header")


def test_a_decoded_lateral_ct_header_raises_its_concerns() -> None:
    # End to end: the fields decode_image keeps are the ones header_concerns reads.
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    data = make_dicom(src, ViewPosition="LL", BodyPartExamined="CHEST")
    concerns = header_concerns(decode_image(data, "scan.dcm").meta)
    assert len(concerns) == 1 and "lateral view (View Position LL)" in concerns[0]
    ct = make_dicom(src, Modality="CT", ViewPosition="PA", BodyPartExamined="CHEST")
    (concern,) = header_concerns(decode_image(ct).meta)
    assert "modality as CT (computed tomography)" in concern
    assert header_concerns(decode_image(make_dicom(src, ViewPosition="PA")).meta) == []

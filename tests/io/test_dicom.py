"""cxrlib.io.dicom: DICOM datasets decode to their first frame, shown as the standard says
(modality LUT, VOI LUT or window, inversion), with only allow-listed technical header fields;
non-images are refused.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image

pydicom = pytest.importorskip("pydicom")
from imaging_builders import (  # noqa: E402
    assert_monotonic,
    gradient,
    make_dicom,
    refused,
)
from pydicom.dataset import Dataset  # noqa: E402


def test_multiframe_dicom_first_frame():
    first = gradient(lo=0, hi=4000, dtype=np.uint16)
    stack = np.stack([first, np.full_like(first, 4000), np.zeros_like(first)])
    out = decode_image(make_dicom(stack))
    assert out.meta["frames"] == 3
    assert "Multi-frame DICOM: showing the first of 3 frames" in out.notices
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(first, out.pixels)


def test_dicom_without_preamble_named_dcm():
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    out = decode_image(make_dicom(src, preamble=False), "scan.dcm")
    assert out.format == "DICOM"
    np.testing.assert_array_equal(out.pixels, decode_image(make_dicom(src)).pixels)


def test_rgb_dicom():
    rgb = np.zeros((150, 150, 3), np.uint8)
    rgb[..., 0] = 200
    out = decode_image(make_dicom(rgb, "RGB", 8))
    assert out.pixels.shape == (150, 150)
    assert out.meta["colourfulness"] > 0.5


def test_refuse_dicom_without_pixel_data():
    assert "no image" in refused(make_dicom(None, PatientName="X^Y"), "report.dcm")


def test_refuse_non_dicom_named_dcm():
    assert "not a valid DICOM" in refused(np.random.default_rng(2).bytes(3000), "x.dcm")


def test_refuse_dicom_claiming_huge_size():
    data = make_dicom(gradient(lo=0, hi=4000, dtype=np.uint16), Rows=60000, Columns=60000)
    assert "3,600 megapixels" in refused(data)


def test_pydicom_test_files_decode_or_are_refused_cleanly():
    """Every DICOM that pydicom ships for its own tests (big-endian, implicit VR, no meta,
    DICOMDIRs, reports, waveforms, RT plans, palette, YBR, RLE, JPEG, JPEG-LS, JPEG 2000,
    truncated, bad VRs): a grey image or an ImageError, never another exception."""
    root = Path(pydicom.__file__).parent / "data" / "test_files"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in ("", ".dcm"))
    assert len(files) > 100
    decoded, problems = set(), []
    for path in files:
        try:
            out = decode_image(path.read_bytes(), path.name)
        except ImageError:
            continue
        except Exception as exc:  # noqa: BLE001 - collected, then reported together
            problems.append(f"{path.relative_to(root)}: {type(exc).__name__}: {exc}")
            continue
        if out.pixels.ndim != 2 or out.pixels.dtype != np.uint8:
            problems.append(f"{path.name}: {out.pixels.shape} {out.pixels.dtype}")
        decoded.add(path.name)
    assert not problems, "\n".join(problems)
    # Large enough to show, in encodings a hospital sends: palette, YBR colour, JPEG 2000,
    # 12-bit JPEG Extended (pylibjpeg) and big-endian CT.
    expected = {"examples_palette.dcm", "examples_ybr_color.dcm", "693_J2KI.dcm"}
    expected |= {"JPGExtended.dcm", "liver_expb_1frame.dcm", "SC_rgb_jpeg_dcmd.dcm"}
    assert expected <= decoded


def test_dicom_monochrome1_is_inverted():
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    mono2 = decode_image(make_dicom(src, "MONOCHROME2"), "a.dcm")
    mono1 = decode_image(make_dicom(src, "MONOCHROME1"), "b.dcm")
    assert mono2.format == "DICOM"
    assert mono2.pixels.min() == 0 and mono2.pixels.max() == 255
    np.testing.assert_array_equal(mono1.pixels, 255 - mono2.pixels)
    assert any("MONOCHROME1" in n for n in mono1.notices)
    assert mono1.meta["PhotometricInterpretation"] == "MONOCHROME1"
    assert mono2.meta["Modality"] == "DX" and mono2.meta["BitsStored"] == 12


def test_dicom_presentation_lut_shape_inverse():
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    plain = decode_image(make_dicom(src, "MONOCHROME2"), "a.dcm").pixels
    identity = decode_image(make_dicom(src, PresentationLUTShape="IDENTITY"), "b.dcm")
    inverse = decode_image(make_dicom(src, PresentationLUTShape="INVERSE"), "c.dcm")
    np.testing.assert_array_equal(identity.pixels, plain)
    np.testing.assert_array_equal(inverse.pixels, 255 - plain)
    assert any("Presentation LUT Shape INVERSE" in n for n in inverse.notices)
    # MONOCHROME1 with INVERSE (how DX files are written) is inverted once, not twice.
    both = decode_image(make_dicom(src, "MONOCHROME1", PresentationLUTShape="INVERSE"), "d.dcm")
    np.testing.assert_array_equal(both.pixels, 255 - plain)


def test_dicom_without_window_uses_the_used_range():
    src = gradient(lo=1000, hi=3000, dtype=np.uint16)
    out = decode_image(make_dicom(src))
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    assert any("No display window" in n for n in out.notices)


def test_dicom_rescale_and_window():
    # stored 0..4000 -> HU = 0.5 * stored - 1000 -> -1000..1000; window 0 +- 500.
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    data = make_dicom(
        src,
        RescaleSlope="0.5",
        RescaleIntercept="-1000",
        WindowCenter="0",
        WindowWidth="1000",
    )
    out = decode_image(data)
    hu = src.astype(float) * 0.5 - 1000
    assert (out.pixels[hu <= -501] == 0).all()
    assert (out.pixels[hu >= 501] == 255).all()
    middle = np.abs(hu) < 1
    assert np.abs(out.pixels[middle].astype(int) - 128).max() <= 1
    assert_monotonic(src, out.pixels)
    assert out.meta["window_center"] == 0 and out.meta["window_width"] == 1000
    assert any("window" in n for n in out.notices)


def test_dicom_voi_lut_sequence():
    src = gradient(lo=0, hi=1023, dtype=np.uint16)
    item = Dataset()
    item.add_new(0x00283002, "US", [1024, 0, 16])  # LUT Descriptor
    item.add_new(0x00283006, "US", [int(v) for v in (1023 - np.arange(1024)) * 64])  # LUT Data
    ds_bytes = make_dicom(src, bits_stored=10, VOILUTSequence=[item])
    out = decode_image(ds_bytes)
    assert out.pixels[0, 0] == 255 and out.pixels[-1, -1] == 0
    assert any("VOI LUT" in n for n in out.notices)


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

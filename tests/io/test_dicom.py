"""cxrlib.io.dicom: DICOM datasets decode to their first frame; non-images are refused.

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

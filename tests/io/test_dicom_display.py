"""cxrlib.io.dicom display: modality LUT, VOI LUT or window, and inversion, as the standard says.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.io.decode import decode_image

pydicom = pytest.importorskip("pydicom")
from imaging_builders import (  # noqa: E402
    assert_monotonic,
    gradient,
    make_dicom,
)
from pydicom.dataset import Dataset  # noqa: E402


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

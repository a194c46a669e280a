"""cxrlib.io.imaging: every supported format decodes correctly; everything else is refused.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk),
plus one real chest X-ray shipped in tests/fixtures/imaging.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lossless_jpeg import lossless_jpeg
from PIL import Image, ImageFile

from cxrlib.io import imaging
from cxrlib.io.imaging import (
    MAX_BYTES,
    MIN_SIDE,
    DecodedImage,
    ImageError,
    decode_image,
    read_image,
)

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

REAL_CXR = Path(__file__).parent / "fixtures" / "imaging" / "cxr_kermany_IM-0003-0001.jpg"


# --------------------------------------------------------------------------- builders


def pil_bytes(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gradient(h: int = 160, w: int = 200, lo: float = 0, hi: float = 255, dtype=np.uint8):
    """Row-major ramp from lo to hi (strictly increasing in raster order)."""
    values = np.linspace(lo, hi, h * w).reshape(h, w)
    if np.dtype(dtype).kind in "ui":
        values = np.round(values)
    return values.astype(dtype)


def assert_monotonic(src: np.ndarray, out: np.ndarray) -> None:
    """Output never decreases where the source increases (order preserved)."""
    order = np.argsort(src.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def make_dicom(
    arr: np.ndarray | None,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    preamble: bool = True,
    **fields,
) -> bytes:
    """A minimal DX DICOM file in memory (Explicit VR Little Endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if arr is not None:
        ds.set_pixel_data(arr, photometric, bits_stored)
    for key, value in fields.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    return data if preamble else data[132:]


def make_encapsulated_dicom(
    transfer_syntax, frame: bytes, rows=256, cols=256, bits_stored=12
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose IHDR (valid CRC) claims the given size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def refused(data: bytes, filename: str = "") -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, filename)
    return str(info.value)


# --------------------------------------------------------------------------- raster formats


def test_8bit_png_pixels_unchanged():
    src = gradient()
    out = decode_image(pil_bytes(Image.fromarray(src), "PNG"), "x.png")
    assert isinstance(out, DecodedImage)
    assert out.format == "PNG"
    assert out.pixels.dtype == np.uint8 and out.pixels.flags.c_contiguous
    np.testing.assert_array_equal(out.pixels, src)
    assert out.meta["width"] == 200 and out.meta["height"] == 160
    assert out.meta["bit_depth"] == 8 and out.meta["colourfulness"] == 0.0
    assert out.notices == []


def test_read_image_returns_the_pixels():
    src = gradient()
    np.testing.assert_array_equal(read_image(pil_bytes(Image.fromarray(src), "PNG")), src)


def test_jpeg_and_bmp():
    src = gradient(180, 220)
    jpeg = decode_image(pil_bytes(Image.fromarray(src), "JPEG", quality=95))
    assert jpeg.format == "JPEG" and jpeg.pixels.shape == (180, 220)
    assert np.abs(jpeg.pixels.astype(int) - src).mean() < 2
    bmp = decode_image(pil_bytes(Image.fromarray(src), "BMP"))
    assert bmp.format == "BMP"
    np.testing.assert_array_equal(bmp.pixels, src)


def test_webp_lossless():
    src = gradient()
    out = decode_image(pil_bytes(Image.fromarray(src), "WEBP", lossless=True))
    assert out.format == "WebP"
    np.testing.assert_array_equal(out.pixels, src)


def test_16bit_png_uses_the_used_range():
    src = gradient(lo=1000, hi=3000, dtype=np.uint16)
    out = decode_image(pil_bytes(Image.fromarray(src), "PNG"))
    assert out.meta["bit_depth"] == 16
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    # 1000..3000 spread over 0..255, not clipped at 255 nor squashed into 4..11.
    assert len(np.unique(out.pixels)) == 256
    assert any("16-bit" in n and "1,000" in n and "3,000" in n for n in out.notices)


def test_16bit_tiff():
    src = gradient(lo=200, hi=60000, dtype=np.uint16)
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"), "x.tif")
    assert out.format == "TIFF"
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    expected = np.floor((src.astype(float) - 200) * 255 / (60000 - 200) + 0.5)
    assert np.abs(out.pixels - expected).max() <= 1


def test_float_tiff_with_nan():
    src = gradient(lo=-0.5, hi=2.5, dtype=np.float32)
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"))
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    assert any("Floating-point" in n for n in out.notices)
    src[0, :5] = np.nan
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"))
    assert out.pixels.max() == 255 and out.pixels[0, 0] == 0
    assert any("NaN" in n for n in out.notices)


def test_cmyk_jpeg_matches_its_rgb_rendering():
    src = gradient()
    cmyk = Image.merge(
        "CMYK",
        [Image.new("L", (200, 160), 0)] * 3 + [Image.fromarray(255 - src)],
    )
    out = decode_image(pil_bytes(cmyk, "JPEG", quality=95))
    assert out.meta["mode"] == "CMYK"
    assert np.abs(out.pixels.astype(int) - src).mean() < 4


def test_palette_png():
    rng = np.random.default_rng(1)
    src = Image.fromarray(rng.integers(0, 255, (150, 150, 3), dtype=np.uint8))
    pal = src.quantize(colors=16)
    out = decode_image(pil_bytes(pal, "PNG"))
    assert out.meta["mode"] == "P"
    np.testing.assert_array_equal(out.pixels, np.asarray(pal.convert("RGB").convert("L")))
    assert out.meta["colourfulness"] > 0.1
    assert "Colour image converted to grayscale" in out.notices


def test_rgba_png_is_composited_on_black():
    rgba = np.full((140, 200, 4), 255, np.uint8)
    rgba[:, :100, 3] = 0  # left half transparent
    rgba[:, 100:150, 3] = 128  # half-transparent band
    out = decode_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (out.pixels[:, :100] == 0).all()
    assert (out.pixels[:, 150:] == 255).all()
    assert np.abs(out.pixels[:, 100:150].astype(int) - 128).max() <= 1
    assert "Transparent areas shown as black" in out.notices


def test_gray_stored_as_rgb_is_not_called_colour():
    src = gradient()
    rgb = np.stack([src] * 3, axis=2)
    out = decode_image(pil_bytes(Image.fromarray(rgb, "RGB"), "PNG"))
    np.testing.assert_array_equal(out.pixels, src)
    assert out.meta["colourfulness"] == 0.0
    assert "Colour image converted to grayscale" not in out.notices


def test_exif_orientation_6_rotates_upright():
    stored = np.zeros((160, 256), np.uint8)  # stored 256 wide, 160 tall
    stored[:20, :20] = 255  # marker at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = pil_bytes(Image.fromarray(stored), "JPEG", quality=95, exif=exif)
    out = decode_image(data, "photo.jpg")
    assert out.pixels.shape == (256, 160)  # transposed
    # Rotating 90 degrees clockwise moves the top-left corner to the top-right.
    assert out.pixels[:20, -20:].mean() > 200
    assert out.pixels[:20, :20].mean() < 50
    assert out.pixels[-20:, -20:].mean() < 50
    assert any("orientation" in n for n in out.notices)


def test_animated_gif_first_frame():
    frames = [Image.fromarray(np.full((150, 150), 10 * i, np.uint8)) for i in range(12)]
    frames[0] = Image.fromarray(gradient(150, 150))
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert out.format == "GIF"
    assert "Animated GIF: showing the first of 12 frames" in out.notices
    assert out.meta["frames"] == 12
    assert np.abs(out.pixels.astype(int) - gradient(150, 150)).mean() < 3


def test_gif_with_1000_frames_is_not_fully_decoded():
    frames = [Image.fromarray(np.full((130, 130), i % 256, np.uint8)) for i in range(1000)]
    frames[0] = Image.fromarray(np.full((130, 130), 77, np.uint8))
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert "Animated GIF: showing the first of 1,000 frames" in out.notices
    assert (out.pixels == 77).all()


def test_multipage_tiff_first_page():
    first = Image.fromarray(gradient())
    other = Image.fromarray(np.full((160, 200), 99, np.uint8))
    data = pil_bytes(first, "TIFF", save_all=True, append_images=[other, other])
    out = decode_image(data)
    assert "Multi-page TIFF: showing the first of 3 pages" in out.notices
    np.testing.assert_array_equal(out.pixels, gradient())


def test_blank_image_is_decoded_with_a_notice():
    out = decode_image(pil_bytes(Image.new("L", (200, 200), 40), "PNG"))
    assert (out.pixels == 40).all()
    assert any("blank" in n for n in out.notices)


def test_real_fixture_jpeg():
    out = decode_image(REAL_CXR.read_bytes(), REAL_CXR.name)
    assert out.format == "JPEG" and out.pixels.shape == (224, 224)
    assert out.pixels.std() > 20


def test_real_cxr_from_shared_data(cxr_dir):
    manifest = pd.read_csv(cxr_dir / "manifest.csv")
    row = manifest[manifest.path.str.endswith(".jpg")].iloc[0]
    out = decode_image((cxr_dir / row.path).read_bytes(), row.path)
    assert out.format == "JPEG"
    assert out.pixels.shape == (row.height, row.width)
    assert out.pixels.dtype == np.uint8 and out.pixels.std() > 10


# --------------------------------------------------------------------------- DICOM


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


def _dicom_dataset_bytes(arr, photometric, bits_stored, rle: bool) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.set_pixel_data(arr, photometric, bits_stored)
    if rle:
        ds.compress(RLELossless)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("dtype", "lo", "hi", "bits", "photometric"),
    [
        (np.uint8, 0, 255, 8, "MONOCHROME2"),
        (np.uint16, 0, 4095, 12, "MONOCHROME2"),
        (np.int16, -2000, 2000, 12, "MONOCHROME1"),
        (np.uint16, 0, 65535, 16, "MONOCHROME2"),
        (np.uint8, 0, 255, 8, "RGB"),
    ],
)
def test_rle_dicom_matches_uncompressed(dtype, lo, hi, bits, photometric):
    rng = np.random.default_rng(11)
    shape = (150, 170, 3) if photometric == "RGB" else (150, 170)
    arr = rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    arr[:40] = lo  # long runs as well as literal runs
    plain = decode_image(_dicom_dataset_bytes(arr, photometric, bits, rle=False))
    rle = decode_image(_dicom_dataset_bytes(arr, photometric, bits, rle=True))
    assert rle.meta["TransferSyntax"] == "RLE Lossless"
    np.testing.assert_array_equal(rle.pixels, plain.pixels)


def test_rle_dicom_of_one_byte_runs():
    # The worst case for a run-by-run decoder: every run is a single literal byte.
    rows, cols = 1000, 2000
    values = (np.arange(rows * cols) % 251).astype(np.uint8)
    segment = bytearray(2 * rows * cols)
    segment[1::2] = values.tobytes()  # header byte 0 = "copy the next 1 byte"
    frame = struct.pack("<16I", 1, 64, *([0] * 14)) + bytes(segment)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = RLELossless
    ds = Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    start = time.perf_counter()
    out = decode_image(buf.getvalue())
    print(f"4 MB of one-byte RLE runs decoded in {(time.perf_counter() - start) * 1000:.0f} ms")
    expected = np.floor(values.reshape(rows, cols).astype(float) * 255 / 250 + 0.5)
    np.testing.assert_array_equal(out.pixels, expected.astype(np.uint8))


def test_rgb_dicom():
    rgb = np.zeros((150, 150, 3), np.uint8)
    rgb[..., 0] = 200
    out = decode_image(make_dicom(rgb, "RGB", 8))
    assert out.pixels.shape == (150, 150)
    assert out.meta["colourfulness"] > 0.5


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


# --------------------------------------------------------------------------- refusals


def test_refuse_empty():
    assert "empty" in refused(b"", "x.png")


def test_refuse_1x1():
    msg = refused(pil_bytes(Image.new("L", (1, 1)), "PNG"))
    assert msg.startswith(
        "The image is 1 x 1 pixels; a chest X-ray needs at least 128 pixels per side"
    )


def test_refuse_just_too_small():
    assert f"at least {MIN_SIDE}" in refused(pil_bytes(Image.new("L", (300, 127)), "PNG"))
    decode_image(pil_bytes(Image.new("L", (300, 128)), "PNG"))  # the limit itself is fine


def test_refuse_extreme_aspect():
    msg = refused(pil_bytes(Image.new("L", (20000, 10)), "PNG"))
    assert "20,000 x 10" in msg and "long and thin" in msg


def test_refuse_pdf_named_png():
    assert "PDF" in refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "cxr.png")


def test_refuse_zip():
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("image.png", pil_bytes(Image.new("L", (200, 200)), "PNG"))
    assert "ZIP" in refused(buf.getvalue(), "images.zip")


def test_refuse_svg_html_xml_text():
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="512"></svg>'
    assert "SVG" in refused(svg, "x.svg")
    assert "SVG" in refused(b'<svg width="300" height="300"><rect/></svg>', "x.png")
    assert "HTML" in refused(b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "x.jpg")
    assert "XML" in refused(b'<?xml version="1.0"?><report><p>x</p></report>')
    assert "text" in refused(b"Patient has a cough.\nChest clear.\n" * 10, "note.png")
    # A text file that happens to start like a bitmap header.
    assert "text" in refused(b"BMI report: 24.1, normal range.\n", "x.bmp")


def test_refuse_random_bytes():
    data = np.random.default_rng(7).bytes(20_000)
    assert "not an image" in refused(data, "x.png")


def test_refuse_truncated_jpeg():
    data = pil_bytes(Image.fromarray(gradient(256, 256)), "JPEG", quality=90)
    assert "incomplete" in refused(data[: len(data) // 2])


def test_refuse_truncated_png():
    rng = np.random.default_rng(3)
    data = pil_bytes(Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)), "PNG")
    msg = refused(data[: len(data) // 2])
    assert "PNG" in msg and ("incomplete" in msg or "damaged" in msg)


def test_refuse_dicom_without_pixel_data():
    assert "no image" in refused(make_dicom(None, PatientName="X^Y"), "report.dcm")


def test_refuse_htj2k_dicom_that_cannot_be_decoded():
    # High-Throughput JPEG 2000 (DICOM 2023): no decoder is installed for it.
    data = make_encapsulated_dicom(HTJ2KLossless, b"\xff\x4f\xff\x51" + b"\x13" * 500)
    msg = refused(data)
    assert "High-Throughput JPEG 2000" in msg and "cannot decode" in msg


def test_refuse_jpeg_ls_dicom_with_garbage_data():
    data = make_encapsulated_dicom(JPEGLSLossless, b"\xff\xd8\xff\xf7" + b"\x13" * 500)
    assert "DICOM file is damaged" in refused(data)


@pytest.mark.parametrize("precision", [8, 12, 15])
def test_jpeg_lossless_dicom_matches_uncompressed(precision):
    # JPEG Lossless (process 14) is how many CR/DX systems store chest X-rays.
    rng = np.random.default_rng(precision)
    top = (1 << precision) - 1
    ramp = np.linspace(0, top, 150 * 180).reshape(150, 180)
    noisy = np.clip(ramp + rng.normal(0, top / 40, ramp.shape), 0, top)
    arr = np.round(noisy).astype(np.uint8 if precision == 8 else np.uint16)
    data = make_encapsulated_dicom(
        JPEGLosslessSV1, lossless_jpeg(arr, precision), 150, 180, bits_stored=precision
    )
    out = decode_image(data)
    plain = decode_image(make_dicom(arr, bits_stored=precision))
    assert out.meta["TransferSyntax"].startswith("JPEG Lossless")
    np.testing.assert_array_equal(out.pixels, plain.pixels)


def test_jpeg_frame_size_reads_every_process_and_refuses_garbage():
    img = Image.fromarray(gradient(70, 90))
    assert imaging.jpeg_frame_size(pil_bytes(img, "JPEG")) == (90, 70)
    assert imaging.jpeg_frame_size(pil_bytes(img, "JPEG", progressive=True)) == (90, 70)
    assert imaging.jpeg_frame_size(lossless_jpeg(gradient(30, 40), 8)) == (40, 30)
    jpeg_ls = b"\xff\xd8\xff\xf7" + struct.pack(">HBHHB", 11, 8, 33, 44, 1) + b"\x01\x11\x00"
    assert imaging.jpeg_frame_size(jpeg_ls) == (44, 33)
    assert imaging.jpeg_frame_size(b"\xff\xd8\xff\xda" + bytes(20)) is None  # scan first
    assert imaging.jpeg_frame_size(b"\xff\xd8\xff\xd9\xff\xc0" + bytes(20)) is None  # ended
    assert imaging.jpeg_frame_size(pil_bytes(img, "JPEG")[:4]) is None  # cut short
    assert imaging.jpeg_frame_size(pil_bytes(img, "PNG")) is None


def test_refuse_jpeg2000_dicom_with_garbage_data():
    data = make_encapsulated_dicom(JPEG2000Lossless, np.random.default_rng(5).bytes(700))
    msg = refused(data)
    assert "DICOM" in msg and ("damaged" in msg or "cannot decode" in msg)


def _claiming(frame: bytes, width: int, height: int) -> bytes:
    """``frame`` (a JPEG stream) with its frame header claiming width x height."""
    data = bytearray(frame)
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC3))
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)  # after length and precision
    return bytes(data)


def test_jpeg_baseline_dicom_decodes():
    src = gradient(150, 200)
    frame = pil_bytes(Image.fromarray(src), "JPEG", quality=95)
    out = decode_image(make_encapsulated_dicom(JPEGBaseline8Bit, frame, 150, 200, bits_stored=8))
    assert out.format == "DICOM" and out.pixels.shape == (150, 200)
    assert np.abs(out.pixels.astype(int) - src).mean() < 2


def test_refuse_jpeg_dicom_whose_frame_does_not_match_its_stated_size():
    frame = pil_bytes(Image.fromarray(gradient(200, 300)), "JPEG")
    data = make_encapsulated_dicom(JPEGBaseline8Bit, frame, 256, 256, bits_stored=8)
    assert "does not match its stated size" in refused(data)


@pytest.mark.parametrize(
    ("syntax", "encode", "side", "expected"),
    [
        (JPEGBaseline8Bit, lambda a: pil_bytes(Image.fromarray(a), "JPEG"), 9000, "81.0"),
        (JPEGLosslessSV1, lambda a: lossless_jpeg(a, 8), 20000, "400"),
    ],
    ids=["baseline", "lossless"],
)
def test_refuse_jpeg_dicom_whose_frame_claims_a_huge_size_before_decoding(
    syntax, encode, side, expected
):
    # The DICOM header says 256 x 256; the JPEG inside claims side x side (81 MP is under
    # Pillow's own bomb limit): refused from the frame header, before any decoder runs.
    frame = _claiming(encode(gradient(48, 64)), side, side)
    data = make_encapsulated_dicom(syntax, frame, bits_stored=8)
    tracemalloc.start()
    try:
        msg = refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert msg.startswith(f"The image has {expected} megapixels; the limit is 50")
    assert peak < 20 * 1024 * 1024


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


def test_refuse_non_dicom_named_dcm():
    assert "not a valid DICOM" in refused(np.random.default_rng(2).bytes(3000), "x.dcm")


def test_refuse_png_bomb_header_fast_and_small():
    data = png_header_only(60000, 60000)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        msg = refused(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert msg.startswith("The image has 3,600 megapixels; the limit is 50")
    assert peak < 20 * 1024 * 1024  # never allocated the 3.6 GB image
    print(f"60000 x 60000 PNG refused in {elapsed * 1000:.1f} ms, peak {peak / 1e6:.2f} MB")


def test_refuse_just_over_the_megapixel_limit():
    # 8,000 x 6,500 = 52 MP: under Pillow's own bomb limit, over ours.
    msg = refused(png_header_only(8000, 6500))
    assert "52.0 megapixels" in msg


def test_refuse_pillow_bomb_warning_range_even_with_warnings_as_errors():
    # 100 MP: Pillow warns (DecompressionBombWarning) rather than raising.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = refused(png_header_only(10000, 10000))
    assert msg.startswith("The image has 100 megapixels; the limit is 50")


def test_refuse_dicom_claiming_huge_size():
    data = make_dicom(gradient(lo=0, hi=4000, dtype=np.uint16), Rows=60000, Columns=60000)
    assert "3,600 megapixels" in refused(data)


def test_refuse_too_many_bytes():
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES)
    assert "MB; the limit is" in refused(data)


def test_messages_never_echo_the_file_name():
    for data in (b"%PDF-1.4", b"hello", pil_bytes(Image.new("L", (5, 5)), "PNG")):
        assert "Jane" not in refused(data, "Jane_Doe_chest.png")


def test_refuse_non_bytes():
    with pytest.raises(ImageError):
        decode_image("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- contract


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_only_image_error_escapes_even_with_warnings_as_errors():
    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    # An invalid value for a UI element makes pydicom warn while reading.
    odd = make_dicom(src, SOPInstanceUID="not-a-uid!")
    cases = [odd, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, make_dicom(src)[:-300]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in cases:
            try:
                out = decode_image(data)
            except ImageError:
                continue
            assert out.pixels.ndim == 2 and out.pixels.dtype == np.uint8


def test_truncated_images_setting_left_alone():
    data = pil_bytes(Image.fromarray(gradient(256, 256)), "JPEG")
    with pytest.raises(ImageError):
        decode_image(data[:-400])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_time_budget_aborts_slow_reads(monkeypatch):
    monkeypatch.setattr(imaging, "TIME_BUDGET_S", -1.0)
    data = pil_bytes(Image.fromarray(gradient()), "PNG")
    assert "too long" in refused(data)


def test_nothing_is_written_to_disk(monkeypatch):
    import builtins
    import os
    import tempfile

    src = gradient(lo=0, hi=4000, dtype=np.uint16)
    files = [
        pil_bytes(Image.fromarray(gradient()), "PNG"),
        pil_bytes(Image.fromarray(gradient()), "JPEG"),
        pil_bytes(Image.fromarray(src), "TIFF"),
        pil_bytes(Image.fromarray(gradient()), "GIF"),
        make_dicom(src, WindowCenter="2000", WindowWidth="4000"),
    ]
    expected = [decode_image(data).pixels for data in files]  # warm up lazy imports

    def forbidden(*args, **kwargs):
        raise AssertionError(f"file access during decoding: {args!r}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(io, "open", forbidden)
    monkeypatch.setattr(os, "open", forbidden)
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, forbidden)
    for data, pixels in zip(files, expected, strict=True):
        np.testing.assert_array_equal(decode_image(data).pixels, pixels)


def test_concurrent_callers_get_their_own_results():
    from concurrent.futures import ThreadPoolExecutor

    inputs = [
        (pil_bytes(Image.fromarray(gradient()), "PNG"), gradient()),
        (pil_bytes(Image.fromarray(255 - gradient()), "PNG"), 255 - gradient()),
        (b"%PDF-1.4", None),
    ] * 8

    def run(case):
        data, want = case
        try:
            got = decode_image(data).pixels
        except ImageError:
            return want is None
        return want is not None and np.array_equal(got, want)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(run, inputs))

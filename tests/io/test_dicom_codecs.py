"""cxrlib.io.dicom: compressed DICOM decodes, or is refused before any decoder runs.

RLE, JPEG baseline and lossless, JPEG-LS, JPEG 2000 and HTJ2K.

Fixtures are built in memory with Pillow and pydicom (nothing is written to disk).
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc

import numpy as np
import pytest
from lossless_jpeg import lossless_jpeg
from PIL import Image

from cxrlib.io.decode import decode_image
from cxrlib.io.dicom import jpeg_frame_size

pydicom = pytest.importorskip("pydicom")
from imaging_builders import (  # noqa: E402
    gradient,
    make_dicom,
    make_encapsulated_dicom,
    pil_bytes,
    refused,
)
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
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
    data = make_encapsulated_dicom(RLELossless, frame, rows, cols, bits_stored=8)
    start = time.perf_counter()
    out = decode_image(data)
    print(f"4 MB of one-byte RLE runs decoded in {(time.perf_counter() - start) * 1000:.0f} ms")
    expected = np.floor(values.reshape(rows, cols).astype(float) * 255 / 250 + 0.5)
    np.testing.assert_array_equal(out.pixels, expected.astype(np.uint8))


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
    assert jpeg_frame_size(pil_bytes(img, "JPEG")) == (90, 70)
    assert jpeg_frame_size(pil_bytes(img, "JPEG", progressive=True)) == (90, 70)
    assert jpeg_frame_size(lossless_jpeg(gradient(30, 40), 8)) == (40, 30)
    jpeg_ls = b"\xff\xd8\xff\xf7" + struct.pack(">HBHHB", 11, 8, 33, 44, 1) + b"\x01\x11\x00"
    assert jpeg_frame_size(jpeg_ls) == (44, 33)
    assert jpeg_frame_size(b"\xff\xd8\xff\xda" + bytes(20)) is None  # scan first
    assert jpeg_frame_size(b"\xff\xd8\xff\xd9\xff\xc0" + bytes(20)) is None  # ended
    assert jpeg_frame_size(pil_bytes(img, "JPEG")[:4]) is None  # cut short
    assert jpeg_frame_size(pil_bytes(img, "PNG")) is None


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

"""Builders for the io tests: images and DICOM files made in memory (never on disk).

Imported by the tests under ``tests/io/`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image

REAL_CXR = (
    Path(__file__).resolve().parents[1] / "fixtures" / "imaging" / "cxr_kermany_IM-0003-0001.jpg"
)


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

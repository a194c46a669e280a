"""The fuzz corpus of the decoder tests: one real chest X-ray saved in every format the
decoder reads, then mutated by a seeded generator (tests/io/test_imaging_fuzz.py, and the
upload fuzz test of the app). Built in memory; nothing is written to disk."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from lossless_jpeg import lossless_jpeg
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "imaging" / "cxr_kermany_IM-0003-0001.jpg"
SEED = 20261126
PER_BASE = 10  # mutants per base file per mutation family


# --------------------------------------------------------------------------- base corpus


def _save(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _dicom(
    arr: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    frame: bytes | None = None,
    transfer_syntax=ExplicitVRLittleEndian,
    **fields,
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.Modality = "DX"
    ds.PatientName = "FUZZ^PATIENT"
    if arr is not None:
        ds.set_pixel_data(arr, photometric, bits)
        if transfer_syntax == RLELossless:
            ds.compress(RLELossless)
    if frame is not None:  # an already-encoded frame (JPEG / JPEG 2000)
        meta.TransferSyntaxUID = transfer_syntax
        ds.Rows, ds.Columns = 224, 224
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
    for key, value in fields.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@lru_cache(maxsize=1)
def base_corpus() -> dict[str, bytes]:
    """Valid files of every supported kind, built from the real CXR fixture."""
    gray_im = Image.open(io.BytesIO(FIXTURE.read_bytes())).convert("L")
    gray = np.asarray(gray_im)
    g16 = gray.astype(np.uint16) * 15 + 100
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 200)])
    exif = Image.Exif()
    exif[0x0112] = 6
    other = Image.fromarray(255 - gray)
    corpus = {
        "jpeg_real": FIXTURE.read_bytes(),
        "jpeg_progressive": _save(gray_im, "JPEG", quality=70, progressive=True),
        "jpeg_exif6": _save(gray_im, "JPEG", quality=70, exif=exif),
        "png_8": _save(gray_im, "PNG"),
        "png_16": _save(Image.fromarray(g16), "PNG"),
        "png_rgba": _save(Image.fromarray(rgba, "RGBA"), "PNG"),
        "png_palette": _save(gray_im.convert("RGB").quantize(32), "PNG"),
        "tiff_raw": _save(gray_im, "TIFF"),
        "tiff_deflate": _save(gray_im, "TIFF", compression="tiff_adobe_deflate"),
        "tiff_float": _save(Image.fromarray(gray.astype(np.float32) / 3), "TIFF"),
        "tiff_pages": _save(gray_im, "TIFF", save_all=True, append_images=[other]),
        "bmp": _save(gray_im, "BMP"),
        "gif_anim": _save(gray_im, "GIF", save_all=True, append_images=[other, gray_im]),
        "webp": _save(gray_im, "WEBP", quality=70),
        "dicom_window": _dicom(g16, WindowCenter="2000", WindowWidth="3000"),
        "dicom_mono1_rescale": _dicom(
            g16, "MONOCHROME1", RescaleSlope="2", RescaleIntercept="-1024"
        ),
        "dicom_multiframe": _dicom(np.stack([g16, g16 // 2])),
        "dicom_rle": _dicom(g16, transfer_syntax=RLELossless),
        "dicom_jpeg": _dicom(
            frame=_save(gray_im, "JPEG", quality=70), transfer_syntax=JPEGBaseline8Bit
        ),
        "dicom_jpeg_lossless": _dicom(
            frame=lossless_jpeg(gray, 8), transfer_syntax=JPEGLosslessSV1
        ),
        "dicom_j2k": _dicom(
            frame=_save(gray_im, "JPEG2000", no_jp2=True), transfer_syntax=JPEG2000Lossless
        ),
    }
    return corpus


# --------------------------------------------------------------------------- mutations

Mutator = Callable[[bytes, np.random.Generator], bytes]
_SMASH_VALUES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 60000, 0x7FFFFFFF, 0xFFFFFFFF)


def flip_anywhere(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for pos in rng.integers(0, len(buf), int(rng.integers(1, 17))):
        buf[pos] = int(rng.integers(0, 256))
    return bytes(buf)


def flip_header(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    end = min(len(buf), 1024)
    for pos in rng.integers(0, end, int(rng.integers(1, 5))):
        buf[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def smash_integer(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite a 2- or 4-byte field near the start (sizes, offsets, counts)."""
    buf = bytearray(data)
    width = int(rng.choice([2, 4]))
    pos = int(rng.integers(0, min(len(buf), 1024) - width))
    value = int(rng.choice(_SMASH_VALUES)) & ((1 << (8 * width)) - 1)
    order = "little" if rng.random() < 0.5 else "big"
    buf[pos : pos + width] = value.to_bytes(width, order)
    return bytes(buf)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def splice(data: bytes, rng: np.random.Generator) -> bytes:
    """Insert random bytes, or repeat / delete a slice."""
    pos = int(rng.integers(0, len(data)))
    size = int(rng.integers(1, 2048))
    choice = rng.integers(0, 3)
    if choice == 0:
        return data[:pos] + rng.bytes(size) + data[pos:]
    if choice == 1:
        return data[:pos] + data[pos : pos + size] * int(rng.integers(2, 6)) + data[pos:]
    return data[:pos] + data[pos + size :]


MUTATORS: dict[str, Mutator] = {
    "flip_anywhere": flip_anywhere,
    "flip_header": flip_header,
    "smash_integer": smash_integer,
    "truncate": truncate,
    "splice": splice,
}

_MAGICS = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"\x00" * 128 + b"DICM",
    b"%PDF-1.4",
    b"<svg ",
)


def family_inputs(family: str) -> Iterator[tuple[str, bytes, str]]:
    """Yield (label, data, filename) for one family, deterministically."""
    rng = np.random.default_rng([SEED, sum(family.encode())])
    if family == "random_bytes":
        for i in range(150):
            yield f"random#{i}", rng.bytes(int(rng.integers(0, 4096))), ""
    elif family == "magic_prefixed":
        for i in range(150):
            magic = _MAGICS[i % len(_MAGICS)]
            name = "x.dcm" if i % 3 == 0 else ""
            yield f"magic#{i}", magic + rng.bytes(int(rng.integers(0, 2048))), name
    else:
        mutate = MUTATORS[family]
        for key, data in base_corpus().items():
            name = "x.dcm" if key.startswith("dicom") else ""
            for i in range(PER_BASE):
                yield f"{key}#{i}", mutate(data, rng), name


FAMILIES = ["random_bytes", "magic_prefixed", *MUTATORS]

"""Fuzzing cxrlib.io.decode.decode_image with malformed inputs.

Every input must either decode to a valid 2-D uint8 image with sides of at least
MIN_SIDE, or raise ImageError; any other outcome fails. The corpus is built in
memory from one real chest X-ray (tests/fixtures/imaging) saved as PNG, JPEG,
TIFF, BMP, GIF, WebP and several DICOM flavours, then mutated by a seeded
generator (bytes flipped, header integers smashed, cut short, spliced), plus
random bytes with and without image magic numbers. Hypothesis adds a
derandomized pass. Nothing is written to disk.

Timing and memory are printed, not asserted (only a loose memory bound).
"""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lossless_jpeg import lossless_jpeg
from PIL import Image

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image
from cxrlib.io.decoded import DecodedImage
from cxrlib.io.limits import MIN_SIDE

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "imaging" / "cxr_kermany_IM-0003-0001.jpg"
)
SEED = 20261126
PER_BASE = 10  # mutants per base file per mutation family
MEMORY_BOUND = 512 * 1024 * 1024  # loose sanity bound on traced peak memory per input


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


def check_one(data: bytes, filename: str) -> str | None:
    """Run one input; return None if refused properly, "" if decoded properly, else why."""
    try:
        out = decode_image(data, filename)
    except ImageError as exc:
        return None if str(exc) else "ImageError without a message"
    except BaseException as exc:  # noqa: BLE001 - exactly what the contract forbids
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(out, DecodedImage):
        return f"returned {type(out).__name__}"
    px = out.pixels
    if not isinstance(px, np.ndarray) or px.dtype != np.uint8 or px.ndim != 2:
        return f"bad pixels {getattr(px, 'dtype', None)} {getattr(px, 'shape', None)}"
    if min(px.shape) < MIN_SIDE:
        return f"too small {px.shape}"
    if not isinstance(out.notices, list) or not isinstance(out.meta, dict):
        return "bad notices/meta"
    return ""


def run_family(family: str) -> dict:
    failures: list[str] = []
    times: list[float] = []
    peaks: list[int] = []
    accepted = 0
    worst = ""
    tracemalloc.start()
    try:
        for label, data, name in family_inputs(family):
            tracemalloc.reset_peak()
            start = time.perf_counter()
            problem = check_one(data, name)
            elapsed = time.perf_counter() - start
            peaks.append(tracemalloc.get_traced_memory()[1])
            if times and elapsed > max(times):
                worst = label
            times.append(elapsed)
            if problem:
                failures.append(f"{label}: {problem}")
            accepted += problem == ""
    finally:
        tracemalloc.stop()
    return {
        "n": len(times),
        "accepted": accepted,
        "max_ms": 1000 * max(times),
        "median_ms": 1000 * float(np.median(times)),
        "worst": worst,
        "peak_mb": max(peaks) / 1e6,
        "failures": failures,
    }


# --------------------------------------------------------------------------- tests


def test_corpus_is_large_enough():
    total = sum(1 for family in FAMILIES for _ in family_inputs(family))
    assert total >= 1000
    # Every base file is itself valid.
    for key, data in base_corpus().items():
        out = decode_image(data, "x.dcm" if key.startswith("dicom") else "")
        assert out.pixels.shape[0] >= MIN_SIDE, key


@pytest.mark.parametrize("family", FAMILIES)
def test_fuzz_family(family, capsys):
    stats = run_family(family)
    with capsys.disabled():
        print(
            f"\n[fuzz] {family:15s} inputs={stats['n']:4d} decoded={stats['accepted']:4d} "
            f"median={stats['median_ms']:.1f} ms max={stats['max_ms']:.1f} ms "
            f"({stats['worst']}) peak_traced={stats['peak_mb']:.1f} MB (tracemalloc on)"
        )
    assert not stats["failures"], "\n".join(stats["failures"][:10])
    assert stats["peak_mb"] * 1e6 < MEMORY_BOUND


@settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    base=st.sampled_from(sorted(base_corpus())),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=8)),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_hypothesis_edits(base, edits, cut):
    data = bytearray(base_corpus()[base])
    for pos, chunk in edits:
        pos %= len(data)
        data[pos : pos + len(chunk)] = chunk
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    problem = check_one(bytes(data), "x.dcm" if base.startswith("dicom") else "")
    assert not problem, problem


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(data=st.binary(max_size=4096), name=st.sampled_from(["", "x.png", "x.dcm", "x.jpg"]))
def test_hypothesis_random_bytes(data, name):
    problem = check_one(data, name)
    assert not problem, problem

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

import time
import tracemalloc

import numpy as np
import pytest
from fuzz_corpus import FAMILIES, base_corpus, family_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image
from cxrlib.io.decoded import DecodedImage
from cxrlib.io.limits import MIN_SIDE

MEMORY_BOUND = 512 * 1024 * 1024  # loose sanity bound on traced peak memory per input


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

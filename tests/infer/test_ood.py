"""The out-of-distribution gate (cxrlib.infer.gate): real X-rays in, other pictures out."""

from __future__ import annotations

import csv
import json
import re
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cxrlib.infer import gate as ood

GATE_PATH = ood.DEFAULT_GATE_PATH
PREFIX = "This does not look like a frontal chest X-ray"


@pytest.fixture(scope="module")
def gate() -> ood.OODGate:
    if not GATE_PATH.exists():
        pytest.fail(f"committed gate missing: {GATE_PATH} (run python -m cxrlib.train.gate fit)")
    return ood.load_gate(GATE_PATH)


@pytest.fixture(scope="module")
def test_cxrs(cxr_dir) -> list[np.ndarray]:
    """120 test-split X-rays, spread over the whole split (every k-th row)."""
    with open(cxr_dir / "manifest.csv", newline="") as fh:
        rows = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    picks = rows[:: len(rows) // 120][:120]
    images = [cv2.imread(str(cxr_dir / p), cv2.IMREAD_GRAYSCALE) for p in picks]
    assert all(im is not None for im in images)
    return images


def _chroma(rgb: np.ndarray) -> float:
    rgb = rgb.astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)


def _page(h: int, w: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    im = Image.new("L", (w, h), 245)
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=size)
    words = "the patient was seen today chest pain report normal findings follow up".split()
    for y in range(10, h - size, int(size * 1.5)):
        d.text((12, y), " ".join(rng.choice(words, 12)), fill=20, font=font)
    return np.asarray(im)


def _negatives() -> list[tuple[str, np.ndarray, float | None]]:
    """Non-X-rays made here (independent of ood.make_negatives)."""
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(123)
    out: list[tuple[str, np.ndarray, float | None]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colour = {n: getattr(sd, n)() for n in ("chelsea", "astronaut", "coffee", "rocket")}
        colour.update(zip(("china", "flower"), load_sample_images().images))
        grey = {n: getattr(sd, n)() for n in ("camera", "coins", "moon", "page", "brick", "clock")}
    for name, rgb in colour.items():
        out.append((name, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), _chroma(rgb)))
        h, w = rgb.shape[:2]
        crop = rgb[h // 4 : h // 4 + h // 2, w // 3 : w // 3 + w // 2]
        out.append((name + "_crop", cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), _chroma(crop)))
    for name, g in grey.items():
        out.append((name, g, 0.0))
        out.append((name + "_small", cv2.resize(g, (150, 130)), None))
    for i, (h, w, size) in enumerate([(800, 600, 16), (400, 700, 22), (1000, 800, 12)]):
        out.append((f"textpage{i}", _page(h, w, size, i), None))
    for i, (h, w) in enumerate([(600, 1000), (768, 1024)]):
        ui = Image.new("L", (w, h), 235)
        d = ImageDraw.Draw(ui)
        d.rectangle([0, 0, w, 50], fill=60)
        d.rectangle([0, 50, 200, h], fill=200)
        font = ImageFont.load_default(size=14)
        for j in range(6):
            y = 80 + 70 * j
            d.rectangle([240, y, 240 + 300 + 40 * i, y + 40], outline=90, fill=250)
            d.text((250, y + 10), f"Button {j}  Settings  Upload", fill=10, font=font)
        out.append((f"ui{i}", np.asarray(ui), None))
    for i, (h, w) in enumerate([(256, 256), (512, 384), (300, 900)]):
        out.append((f"uniform{i}", rng.integers(0, 256, (h, w), dtype=np.uint8), None))
        gauss = np.clip(rng.normal(128, 40, (h, w)), 0, 255).astype(np.uint8)
        out.append((f"gauss{i}", gauss, 0.0))
        yy, xx = np.mgrid[0:h, 0:w]
        out.append((f"hgradient{i}", (255 * xx / (w - 1)).astype(np.uint8), None))
        out.append((f"vgradient{i}", (255 * yy / (h - 1)).astype(np.uint8), None))
        cell = 8 * (i + 1)
        out.append((f"checker{i}", (((yy // cell + xx // cell) % 2) * 255).astype(np.uint8), None))
        out.append((f"flat{i}", np.full((h, w), 60 * i + 40, np.uint8), None))
        shapes = Image.new("L", (w, h), 200)
        d = ImageDraw.Draw(shapes)
        for _ in range(8):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            d.ellipse([x0, y0, x0 + 40, y0 + 30], fill=int(rng.integers(0, 150)))
        out.append((f"shapes{i}", np.asarray(shapes), None))
    return out


# --------------------------------------------------------------------------- committed gate


def test_committed_gate_accepts_real_test_xrays(gate, test_cxrs) -> None:
    verdicts = [gate.assess(g) for g in test_cxrs]
    rate = np.mean([v.is_cxr for v in verdicts])
    assert len(test_cxrs) >= 100
    assert rate >= 0.97, f"only {rate:.1%} of real test X-rays accepted"
    for v in verdicts:
        assert np.isfinite(v.score) and v.reason
        if v.is_cxr:
            assert v.score <= 1.0 and v.kind == "cxr"


def test_committed_gate_rejects_negatives_with_reasons(gate) -> None:
    negs = _negatives()
    assert len(negs) >= 50
    verdicts = {name: gate.assess(g, c) for name, g, c in negs}
    rejected = [n for n, v in verdicts.items() if not v.is_cxr]
    rate = len(rejected) / len(negs)
    accepted = sorted(set(verdicts) - set(rejected))
    assert rate >= 0.95, f"only {rate:.1%} rejected; accepted: {accepted}"
    for name in rejected:
        v = verdicts[name]
        assert v.reason.startswith(PREFIX), (name, v.reason)
        assert v.kind in ood.REASONS and v.kind != "cxr"
        assert np.isfinite(v.score)
    # Specific reasons where the rule is clear-cut.
    for name in ("chelsea", "astronaut", "china", "flower", "coffee_crop"):
        assert verdicts[name].kind == "colour", (name, verdicts[name])
        assert "colour photograph" in verdicts[name].reason
    for name in ("textpage0", "textpage1", "textpage2"):
        assert verdicts[name].kind == "text" and "mostly text" in verdicts[name].reason
    for name in ("uniform0", "gauss1", "uniform2"):
        assert verdicts[name].kind == "noise", (name, verdicts[name])
    for name in ("flat0", "flat1", "flat2"):
        assert verdicts[name].kind == "blank", (name, verdicts[name])


def test_cat_is_rejected_even_in_grey(gate) -> None:
    import skimage.data as sd

    cat = cv2.cvtColor(sd.chelsea(), cv2.COLOR_RGB2GRAY)
    v = gate.assess(cat)  # no colour information: the image itself must fail
    assert not v.is_cxr and v.reason.startswith(PREFIX)


def test_turned_and_inverted_xrays_are_rejected_as_such(gate, test_cxrs) -> None:
    sample = [g for g, v in ((g, gate.assess(g)) for g in test_cxrs[::4]) if v.is_cxr]
    assert len(sample) >= 25
    for k, want in ((1, "rotated"), (2, "rotated"), (3, "rotated")):
        turned = [gate.assess(np.ascontiguousarray(np.rot90(g, k))) for g in sample]
        right = np.mean([not v.is_cxr and v.kind == want for v in turned])
        assert right >= 0.9, f"rot{90 * k}: {right:.0%} rejected as {want}"
        assert all("rotated" in v.reason for v in turned if v.kind == "rotated")
    inverted = [gate.assess(255 - g) for g in sample]
    right = np.mean([not v.is_cxr and v.kind == "inverted" for v in inverted])
    assert right >= 0.9, f"inverted: {right:.0%}"
    assert all("inverted" in v.reason for v in inverted if v.kind == "inverted")
    # Mirror images (left-right flips) are in scope.
    mirrored = np.mean([gate.assess(np.ascontiguousarray(g[:, ::-1])).is_cxr for g in sample])
    assert mirrored >= 0.9


def test_odd_inputs_give_finite_scores(gate) -> None:
    rng = np.random.default_rng(0)
    tiny_contrast = (128 + (rng.random((300, 240)) > 0.5)).astype(np.uint8)
    cases = {
        "constant": np.full((256, 256), 128, np.uint8),
        "black": np.zeros((64, 64), np.uint8),
        "tiny_contrast": tiny_contrast,
        "one_pixel": np.zeros((1, 1), np.uint8),
        "two_by_two": np.array([[0, 255], [255, 0]], np.uint8),
        "thin_strip": rng.integers(0, 256, (3, 1000), dtype=np.uint8),
        "channel_axis": np.full((50, 60, 1), 7, np.uint8),
    }
    for name, im in cases.items():
        v = gate.assess(im)
        assert np.isfinite(v.score), name
        assert not v.is_cxr, name
        assert v.reason.startswith(PREFIX), name
    for name in ("constant", "black", "tiny_contrast", "one_pixel", "channel_axis"):
        assert gate.assess(cases[name]).kind == "blank", name


def test_bad_inputs_raise(gate) -> None:
    with pytest.raises(ValueError):
        gate.assess(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError):
        gate.assess(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError):
        gate.assess(np.zeros((0, 10), np.uint8))


def test_module_assess_uses_committed_gate(gate, test_cxrs) -> None:
    g = test_cxrs[0]
    assert ood.assess(g) == gate.assess(g)
    assert ood.assess(g, colourfulness=0.5).kind == "colour"
    assert ood.assess(g, colourfulness=0.0) == gate.assess(g)


def test_committed_gate_files_are_small_and_documented() -> None:
    assert GATE_PATH.stat().st_size < 3 * 1024 * 1024
    meta = json.loads(GATE_PATH.with_suffix(".json").read_text())
    for key in ("threshold", "orient_min", "seed", "command", "fitted_on", "val_accept_rate"):
        assert key in meta, key
    # Fitted with the command of its day (cxrlib.ood), now `python -m cxrlib.train.gate fit`.
    assert re.match(r"python -m cxrlib\.(ood|train\.gate) fit ", meta["command"]), meta["command"]
    assert meta["val_accept_rate"] >= 0.99


def test_load_gate_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        ood.load_gate(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError):
        ood.load_gate(bad)
    # A gate written in another format is refused by name, not misread.
    later = tmp_path / "later.npz"
    later.write_bytes(GATE_PATH.read_bytes())
    meta = json.loads(GATE_PATH.with_suffix(".json").read_text())
    later.with_suffix(".json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(ValueError, match="unsupported gate format 2"):
        ood.load_gate(later)
    later.with_suffix(".json").write_text(json.dumps(meta))
    assert ood.load_gate(later).threshold == ood.load_gate(GATE_PATH).threshold

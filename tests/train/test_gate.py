"""cxrlib.train.gate: fitting the input gate, saving it, and its command line."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.negatives import make_negatives
from cxrlib.infer.gate import load_gate
from cxrlib.train import gate as gate_cli
from cxrlib.train.gate import VAL_TARGET, fit_gate, save_gate


def _synthetic_xray(rng: np.random.Generator, h: int = 160, w: int = 150) -> np.ndarray:
    """Bright body, two dark 'lungs', a bright 'spine' and a few 'ribs', with jitter."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w), 170.0, np.float32) + rng.normal(0, 4)
    cy = h * rng.uniform(0.42, 0.5)
    for side in (-1, 1):
        cx = w / 2 + side * w * rng.uniform(0.2, 0.24)
        ry, rx = h * rng.uniform(0.28, 0.33), w * rng.uniform(0.13, 0.16)
        img -= 90 * np.exp(-((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) ** 2))
    img += 40 * np.exp(-(((xx - w / 2) / (w * 0.04)) ** 2))
    img += 12 * np.sin(yy / h * 2 * np.pi * rng.uniform(5, 7)) * (yy < 0.8 * h)
    img += rng.normal(0, 3, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_fit_save_load_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    train = [_synthetic_xray(rng) for _ in range(60)]
    val = [_synthetic_xray(rng) for _ in range(30)]
    held_out = [_synthetic_xray(rng) for _ in range(20)]
    fitted = fit_gate(train, val, n_thumb=8, n_hog=6, meta={"seed": 0, "command": "test"})
    path = save_gate(fitted, tmp_path / "gate.npz")
    assert path.exists() and path.with_suffix(".json").exists()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["seed"] == 0 and meta["n_train"] == 60 and meta["threshold"] > 0
    assert meta["val_accept_rate"] >= VAL_TARGET

    loaded = load_gate(path)
    for g in held_out[:5]:
        assert loaded.assess(g).score == pytest.approx(fitted.assess(g).score, rel=1e-3, abs=1e-4)
        assert loaded.assess(g).is_cxr == fitted.assess(g).is_cxr
    accepted = np.mean([loaded.assess(g).is_cxr for g in held_out])
    assert accepted >= 0.8
    noise = rng.integers(0, 256, (160, 150), dtype=np.uint8)
    assert not loaded.assess(noise).is_cxr
    upside_down = loaded.assess(np.ascontiguousarray(held_out[0][::-1]))
    assert not upside_down.is_cxr
    assert not loaded.assess(np.full((100, 100), 9, np.uint8)).is_cxr


def test_fit_needs_enough_images() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError):
        fit_gate([_synthetic_xray(rng) for _ in range(3)], [_synthetic_xray(rng)])


def _synthetic_set(folder: Path) -> None:
    """A manifest of synthetic X-rays: 60 train, 30 val, 10 test."""
    rng = np.random.default_rng(2)
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, split in enumerate(["train"] * 60 + ["val"] * 30 + ["test"] * 10):
        cv2.imwrite(str(folder / "images" / f"{i}.png"), _synthetic_xray(rng))
        rows.append({"path": f"images/{i}.png", "split": split})
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "split"])
        writer.writeheader()
        writer.writerows(rows)


def test_command_line_fits_and_records_its_command(tmp_path, capsys) -> None:
    data, out = tmp_path / "cxr", tmp_path / "gate.npz"
    _synthetic_set(data)
    argv = ["fit", "--data", str(data), "--lungs", "", "--out", str(out), "--n-thumb", "8"]
    assert gate_cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_train"] == 60 and printed["n_val"] == 30
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "python -m cxrlib.train.gate " + shlex.join(argv)
    assert meta["val_accept_rate"] >= VAL_TARGET and meta["n_thumb"] == 8
    # The fitted gate reads back and rejects most of the made negatives.
    gate = load_gate(out)
    grays = [
        (im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), c)
        for _, im, c in make_negatives(1)
    ]
    assert np.mean([not gate.assess(g, c).is_cxr for g, c in grays]) > 0.5

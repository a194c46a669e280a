"""cxrlib.train.segmenter: augmenting image/mask pairs, the training loop and its command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from lung_fixtures import LUNG_FIXTURES, fixture_pairs

from cxrlib.infer.lungs import LungSegmenter, dice, load_segmenter
from cxrlib.train import segmenter
from cxrlib.train.architectures import build_unet
from cxrlib.train.segmenter import augment, inference_ms


def test_augment_moves_image_and_mask_together() -> None:
    img = np.full((64, 64), 40, np.uint8)
    img[16:40, 10:30] = 220
    mask = np.zeros((64, 64), np.float32)
    mask[16:40, 10:30] = 1
    rng = np.random.default_rng(1)
    moved = 0
    for _ in range(10):
        a_img, a_mask = augment(img, mask, rng)
        assert a_img.dtype == np.uint8 and a_img.shape == img.shape
        assert a_mask.min() >= 0 and a_mask.max() <= 1
        bright = a_img > (int(a_img.max()) + int(a_img.min())) / 2
        assert dice(bright, a_mask > 0.5) > 0.85
        moved += dice(a_mask > 0.5, mask > 0.5) < 0.99
    assert moved >= 5  # the geometry really changes


def test_inference_ms_times_a_segmentation_not_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    seg = LungSegmenter(build_unet(32, base_filters=4, depth=2), {"preprocess": {"size": 32}})
    passes: list[int] = []
    real = seg.forward
    monkeypatch.setattr(seg, "forward", lambda batch: passes.append(len(batch)) or real(batch))
    gray = np.random.default_rng(0).integers(0, 255, (48, 40), dtype=np.uint8)
    assert inference_ms(seg, gray, repeats=3) >= 0
    assert passes == [1] * 4  # the warm-up and every timed call ran the U-Net


def test_train_one_epoch_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rows = []
    files = sorted(LUNG_FIXTURES.glob("*_image.png"))
    for i in range(8):
        src = files[i % len(files)]
        split = "train" if i < 6 else ("val" if i == 6 else "test")
        shutil.copy(src, data / "images" / f"{i}.png")
        shutil.copy(src.with_name(src.name.replace("_image", "_mask")), data / "masks" / f"{i}.png")
        rows.append(
            {
                "image": f"images/{i}.png",
                "mask": f"masks/{i}.png",
                "source": "v7labs_ieee8023",
                "split": split,
            }
        )
    with open(data / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    out = tmp_path / "models"
    meta = segmenter.train(
        data, out, epochs=1, size=32, base_filters=4, depth=2, batch_size=4, seed=0, verbose=0
    )
    assert meta["epochs_run"] == 1 and meta["n_pairs"] == {"train": 6, "val": 1, "test": 1}
    assert np.isfinite(meta["history"]["loss"][0])
    saved = json.loads((out / "lung_segmenter.json").read_text())
    for key in ("size", "preprocess", "thresholds", "seed", "history", "train_seconds", "dice"):
        assert key in saved
    assert set(saved["dice"]) == {"val", "test"}
    assert "v7labs_ieee8023" in saved["dice"]["test"]["per_source"]
    seg = load_segmenter(out / "lung_segmenter.keras")
    assert seg.size == 32
    mask = seg.segment(fixture_pairs()[0][0])
    assert mask.shape == (128, 128) and mask.dtype == bool
    # The evaluate subcommand scores the trained model per source.
    capsys.readouterr()
    model = str(out / "lung_segmenter.keras")
    assert (
        segmenter.main(["evaluate", "--data", str(data), "--split", "test", "--model", model]) == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("test: Dice ") and "v7labs_ieee8023" in printed


def test_command_line_names_its_new_home(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        segmenter.main(["--help"])
    text = capsys.readouterr().out
    assert "python -m cxrlib.train.segmenter" in text and "train" in text and "evaluate" in text

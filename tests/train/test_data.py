"""cxrlib.train.data: manifests, geometry loading and the lung-box cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrlib.core.errors import ManifestError
from cxrlib.infer.preprocess import PreprocessConfig, to_geometry
from cxrlib.train import data


class BrightBoxSegmenter:
    """Stands in for the lung segmenter: the 'lungs' are the pixels above 100."""

    meta = {"weights_sha256": "fake"}

    def __init__(self) -> None:
        self.seen = 0

    def frames(self, grays, margin: float) -> list:
        self.seen += len(grays)
        out = []
        for g in grays:
            ys, xs = np.nonzero(g > 100)
            box = None if ys.size == 0 else (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
            out.append((box, g > 100))
        return out


@pytest.fixture()
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    files = []
    for i in range(3):
        img = np.full((90, 120), 20, np.uint8)
        img[10 + i : 70, 20 : 100 - i] = 150 + 20 * i
        f = tmp_path / f"im{i}.png"
        cv2.imwrite(str(f), img)
        files.append(str(f))
    dark = tmp_path / "dark.png"
    cv2.imwrite(str(dark), np.full((50, 50), 30, np.uint8))
    return files + [str(dark)]


def test_read_manifest_resolves_paths_and_checks_labels(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label,split\na.png,covid,train\nb.png,normal,val\n")
    df = data.read_manifest(tmp_path / "m.csv", split="val")
    assert list(df["y"]) == [1] and df["file"][0] == str((tmp_path / "b.png").resolve())
    assert list(df["source"]) == ["unknown"]
    (tmp_path / "bad.csv").write_text("path,label\na.png,flu\n")
    with pytest.raises(ManifestError, match="flu"):
        data.read_manifest(tmp_path / "bad.csv")


def test_lung_boxes_are_found_once_and_cached(images: list[str]) -> None:
    seg = BrightBoxSegmenter()
    boxes = data.lung_frames(images, 0.0, seg)[0]
    assert boxes[:3] == [(10, 70, 20, 100), (11, 70, 20, 99), (12, 70, 20, 98)]
    assert boxes[3] is None and seg.seen == 4
    again = data.lung_frames(images[::-1], 0.0, seg)[0]  # any order, any subset: from the cache
    assert again == boxes[::-1] and seg.seen == 4
    data.lung_frames(images, 0.1, seg)  # another margin is another cache
    assert seg.seen == 8


def test_load_geometry_crops_to_the_lungs(images: list[str], monkeypatch) -> None:
    seg = BrightBoxSegmenter()
    cfg = PreprocessConfig(size=32, contrast="none", lung_crop=True, lung_margin=0.0)
    arr = data.load_geometry(images, cfg, segmenter=seg)
    assert arr.shape == (4, 32, 32) and arr.dtype == np.uint8
    for i in range(3):  # only the bright 'lung' box reaches the model
        assert arr[i].min() == 150 + 20 * i
    whole = to_geometry(data.load_gray(images[3]), cfg)  # no lungs: the whole image
    np.testing.assert_array_equal(arr[3], whole)
    plain = data.load_geometry(images, PreprocessConfig(size=32, contrast="none"))
    assert plain[0].min() == 20  # without lung_crop the dark surround stays
    np.testing.assert_array_equal(data.load_geometry(images, cfg, segmenter=seg), arr)
    assert seg.seen == 4  # the second call came from the cache
    # ... without reading an image; another segmenter (weights hash) is another entry.
    monkeypatch.setattr(data, "load_gray", lambda f: pytest.fail(f"{f} read again"))
    np.testing.assert_array_equal(data.load_geometry(images, cfg, segmenter=seg), arr)
    other = BrightBoxSegmenter()
    other.meta = {"weights_sha256": "other"}
    with pytest.raises(pytest.fail.Exception, match="read again"):
        data.load_geometry(images, cfg, segmenter=other)


def test_lung_masks_are_cached_with_the_boxes(images: list[str]) -> None:
    seg = BrightBoxSegmenter()
    boxes, masks = data.lung_frames(images, 0.0, seg)
    assert seg.seen == 4 and boxes[0] == (10, 70, 20, 100)
    assert masks[0].shape == (96, 96) and masks[0].dtype == bool
    assert 0.4 < masks[0].mean() < 0.5  # the bright 60 x 80 box in a 90 x 120 image
    assert not masks[3].any()
    again_boxes, again = data.lung_frames(images[::-1], 0.0, seg)
    assert seg.seen == 4 and again_boxes == boxes[::-1]
    for a, b in zip(again, masks[::-1]):
        np.testing.assert_array_equal(a, b)


def test_lung_crop_follows_exif_rotation(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    stored = np.full((60, 120), 20, np.uint8)  # wide as stored; tall once EXIF-rotated
    stored[5:25, 10:110] = 200
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    f = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(f, exif=exif, quality=95)
    assert data.load_gray(f).shape == (120, 60)  # what training and evaluation read
    # Cropped to the box found on the rotated image: all lung. Read in the stored
    # orientation, the box would land on the dark surround instead.
    cfg = PreprocessConfig(size=40, contrast="none", lung_crop=True, lung_margin=0.0)
    seg = BrightBoxSegmenter()
    geo = data.load_geometry([str(f)], cfg, cache=False, segmenter=seg)[0]
    assert geo.min() > 100


def test_stratified_sample_keeps_every_column_and_spreads_over_groups():
    df = pd.DataFrame(
        {
            "source": ["a"] * 10 + ["b"] * 10 + ["b"] * 2,
            "label": ["x"] * 10 + ["x"] * 10 + ["y"] * 2,
            "file": [f"f{i}" for i in range(22)],
            "y": [0] * 20 + [1] * 2,
        }
    )
    out = data.stratified_sample(df, 9, seed=1)
    assert list(out.columns) == list(df.columns)
    # Three groups, 9 // 3 = 3 each; the group of two gives both.
    assert out.groupby(["source", "label"]).size().to_dict() == {
        ("a", "x"): 3,
        ("b", "x"): 3,
        ("b", "y"): 2,
    }
    assert out["file"].is_unique and set(out["file"]) <= set(df["file"])
    assert list(data.stratified_sample(df, 9, seed=1)["file"]) == list(out["file"])  # seeded
    assert data.stratified_sample(df, None) is df and data.stratified_sample(df, 22) is df
    # More groups than images: still at most that many.
    assert len(data.stratified_sample(df, 2)) == 2

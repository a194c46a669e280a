"""Lung segmenter at inference: mask helpers, loading, and the committed model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from lung_fixtures import fixture_pairs

from cxrlib.core.errors import ModelError
from cxrlib.infer import lungs

TESTS = Path(__file__).resolve().parents[1]
COMMITTED = TESTS.parent / "models" / "lung_segmenter.keras"


@pytest.fixture(scope="module")
def committed() -> lungs.LungSegmenter:
    if not COMMITTED.exists():
        pytest.skip(f"committed segmenter not found at {COMMITTED}")
    return lungs.load_segmenter(COMMITTED)


# --------------------------------------------------------------------------- helpers


def test_dice_known_values() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert lungs.dice(a, b) == 1.0  # both empty
    a[0, :] = True  # 4 pixels
    assert lungs.dice(a, a) == 1.0
    assert lungs.dice(a, b) == 0.0
    b[0, :2] = True  # 2 pixels, both inside a
    assert lungs.dice(a, b) == pytest.approx(2 * 2 / 6)
    b[1, :2] = True  # 2 more, outside a
    assert lungs.dice(a, b) == pytest.approx(2 * 2 / 8)
    with pytest.raises(ValueError):
        lungs.dice(a, np.zeros((3, 3), bool))


def test_erase_lungs_and_lungs_only() -> None:
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    mask = np.zeros_like(gray, bool)
    mask[1:4, 2:5] = True
    mean = np.uint8(round(gray.mean()))
    before = gray.copy()

    erased = lungs.erase_lungs(gray, mask)
    assert erased.dtype == np.uint8 and erased.shape == gray.shape
    assert np.all(erased[mask] == mean)
    np.testing.assert_array_equal(erased[~mask], gray[~mask])

    only = lungs.lungs_only(gray, mask)
    assert np.all(only[~mask] == mean)
    np.testing.assert_array_equal(only[mask], gray[mask])
    np.testing.assert_array_equal(gray, before)  # inputs untouched

    with pytest.raises(ValueError):
        lungs.erase_lungs(gray, mask[:5])


def test_crop_box_is_the_lung_bounding_box_plus_margin() -> None:
    mask = np.zeros((100, 200), bool)
    mask[20:60, 30:90] = True
    assert lungs.crop_box(mask, margin=0) == (20, 60, 30, 90)
    assert lungs.crop_box(mask, margin=0.1) == (10, 70, 10, 110)
    assert lungs.crop_box(mask, margin=0.5) == (0, 100, 0, 190)
    assert lungs.crop_box(np.zeros((7, 9), bool), margin=0.05, min_area=0) == (0, 7, 0, 9)


def test_crop_box_needs_enough_lung() -> None:
    mask = np.zeros((100, 200), bool)
    mask[20:60, 30:90] = True  # 12% of the image
    assert lungs.crop_box(mask, margin=0.1) == (10, 70, 10, 110)
    assert lungs.crop_box(mask, margin=0.1, min_area=0.2) is None
    assert lungs.crop_box(np.zeros((50, 50), bool), margin=0.1) is None


def test_postprocess_keeps_two_largest_and_fills_holes() -> None:
    prob = np.zeros((60, 60), np.float32)
    prob[5:50, 5:25] = 0.9  # left lung
    prob[20:25, 10:15] = 0.1  # a hole inside it
    prob[5:45, 35:55] = 0.8  # right lung
    prob[55:58, 55:58] = 0.9  # small blob: third component
    out = lungs.postprocess(prob, threshold=0.5)
    assert out.dtype == bool
    assert out[22, 12]  # hole filled
    assert not out[56, 56]  # blob dropped
    assert out[10, 10] and out[10, 40]
    assert not lungs.postprocess(np.zeros((5, 5)), 0.5).any()


def test_load_segmenter_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        lungs.load_segmenter(tmp_path / "nope.keras")


# --------------------------------------------------------------------------- committed model


def test_segment_blank_and_noise(committed: lungs.LungSegmenter) -> None:
    rng = np.random.default_rng(0)
    for gray in (
        np.zeros((50, 80), np.uint8),
        np.full((300, 200), 255, np.uint8),
        rng.integers(0, 256, (97, 131), dtype=np.uint8),
        np.zeros((1, 1), np.uint8),
    ):
        mask = committed.segment(gray)
        assert mask.dtype == bool and mask.shape == gray.shape
    assert committed.segment(np.zeros((120, 120), np.uint8)).mean() < 0.2


def test_committed_dice_on_fixtures(committed: lungs.LungSegmenter) -> None:
    pairs = fixture_pairs()
    assert 4 <= len(pairs) <= 6
    # The fixtures carry V7 masks (retro-cardiac lung included): the "full" channel.
    scores = [lungs.dice(committed.segment(img, "full"), m) for img, m in pairs]
    assert np.mean(scores) >= 0.90, scores
    assert min(scores) >= 0.85, scores
    # The two channels outline the same organ; they differ only near the heart and diaphragm.
    for img, _ in pairs:
        assert lungs.dice(committed.segment(img), committed.segment(img, "full")) > 0.85


def test_crop_boxes_hold_the_lungs(committed: lungs.LungSegmenter) -> None:
    """On real CXRs the crop box keeps the whole (full-convention) lung mask."""
    pairs = fixture_pairs()
    boxes = [box for box, _ in committed.frames([img for img, _ in pairs], margin=0.04)]
    for (img, mask), box in zip(pairs, boxes, strict=True):
        assert box is not None
        top, bottom, left, right = box
        inside = mask[top:bottom, left:right].sum() / mask.sum()
        assert inside > 0.97, (box, inside)
        assert (bottom - top) * (right - left) < img.size  # it does crop something
    assert committed.frames([np.zeros((120, 120), np.uint8)], margin=0.04)[0][0] is None


def test_one_forward_pass_gives_crop_box_mask_and_focus_mask(
    committed: lungs.LungSegmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = fixture_pairs()[1][0]
    expected = committed.segment(img, "visible")
    committed.forget_images()
    seen: list[int] = []
    real = committed.forward
    monkeypatch.setattr(committed, "forward", lambda batch: seen.append(len(batch)) or real(batch))
    ((box, small),) = committed.frames([img], margin=0.04)
    assert box is not None and small.shape == (96, 96) and small.any()
    np.testing.assert_array_equal(committed.segment(img, "visible"), expected)
    assert seen == [1]  # the crop's "full" and the focus's "visible" mask: one pass
    committed.segment(np.flipud(img).copy())
    assert seen == [1, 1]  # another image is another pass
    # Each mask is made once and kept (read-only): asking again segments nothing.
    again = committed.segment(img, "visible")
    assert again is committed.segment(img.copy()) and not again.flags.writeable
    committed.frames([img], margin=0.04)
    assert seen == [1, 1]


def test_segment_from_threads(committed: lungs.LungSegmenter) -> None:
    img = fixture_pairs()[0][0]
    expected = committed.segment(img)
    committed.forget_images()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(committed.segment, [img] * 8))
    for r in results:
        np.testing.assert_array_equal(r, expected)

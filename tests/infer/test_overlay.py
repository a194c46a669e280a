"""Overlay rendering: opacity, colour maps, hottest area, lung outline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxrlib.infer.overlay import (
    COLORMAPS,
    FRAME_COLOR,
    LUNG_COLOR,
    heatmap_rgb,
    hottest_mask,
    overlay,
)

H, W = 120, 90


@pytest.fixture
def gray() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)


@pytest.fixture
def heatmap() -> np.ndarray:
    """A smooth map without ties, in [0, 1]."""
    rng = np.random.default_rng(1)
    hm = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 8)
    return (hm - hm.min()) / (hm.max() - hm.min())


def as_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def test_colormaps_offered() -> None:
    assert {"jet", "turbo", "inferno", "viridis"} <= set(COLORMAPS)


@pytest.mark.parametrize("cmap", sorted(COLORMAPS))
def test_opacity_zero_is_the_image(gray: np.ndarray, heatmap: np.ndarray, cmap: str) -> None:
    out = overlay(gray, heatmap, opacity=0.0, colormap=cmap)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, as_rgb(gray))


@pytest.mark.parametrize("cmap", sorted(COLORMAPS))
def test_opacity_one_is_the_coloured_map(gray: np.ndarray, heatmap: np.ndarray, cmap: str) -> None:
    out = overlay(gray, heatmap, opacity=1.0, colormap=cmap)
    assert not np.array_equal(out, as_rgb(gray))
    np.testing.assert_array_equal(out, heatmap_rgb(heatmap, cmap))


def test_opacity_blends_between(gray: np.ndarray, heatmap: np.ndarray) -> None:
    half = overlay(gray, heatmap, opacity=0.5).astype(int)
    expected = (as_rgb(gray).astype(int) + heatmap_rgb(heatmap).astype(int)) / 2
    assert np.abs(half - expected).max() <= 1


def test_colours_are_rgb_not_bgr() -> None:
    rgb = heatmap_rgb(np.array([[0.0, 1.0]], np.float32), "jet")
    cold, hot = rgb[0, 0].astype(int), rgb[0, 1].astype(int)
    assert cold[2] > cold[0]  # jet's low end is blue
    assert hot[0] > hot[2]  # jet's high end is red


@pytest.mark.parametrize("percent", [5, 20, 50])
def test_hottest_fill_keeps_about_k_percent(
    gray: np.ndarray, heatmap: np.ndarray, percent: float
) -> None:
    out = overlay(gray, heatmap, opacity=1.0, hottest_percent=percent)
    changed = (out != as_rgb(gray)).any(axis=2)
    assert abs(changed.mean() * 100 - percent) < 1.5
    region = hottest_mask(heatmap, percent)
    assert abs(region.mean() * 100 - percent) < 1.5
    # The kept pixels are the hottest ones.
    assert heatmap[region].min() >= heatmap[~region].max() - 1 / 255
    np.testing.assert_array_equal(out[~region], as_rgb(gray)[~region])


def test_empty_map_has_no_hot_area(gray: np.ndarray) -> None:
    zeros = np.zeros((H, W), np.float32)
    assert not hottest_mask(zeros, 20).any()
    out = overlay(gray, zeros, opacity=1.0, hottest_percent=20)
    np.testing.assert_array_equal(out, as_rgb(gray))


def test_lung_outline_is_thin_and_on_the_border(gray: np.ndarray, heatmap: np.ndarray) -> None:
    mask = np.zeros((H, W), bool)
    mask[20:100, 10:40] = True
    mask[20:100, 50:80] = True
    gray = gray // 2  # never the outline's white
    out = overlay(gray, heatmap, opacity=0.0, lung_mask=mask)
    changed = (out != as_rgb(gray)).any(axis=2)
    assert (out[changed] == LUNG_COLOR).all()
    assert changed[20, 10:40].all() and changed[99, 50:80].all()  # the outline
    assert not changed[40:80, 15:35].any()  # not the inside
    assert changed.sum() < 2 * (2 * 80 + 2 * 30) + 8


def test_model_frame_is_a_rectangle_on_the_box(gray: np.ndarray, heatmap: np.ndarray) -> None:
    out = overlay(gray, heatmap, opacity=0.0, frame=(10, 90, 5, 60))
    changed = (out != as_rgb(gray)).any(axis=2)
    assert (out[changed] == FRAME_COLOR).all()
    assert changed[10, 5:60].all() and changed[89, 5:60].all()
    assert changed[10:90, 5].all() and changed[10:90, 59].all()
    assert not changed[12:88, 7:58].any() and not changed[:9].any()


def test_inputs_untouched_and_resized_map(gray: np.ndarray, heatmap: np.ndarray) -> None:
    g0, h0 = gray.copy(), heatmap.copy()
    small = cv2.resize(heatmap, (W // 3, H // 3), interpolation=cv2.INTER_AREA)
    out = overlay(gray, small, opacity=0.6, hottest_percent=30, lung_mask=heatmap > 0.5)
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(gray, g0)
    np.testing.assert_array_equal(heatmap, h0)


def test_bad_values_and_arguments(gray: np.ndarray, heatmap: np.ndarray) -> None:
    bad = heatmap.copy()
    bad[0, :5] = np.nan
    bad[1, :5] = 7.0
    bad[2, :5] = -3.0
    out = overlay(gray, bad, opacity=1.0)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :5], heatmap_rgb(np.zeros((1, 5)))[0])
    np.testing.assert_array_equal(out[1, :5], heatmap_rgb(np.ones((1, 5)))[0])
    with pytest.raises(ValueError):
        overlay(gray, heatmap, colormap="rainbow-unicorn")
    with pytest.raises(ValueError):
        overlay(gray, heatmap, opacity=1.5)
    with pytest.raises(ValueError):
        overlay(gray, heatmap, hottest_percent=0)
    with pytest.raises(ValueError):
        overlay(np.zeros((H, W, 3), np.uint8), heatmap)

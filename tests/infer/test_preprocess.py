"""cxrlib.infer.preprocess: the one path from grayscale image to model input."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.infer.preprocess import (
    PreprocessConfig,
    heatmap_to_image,
    normalize_contrast,
    placement,
    prepare,
    to_geometry,
)


def _ramp(h: int, w: int) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w, dtype=np.float32), (h, 1)).astype(np.uint8)


@pytest.mark.parametrize("geometry", ["resize", "pad"])
@pytest.mark.parametrize("contrast", ["none", "clahe", "equalize"])
@pytest.mark.parametrize("shape", [(300, 200), (128, 512), (224, 224)])
def test_prepare_shape_dtype_range(geometry, contrast, shape):
    cfg = PreprocessConfig(size=96, geometry=geometry, contrast=contrast)
    out = prepare(_ramp(*shape), cfg)
    assert out.shape == (96, 96) and out.dtype == np.uint8
    assert out.max() > out.min()


def test_pad_keeps_aspect_ratio_and_resize_fills():
    img = np.full((100, 400), 200, np.uint8)
    p = placement(img.shape, PreprocessConfig(size=80, geometry="pad"))
    assert p[1] == (30, 0, 20, 80)  # 4:1 image -> 80 x 20 band in the middle
    assert placement(img.shape, PreprocessConfig(size=80))[1] == (0, 0, 80, 80)


def test_border_crop_removes_burned_in_text():
    img = np.full((200, 200), 100, np.uint8)
    img[:10, :] = 255  # a bright strip of "text" at the top
    cfg = PreprocessConfig(size=50, contrast="none", border_crop=0.1)
    assert to_geometry(img, cfg).max() == 100


def test_clahe_raises_local_contrast_of_a_flat_image():
    rng = np.random.default_rng(0)
    img = (120 + rng.integers(-5, 6, (128, 128))).astype(np.uint8)
    cfg = PreprocessConfig(contrast="clahe")
    assert normalize_contrast(img, cfg).std() > 2 * img.std()
    assert np.array_equal(normalize_contrast(img, PreprocessConfig(contrast="none")), img)


def test_rejects_non_uint8_and_colour():
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10), np.float32), PreprocessConfig())
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10, 3), np.uint8), PreprocessConfig())


@pytest.mark.parametrize("geometry", ["resize", "pad"])
def test_heatmap_maps_back_to_the_same_anatomy(geometry):
    """A bright spot in the image lands, through prepare and back, on the same spot."""
    h, w, crop = 300, 200, 0.05
    cfg = PreprocessConfig(size=64, geometry=geometry, contrast="none", border_crop=crop)
    img = np.zeros((h, w), np.uint8)
    img[200:230, 50:80] = 255
    model_in = prepare(img, cfg).astype(np.float32) / 255  # a "heatmap" equal to the input
    back = heatmap_to_image(model_in, (h, w), cfg)
    assert back.shape == (h, w)
    y, x = np.unravel_index(np.argmax(back), back.shape)
    assert 195 <= y <= 235 and 45 <= x <= 85
    assert back[: int(h * crop) - 1].max() == 0  # cropped border gets no heat


def test_config_round_trip_ignores_unknown_keys():
    cfg = PreprocessConfig(size=128, geometry="pad", contrast="equalize", border_crop=0.02)
    assert PreprocessConfig.model_validate({**cfg.model_dump(), "future": 1}) == cfg


@pytest.mark.parametrize("geometry", ["resize", "pad"])
def test_lung_crop_box_frames_the_input_and_maps_back(geometry):
    """A crop box (a lung box) replaces the border crop: the input shows only the box,
    and a heatmap over that input lands back on the same pixels of the full image."""
    h, w = 300, 240
    box = (40, 260, 30, 200)  # top, bottom, left, right
    cfg = PreprocessConfig(size=64, geometry=geometry, contrast="none", lung_crop=True)
    img = np.full((h, w), 255, np.uint8)  # outside the box: bright "text"
    img[box[0] : box[1], box[2] : box[3]] = 60
    img[180:210, 120:150] = 200  # a spot inside the box
    x = prepare(img, cfg, crop=box)
    assert placement(img.shape, cfg, box)[0] == box
    if geometry == "resize":
        assert x.max() == 200  # nothing from outside the box reaches the model
    back = heatmap_to_image((x == 200).astype(np.float32), (h, w), cfg, crop=box)
    y, xx = np.unravel_index(np.argmax(back), back.shape)
    assert 175 <= y <= 215 and 115 <= xx <= 155
    assert back[: box[0]].max() == 0 and back[:, box[3] :].max() == 0
    # Without a box the same config falls back to the whole image.
    assert prepare(img, cfg).max() == 255


def test_crop_box_is_clipped_and_an_empty_one_refused():
    cfg = PreprocessConfig(size=32, contrast="none")
    assert placement((100, 80), cfg, (-5, 120, -1, 90))[0] == (0, 100, 0, 80)
    with pytest.raises(ValueError):
        placement((100, 80), cfg, (50, 50, 0, 80))

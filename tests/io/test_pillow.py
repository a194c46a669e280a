"""cxrlib.io.pillow: PNG, JPEG, BMP, TIFF, GIF and WebP decode correctly; damaged ones are refused.

Fixtures are built in memory with Pillow (nothing is written to disk), plus one real
chest X-ray shipped in tests/fixtures/imaging.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from cxrlib.core.errors import ImageError
from cxrlib.io.decode import decode_image
from cxrlib.io.decoded import DecodedImage

pydicom = pytest.importorskip("pydicom")  # imaging_builders makes DICOM files
from imaging_builders import (  # noqa: E402
    REAL_CXR,
    assert_monotonic,
    gradient,
    pil_bytes,
    refused,
)


def test_8bit_png_pixels_unchanged():
    src = gradient()
    out = decode_image(pil_bytes(Image.fromarray(src), "PNG"), "x.png")
    assert isinstance(out, DecodedImage)
    assert out.format == "PNG"
    assert out.pixels.dtype == np.uint8 and out.pixels.flags.c_contiguous
    np.testing.assert_array_equal(out.pixels, src)
    assert out.meta["width"] == 200 and out.meta["height"] == 160
    assert out.meta["bit_depth"] == 8 and out.meta["colourfulness"] == 0.0
    assert out.notices == []


def test_jpeg_and_bmp():
    src = gradient(180, 220)
    jpeg = decode_image(pil_bytes(Image.fromarray(src), "JPEG", quality=95))
    assert jpeg.format == "JPEG" and jpeg.pixels.shape == (180, 220)
    assert np.abs(jpeg.pixels.astype(int) - src).mean() < 2
    bmp = decode_image(pil_bytes(Image.fromarray(src), "BMP"))
    assert bmp.format == "BMP"
    np.testing.assert_array_equal(bmp.pixels, src)


def test_webp_lossless():
    src = gradient()
    out = decode_image(pil_bytes(Image.fromarray(src), "WEBP", lossless=True))
    assert out.format == "WebP"
    np.testing.assert_array_equal(out.pixels, src)


def test_16bit_png_uses_the_used_range():
    src = gradient(lo=1000, hi=3000, dtype=np.uint16)
    out = decode_image(pil_bytes(Image.fromarray(src), "PNG"))
    assert out.meta["bit_depth"] == 16
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    # 1000..3000 spread over 0..255, not clipped at 255 nor squashed into 4..11.
    assert len(np.unique(out.pixels)) == 256
    assert any("16-bit" in n and "1,000" in n and "3,000" in n for n in out.notices)


def test_16bit_tiff():
    src = gradient(lo=200, hi=60000, dtype=np.uint16)
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"), "x.tif")
    assert out.format == "TIFF"
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    expected = np.floor((src.astype(float) - 200) * 255 / (60000 - 200) + 0.5)
    assert np.abs(out.pixels - expected).max() <= 1


def test_float_tiff_with_nan():
    src = gradient(lo=-0.5, hi=2.5, dtype=np.float32)
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"))
    assert out.pixels.min() == 0 and out.pixels.max() == 255
    assert_monotonic(src, out.pixels)
    assert any("Floating-point" in n for n in out.notices)
    src[0, :5] = np.nan
    out = decode_image(pil_bytes(Image.fromarray(src), "TIFF"))
    assert out.pixels.max() == 255 and out.pixels[0, 0] == 0
    assert any("NaN" in n for n in out.notices)


def test_cmyk_jpeg_matches_its_rgb_rendering():
    src = gradient()
    cmyk = Image.merge(
        "CMYK",
        [Image.new("L", (200, 160), 0)] * 3 + [Image.fromarray(255 - src)],
    )
    out = decode_image(pil_bytes(cmyk, "JPEG", quality=95))
    assert out.meta["mode"] == "CMYK"
    assert np.abs(out.pixels.astype(int) - src).mean() < 4


def test_palette_png():
    rng = np.random.default_rng(1)
    src = Image.fromarray(rng.integers(0, 255, (150, 150, 3), dtype=np.uint8))
    pal = src.quantize(colors=16)
    out = decode_image(pil_bytes(pal, "PNG"))
    assert out.meta["mode"] == "P"
    np.testing.assert_array_equal(out.pixels, np.asarray(pal.convert("RGB").convert("L")))
    assert out.meta["colourfulness"] > 0.1
    assert "Colour image converted to grayscale" in out.notices


def test_rgba_png_is_composited_on_black():
    rgba = np.full((140, 200, 4), 255, np.uint8)
    rgba[:, :100, 3] = 0  # left half transparent
    rgba[:, 100:150, 3] = 128  # half-transparent band
    out = decode_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (out.pixels[:, :100] == 0).all()
    assert (out.pixels[:, 150:] == 255).all()
    assert np.abs(out.pixels[:, 100:150].astype(int) - 128).max() <= 1
    assert "Transparent areas shown as black" in out.notices


def test_gray_stored_as_rgb_is_not_called_colour():
    src = gradient()
    rgb = np.stack([src] * 3, axis=2)
    out = decode_image(pil_bytes(Image.fromarray(rgb, "RGB"), "PNG"))
    np.testing.assert_array_equal(out.pixels, src)
    assert out.meta["colourfulness"] == 0.0
    assert "Colour image converted to grayscale" not in out.notices


def test_exif_orientation_6_rotates_upright():
    stored = np.zeros((160, 256), np.uint8)  # stored 256 wide, 160 tall
    stored[:20, :20] = 255  # marker at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = pil_bytes(Image.fromarray(stored), "JPEG", quality=95, exif=exif)
    out = decode_image(data, "photo.jpg")
    assert out.pixels.shape == (256, 160)  # transposed
    # Rotating 90 degrees clockwise moves the top-left corner to the top-right.
    assert out.pixels[:20, -20:].mean() > 200
    assert out.pixels[:20, :20].mean() < 50
    assert out.pixels[-20:, -20:].mean() < 50
    assert any("orientation" in n for n in out.notices)


def test_animated_gif_first_frame():
    frames = [Image.fromarray(np.full((150, 150), 10 * i, np.uint8)) for i in range(12)]
    frames[0] = Image.fromarray(gradient(150, 150))
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert out.format == "GIF"
    assert "Animated GIF: showing the first of 12 frames" in out.notices
    assert out.meta["frames"] == 12
    assert np.abs(out.pixels.astype(int) - gradient(150, 150)).mean() < 3


def test_gif_with_1000_frames_is_not_fully_decoded():
    frames = [Image.fromarray(np.full((130, 130), i % 256, np.uint8)) for i in range(1000)]
    frames[0] = Image.fromarray(np.full((130, 130), 77, np.uint8))
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert "Animated GIF: showing the first of 1,000 frames" in out.notices
    assert (out.pixels == 77).all()


def test_multipage_tiff_first_page():
    first = Image.fromarray(gradient())
    other = Image.fromarray(np.full((160, 200), 99, np.uint8))
    data = pil_bytes(first, "TIFF", save_all=True, append_images=[other, other])
    out = decode_image(data)
    assert "Multi-page TIFF: showing the first of 3 pages" in out.notices
    np.testing.assert_array_equal(out.pixels, gradient())


def test_blank_image_is_decoded_with_a_notice():
    out = decode_image(pil_bytes(Image.new("L", (200, 200), 40), "PNG"))
    assert (out.pixels == 40).all()
    assert any("blank" in n for n in out.notices)


def test_real_fixture_jpeg():
    out = decode_image(REAL_CXR.read_bytes(), REAL_CXR.name)
    assert out.format == "JPEG" and out.pixels.shape == (224, 224)
    assert out.pixels.std() > 20


def test_real_cxr_from_shared_data(cxr_dir):
    manifest = pd.read_csv(cxr_dir / "manifest.csv")
    row = manifest[manifest.path.str.endswith(".jpg")].iloc[0]
    out = decode_image((cxr_dir / row.path).read_bytes(), row.path)
    assert out.format == "JPEG"
    assert out.pixels.shape == (row.height, row.width)
    assert out.pixels.dtype == np.uint8 and out.pixels.std() > 10


def test_refuse_truncated_jpeg():
    data = pil_bytes(Image.fromarray(gradient(256, 256)), "JPEG", quality=90)
    assert "incomplete" in refused(data[: len(data) // 2])


def test_refuse_truncated_png():
    rng = np.random.default_rng(3)
    data = pil_bytes(Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)), "PNG")
    msg = refused(data[: len(data) // 2])
    assert "PNG" in msg and ("incomplete" in msg or "damaged" in msg)


def test_truncated_images_setting_left_alone():
    data = pil_bytes(Image.fromarray(gradient(256, 256)), "JPEG")
    with pytest.raises(ImageError):
        decode_image(data[:-400])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False

"""Images that are not chest X-rays, made locally, to measure the input gate.

Bundled scikit-image and scikit-learn pictures (whole, grey and cropped), faces,
rendered text pages, UI-like screenshots, shapes, noise, gradients, flat images,
checkerboards and tiles. Nothing is downloaded. The gate is fitted without them
(:mod:`cxrlib.train.gate`); ``benchmarks/ood_eval.py`` and the tests measure its rejections
on them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import cv2
import numpy as np
import skimage.data as sd
from PIL import Image, ImageDraw, ImageFont
from sklearn.datasets import load_sample_images

_Add = Callable[[str, np.ndarray], None]


_WORDS = (
    "patient report chest radiograph findings impression lungs clear no acute disease the "
    "quick brown fox jumps over lazy dog lorem ipsum dolor sit amet consectetur adipiscing "
    "elit invoice total amount date page figure table summary results method"
).split()


def _chroma(rgb: np.ndarray) -> float:
    """Mean chroma (max - min channel) / 255, as :mod:`cxrlib.io` reports it."""
    rgb = rgb[..., :3].astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)


def _text_page(rng: np.random.Generator, h: int, w: int, dark_on_light: bool) -> np.ndarray:
    bg = int(rng.integers(215, 256)) if dark_on_light else int(rng.integers(0, 40))
    fg = int(rng.integers(0, 60)) if dark_on_light else int(rng.integers(200, 256))
    im = Image.new("L", (w, h), bg)
    d = ImageDraw.Draw(im)
    size = int(rng.integers(10, 28))
    font = ImageFont.load_default(size=size)
    y = int(rng.integers(5, 30))
    while y < h - size:
        x = int(rng.integers(5, 30))
        while x < w - 40:
            word = _WORDS[int(rng.integers(len(_WORDS)))]
            d.text((x, y), word, fill=fg, font=font)
            x += int(font.getlength(word + " "))
        y += int(size * rng.uniform(1.2, 2.0))
    return np.asarray(im)


def _ui(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    im = Image.new("L", (w, h), int(rng.integers(200, 256)))
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=int(rng.integers(10, 18)))
    d.rectangle([0, 0, w, int(h * 0.08)], fill=int(rng.integers(30, 120)))
    d.rectangle([0, 0, int(w * rng.uniform(0.15, 0.3)), h], fill=int(rng.integers(150, 230)))
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(int(h * 0.1), h - 30))
        x1, y1 = x0 + int(rng.integers(40, 200)), y0 + int(rng.integers(15, 60))
        d.rectangle(
            [x0, y0, x1, y1], outline=int(rng.integers(0, 100)), fill=int(rng.integers(180, 256))
        )
        d.text((x0 + 4, y0 + 2), _WORDS[int(rng.integers(len(_WORDS)))], fill=0, font=font)
    return np.asarray(im)


def _shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    im = Image.new("L", (w, h), int(rng.integers(0, 256)))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 25))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(5, w // 2)), y0 + int(rng.integers(5, h // 2))
        c = int(rng.integers(0, 256))
        k = int(rng.integers(3))
        if k == 0:
            d.ellipse([x0, y0, x1, y1], fill=c)
        elif k == 1:
            d.rectangle([x0, y0, x1, y1], fill=c)
        else:
            n = int(rng.integers(3, 7))
            d.polygon(
                [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(n)], fill=c
            )
    return np.asarray(im)


_SAMPLE_IMAGES = (
    "astronaut camera coffee chelsea rocket coins moon page horse text brick grass gravel "
    "checkerboard clock hubble_deep_field immunohistochemistry logo microaneurysms retina "
    "shepp_logan_phantom colorwheel binary_blobs cell"
).split()


def _sample_images() -> dict[str, np.ndarray]:
    """scikit-image's and scikit-learn's bundled pictures, uint8 (grey or RGB)."""
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _SAMPLE_IMAGES:
            im = np.asarray(getattr(sd, name)())
            if im.dtype == bool:
                im = im.astype(np.uint8) * 255
            elif im.dtype != np.uint8:
                im = np.clip(im * 255.0, 0, 255).astype(np.uint8)
            if im.ndim == 3:
                im = np.ascontiguousarray(im[..., :3])
            out[name] = im
        for name, im in zip(("china", "flower"), load_sample_images().images):
            out[name] = np.asarray(im, np.uint8)
    return out


def _photo_negatives(photos: dict[str, np.ndarray], rng: np.random.Generator, add: _Add) -> None:
    """Each bundled picture, its grey copy and 3 random crops with changed contrast and size."""
    for name, im in photos.items():
        add(name, im)
        if im.ndim == 3:
            add(f"{name}_gray", cv2.cvtColor(im, cv2.COLOR_RGB2GRAY))
        h, w = im.shape[:2]
        for k in range(3):
            ch, cw = int(h * rng.uniform(0.4, 0.8)), int(w * rng.uniform(0.4, 0.8))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = im[y : y + ch, x : x + cw].astype(np.float32) / 255.0
            crop = (255.0 * crop ** rng.uniform(0.5, 2.0)).astype(np.uint8)
            f = rng.uniform(0.5, 2.0)
            add(f"{name}_crop{k}", cv2.resize(crop, (max(8, int(cw * f)), max(8, int(ch * f)))))


def _face_negatives(add: _Add) -> None:
    """Five faces from scikit-image's LFW subset."""
    faces = sd.lfw_subset()
    for i in range(0, 200, 40):
        add(f"face{i}", cv2.resize((faces[i] * 255).astype(np.uint8), (200, 200)))


def _drawn_negatives(rng: np.random.Generator, add: _Add) -> None:
    """Rendered text pages, UI-like screenshots and random shapes."""
    for i in range(24):
        h, w = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        add(f"textpage{i}", _text_page(rng, h, w, dark_on_light=i % 4 != 3))
    for i in range(10):
        add(f"ui{i}", _ui(rng, int(rng.integers(300, 800)), int(rng.integers(400, 1200))))
    for i in range(12):
        add(f"shapes{i}", _shapes(rng, int(rng.integers(128, 600)), int(rng.integers(128, 600))))


def _synthetic_negatives(rng: np.random.Generator, add: _Add) -> None:
    """Noise, gradients, flat images and checkerboards."""
    for i in range(6):
        h, w = int(rng.integers(64, 700)), int(rng.integers(64, 700))
        add(f"uniform{i}", rng.integers(0, 256, (h, w), dtype=np.uint8))
        g = rng.normal(rng.uniform(60, 200), rng.uniform(5, 60), (h, w))
        add(f"gauss{i}", np.clip(g, 0, 255).astype(np.uint8))
        sp = np.full((h, w), int(rng.integers(0, 256)), np.uint8)
        m = rng.random((h, w))
        sp[m < 0.05], sp[m > 0.95] = 0, 255
        add(f"saltpepper{i}", sp)
    for i in range(8):
        h, w = int(rng.integers(64, 600)), int(rng.integers(64, 600))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        a = rng.uniform(0, 2 * np.pi)
        lin = np.cos(a) * xx + np.sin(a) * yy
        lin = (lin - lin.min()) / (np.ptp(lin) + 1e-9)
        add(f"gradient{i}", (lin * 255).astype(np.uint8))
        r = np.hypot(xx - rng.uniform(0.2, 0.8), yy - rng.uniform(0.2, 0.8))
        r = r / r.max()
        add(f"radial{i}", ((r if i % 2 else 1 - r) * 255).astype(np.uint8))
    for i in range(5):
        h, w = int(rng.integers(16, 500)), int(rng.integers(16, 500))
        add(f"flat{i}", np.full((h, w), int(rng.integers(0, 256)), np.uint8))
    for i in range(6):
        sq, n = int(rng.integers(4, 64)), int(rng.integers(3, 20))
        add(f"checker{i}", ((np.indices((n * sq, n * sq)) // sq).sum(0) % 2 * 255).astype(np.uint8))


def _tile_negatives(photos: dict[str, np.ndarray], rng: np.random.Generator, add: _Add) -> None:
    """2 x 2 tiles of random pictures."""
    names = list(photos)
    for i in range(8):
        tiles = []
        for _ in range(4):
            im = photos[names[int(rng.integers(len(names)))]]
            im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im
            tiles.append(cv2.resize(im, (160, 160)))
        add(f"tile{i}", np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])]))


def make_negatives(seed: int = 0) -> list[tuple[str, np.ndarray, float]]:
    """A varied set of >= 200 images that are not chest X-rays, built locally.

    Bundled sample pictures (whole, grey copies, and 3 random crops each with
    changed contrast and size), faces, rendered text pages, UI-like
    screenshots, random shapes, noise, gradients, flat images, checkerboards
    and 2 x 2 tiles of pictures. Nothing is downloaded.

    Args:
        seed: Seed of the random crops, sizes and contents.

    Returns:
        (name, uint8 image, colourfulness 0..1) triples: colour pictures stay RGB (to be
        encoded and decoded the way an upload is) and carry their mean chroma, the rest 0.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray, float]] = []

    def add(name: str, im: np.ndarray) -> None:
        im = np.ascontiguousarray(im, np.uint8)
        out.append((name, im, round(_chroma(im), 4) if im.ndim == 3 else 0.0))

    photos = _sample_images()
    _photo_negatives(photos, rng, add)
    _face_negatives(add)
    _drawn_negatives(rng, add)
    _synthetic_negatives(rng, add)
    _tile_negatives(photos, rng, add)
    return out

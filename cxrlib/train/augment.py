"""Training-time augmentation on raw uint8 images (before contrast normalisation): besides
geometric jitter, what differs between hospitals (gamma, contrast, blur, noise, lost resolution,
JPEG) and burned-in letters and arrows near the borders, so that markers stop predicting a class.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict


class AugmentConfig(BaseModel):
    """Probabilities and ranges of each augmentation (0 disables one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rotate_deg: float = 10.0
    scale: float = 0.12
    shift: float = 0.08
    gamma: float = 0.35
    contrast: float = 0.2
    p_blur: float = 0.2
    p_noise: float = 0.2
    p_downscale: float = 0.25
    p_jpeg: float = 0.2
    p_text: float = 0.3


_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)
_LETTERS = "LRAPABCDEF0123456789"


def _paste_marks(img: np.ndarray, rng: np.random.Generator) -> None:
    """Draws 1-3 letters, words or arrows near the image border, in place."""
    h, w = img.shape
    for _ in range(rng.integers(1, 4)):
        colour = int(rng.choice([0, 255, int(rng.integers(150, 256))]))
        # Corners and edges: where markers and figure labels sit in the sources.
        y = int(rng.choice([rng.integers(2, max(3, h // 6)), rng.integers(h - h // 6, h - 2)]))
        x = int(rng.integers(2, max(3, w - w // 5)))
        if rng.random() < 0.7:
            text = "".join(rng.choice(list(_LETTERS), size=int(rng.integers(1, 4))))
            cv2.putText(
                img,
                text,
                (x, y),
                _FONTS[rng.integers(len(_FONTS))],
                float(rng.uniform(0.25, 0.7)) * w / 160,
                colour,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
            )
        else:
            length = int(rng.integers(w // 12, w // 5))
            angle = rng.uniform(0, 2 * np.pi)
            x2 = int(np.clip(x + length * np.cos(angle), 0, w - 1))
            y2 = int(np.clip(y + length * np.sin(angle), 0, h - 1))
            cv2.arrowedLine(img, (x, y), (x2, y2), colour, int(rng.integers(1, 3)), tipLength=0.3)


def augment(
    img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()
) -> np.ndarray:
    """Returns a randomly perturbed copy of a square uint8 image (same shape)."""
    h, w = img.shape
    out = img
    if cfg.rotate_deg or cfg.scale or cfg.shift:
        angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
        scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
        m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), np.float64)
        m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * (w, h)
        out = cv2.warpAffine(
            out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    else:
        out = out.copy()
    if cfg.p_text and rng.random() < cfg.p_text:
        _paste_marks(out, rng)
    if cfg.p_downscale and rng.random() < cfg.p_downscale:
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(
            out, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA
        )
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if cfg.p_blur and rng.random() < cfg.p_blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    x = out.astype(np.float32) / 255.0
    if cfg.gamma:
        x = x ** float(np.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
    if cfg.contrast:
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        x = (x - x.mean()) * c + x.mean() + rng.uniform(-cfg.contrast, cfg.contrast) * 0.25
    if cfg.p_noise and rng.random() < cfg.p_noise:
        x = x + rng.normal(0, rng.uniform(0.01, 0.04), x.shape).astype(np.float32)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if cfg.p_jpeg and rng.random() < cfg.p_jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is not None:
            out = decoded
    return out

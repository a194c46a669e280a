"""Training-time augmentation on raw uint8 images (before contrast normalisation).

Besides the usual geometric jitter, it simulates what differs between
hospitals and what the shortcut-prone sources carry: gamma and contrast,
blur, noise, lost resolution, JPEG artefacts, and burned-in letters and
arrows pasted near the borders (outside the lung fields), so that text and
markers stop predicting a class. Two optional exposure augmentations (off by
default) go further than one gamma per image: a random monotone tone curve
(:func:`tone_curve`) and a smooth brightness field that lightens one region and
darkens another (:func:`brightness_field`), because outside its sources the
committed model's COVID probability was found to follow the lungs' grey level.

Two optional augmentations use the lung mask (in model-input geometry) and
turn the shortcut audit's ablations into training signal
(:func:`lung_ablation`): with the lungs blanked out the target becomes the
uniform distribution (no lungs, no opinion), so whatever lies outside the
lungs stops being rewarded; with only the lungs kept the label stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (0 disables one)."""

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
    p_erase_lungs: float = 0.0
    p_lungs_only: float = 0.0
    # Mixup (Zhang et al. 2018): each image of a batch blended with another one of the same
    # batch, targets alike, with a weight drawn from Beta(mixup, mixup). 0 = off.
    mixup: float = 0.0
    # Exposure (off by default): a random monotone tone curve, and a smooth multiplicative
    # brightness field whose log varies by up to ``bias`` across the image.
    p_tone: float = 0.0
    p_bias: float = 0.0
    tone_knots: float = 4
    tone_concentration: float = 8.0
    bias: float = 0.3

    @property
    def uses_lungs(self) -> bool:
        """Whether training must supply lung masks (:func:`lung_ablation`)."""
        return bool(self.p_erase_lungs or self.p_lungs_only)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _blank(img: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> None:
    """Fills ``region`` in place with a flat grey (a random level between the image's
    20th and 80th percentiles) plus faint noise."""
    lo, hi = np.percentile(img, (20, 80))
    level = rng.uniform(lo, hi + 1e-3)
    noise = rng.normal(0.0, rng.uniform(0.0, 4.0), int(region.sum()))
    img[region] = np.clip(level + noise, 0, 255).astype(np.uint8)


def lung_ablation(
    img: np.ndarray, lungs: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, bool]:
    """Maybe blanks the lungs (``p_erase_lungs``) or everything else (``p_lungs_only``).

    The fill is a random grey with faint noise rather than the audit's exact
    image mean (:func:`cxrlib.infer.lungs.erase_lungs`), so that the audit does not
    replay the training transform pixel for pixel.

    Args:
        img: uint8 image in model-input geometry (not modified).
        lungs: Boolean lung mask of the same shape.
        rng: Random generator.
        cfg: Probabilities.

    Returns:
        ``(image, lungs_erased)``; train a lungs-erased image towards the uniform target.
    """
    r = rng.random()
    if not lungs.any() or r >= cfg.p_erase_lungs + cfg.p_lungs_only:
        return img, False
    out = img.copy()
    erase = r < cfg.p_erase_lungs
    _blank(out, lungs if erase else ~lungs, rng)
    return out, erase


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


def tone_curve(
    rng: np.random.Generator, knots: float = 4, concentration: float = 8.0
) -> np.ndarray:
    """A random monotone grey-level lookup table (256 uint8 values from 0 to 255).

    The curve is piecewise linear through ``knots + 1`` evenly spaced inputs; the rise over
    each piece is a Dirichlet draw, so the curve always runs from 0 to 255 and never turns
    back. A higher ``concentration`` keeps it nearer the identity.
    """
    knots = max(1, int(knots))  # settings arrive as floats from ``--augment``
    rises = rng.dirichlet(np.full(knots, concentration))
    ys = np.concatenate([[0.0], np.cumsum(rises)])
    xs = np.linspace(0.0, 1.0, knots + 1)
    lut = np.interp(np.arange(256) / 255.0, xs, ys) * 255.0
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)


def brightness_field(
    shape: tuple[int, int], rng: np.random.Generator, strength: float
) -> np.ndarray:
    """A smooth multiplicative field (float32, ``shape``): ``exp`` of a 3 x 3 random grid
    upsampled bicubically, scaled so its log spans at most ``strength`` either way. It
    changes how bright one region is relative to another, as uneven exposure does."""
    grid = rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32)
    h, w = shape
    smooth = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    scale = rng.uniform(0.0, strength) / max(1e-6, float(np.abs(smooth).max()))
    return np.exp(smooth * scale).astype(np.float32)


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
    # The exposure draws come only when switched on, so that the committed recipe's random
    # stream (and with it every recorded run) stays as it was.
    if cfg.p_tone and rng.random() < cfg.p_tone:
        out = cv2.LUT(out, tone_curve(rng, cfg.tone_knots, cfg.tone_concentration))
    x = out.astype(np.float32) / 255.0
    if cfg.p_bias and rng.random() < cfg.p_bias:
        x = x * brightness_field(x.shape, rng, cfg.bias)
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

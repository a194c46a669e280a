"""Out-of-distribution gate: "is this a frontal chest X-ray?".

The app calls :func:`assess` before classifying. When ``is_cxr`` is False it
shows ``reason`` and no class probabilities.

Design (numpy + OpenCV at run time, no TensorFlow; a few ms per image):

1. The image is squashed to a 128 x 128 square (the classifier's ``"resize"``
   geometry) and described by a feature vector:

   * a 32 x 32 thumbnail, standardised per image (zero mean, unit variance),
     projected on its first principal components (fitted on chest X-rays):
     the whitened coordinates plus the log reconstruction error;
   * a histogram-of-oriented-gradients layout (8 x 8 cells, 9 orientations on
     a 64 x 64 copy), projected the same way;
   * a few robust statistics: mean and spread of the grey levels, share of
     high-frequency energy, median gradient, histogram entropy, share of the
     most common grey level, number of grey levels, left-right symmetry.

2. One Gaussian (mean, regularised covariance) is fitted over those features
   on chest X-rays (the train split of ``shared/cxr``, subsampled, plus the
   train split of ``shared/lungs``); no negatives are used. The score is the
   Mahalanobis distance divided by a threshold set on the validation splits
   (``shared/cxr`` and ``shared/lungs`` val): the smallest percentile of their
   distances, from the 99th up, at which all the rules below together still
   accept :data:`VAL_TARGET` (99.2%) of them. ``score <= 1`` passes.

3. Rules that give the clinician a reason, in this order:

   * a blank image (no visible contrast) is rejected;
   * a strongly coloured image (``colourfulness``, the mean chroma from
     :func:`cxrlib.io.imaging.decode_image`, above :data:`COLOUR_LIMIT`) is
     rejected as a colour photograph;
   * an image that fails the score is called "mostly text" when it holds many
     glyph-sized blobs in lines, "random noise" when most of its energy is
     pixel-to-pixel;
   * orientation and inversion: a multinomial logistic regression over the
     thumbnail and gradient layout, fitted on training X-rays as given and
     turned 90, 180, 270 degrees or inverted, gives the probability that the
     image is upright. An image that passes the score but is probably not
     upright (below a limit that flags 0.2% of upright validation X-rays) is
     rejected as "upside down or rotated" or "inverted (a negative)"; so is a
     failing image whose turned-back copy passes;
   * any other failing image is "unlike the chest X-rays the model was
     trained on".

Scope: frontal (PA/AP) chest X-rays, adult or paediatric, as in the training
data. Rotated (90/180/270 degrees) and inverted (negative) X-rays are rejected
with a reason that says so; mirror images (left-right flips) are accepted. Lateral views are
not detected by a dedicated rule: there are no lateral images here to fit or
measure on, so whether one is rejected depends on how unlike a frontal view it
scores (not measured); for a DICOM file, :func:`header_concerns` warns when its
header names a lateral or oblique view, another modality or another body part. The gate is a plausibility check, not a guarantee: an
unusual real X-ray can be rejected and an X-ray-like picture can pass.

Usage::

    python -m cxrlib.infer.gate fit --data ../shared/cxr --lungs ../shared/lungs --out models/ood.npz
    python -m cxrlib.infer.gate evaluate
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cxrlib.infer.preprocess import check_gray

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GATE_PATH = ROOT / "models" / "ood.npz"

SQUARE = 128
THUMB = 32
HOG_SIZE = 64
HOG_GRID = 8
HOG_BINS = 9
N_STATS = 8
COLOUR_LIMIT = 0.08
"""Mean chroma (0..1, :func:`cxrlib.io.imaging.decode_image` meta) above which
an image counts as a colour photograph. Colour photographs measured 0.11-0.45;
greyscale X-rays are 0."""
BLANK_STD = 2.0
NOISE_HF = 1.5
VAL_QUANTILE = 0.99
VAL_TARGET = 0.992
ORIENT_QUANTILE = 0.002
FORMAT_VERSION = 1

_PREFIX = "This does not look like a frontal chest X-ray"
REASONS: dict[str, str] = {
    "cxr": "Looks like a frontal chest X-ray.",
    "blank": f"{_PREFIX} (the image is almost blank: no visible contrast).",
    "colour": f"{_PREFIX} (it looks like a colour photograph).",
    "rotated": f"{_PREFIX} the right way up (it looks upside down or rotated).",
    "inverted": f"{_PREFIX} (it looks inverted, like a negative: bones dark, air bright).",
    "text": f"{_PREFIX} (the image is mostly text).",
    "noise": f"{_PREFIX} (it looks like random noise).",
    "unlike": f"{_PREFIX} (it is unlike the chest X-rays the model was trained on).",
}
# Ways an X-ray can be turned or inverted (as applied to an upright one).
TRANSFORMS: tuple[str, ...] = ("rot90", "rot180", "rot270", "inverted")
ORIENTATIONS: tuple[str, ...] = ("upright", *TRANSFORMS)
# The transform that undoes each one.
_UNDO: dict[str, str] = {
    "rot90": "rot270",
    "rot180": "rot180",
    "rot270": "rot90",
    "inverted": "inverted",
}


@dataclass(frozen=True)
class OODResult:
    """The gate's verdict on one image.

    Attributes:
        is_cxr: True when the image looks like a frontal chest X-ray.
        score: Distance from the chest X-rays the gate was fitted on, in units of
            the acceptance threshold (``<= 1`` passes the density check). A rule
            (colour, blank, orientation) can reject an image whose score is below 1.
        reason: One clinician-readable sentence.
        kind: Machine-readable reason: one of the keys of :data:`REASONS`.
    """

    is_cxr: bool
    score: float
    reason: str
    kind: str = "cxr"


# --------------------------------------------------------------------------- features


def _check_gray(gray: np.ndarray) -> np.ndarray:
    gray = check_gray(np.asarray(gray))
    if gray.size == 0:
        raise ValueError("empty image")
    return gray


def square(gray: np.ndarray, size: int = SQUARE) -> np.ndarray:
    """Squashes a grayscale image to ``size`` x ``size`` (like ``geometry="resize"``)."""
    gray = _check_gray(gray)
    interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(gray, (size, size), interpolation=interp))


def _thumb(sq: np.ndarray) -> np.ndarray:
    t = cv2.resize(sq, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((t - t.mean()) / max(float(t.std()), 1.0)).ravel()


def _hog(sq: np.ndarray) -> np.ndarray:
    f = cv2.resize(sq, (HOG_SIZE, HOG_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    b = np.minimum((ang * (HOG_BINS / np.pi)).astype(np.int64), HOG_BINS - 1)
    c = HOG_SIZE // HOG_GRID
    idx = np.arange(HOG_SIZE) // c
    cell = idx[:, None] * HOG_GRID + idx[None, :]
    h: np.ndarray = np.bincount(
        (cell * HOG_BINS + b).ravel(), weights=mag.ravel(), minlength=HOG_GRID**2 * HOG_BINS
    ).reshape(HOG_GRID**2, HOG_BINS)
    # Per-cell L2 normalisation with a floor tied to the image's mean gradient,
    # so flat cells stay near zero instead of amplifying quantisation noise.
    h /= np.linalg.norm(h, axis=1, keepdims=True) + 1e-3 * float(mag.mean()) * c + 1e-6
    return np.sqrt(h).ravel().astype(np.float32)


def _stats(sq: np.ndarray) -> np.ndarray:
    f = sq.astype(np.float32)
    std = float(f.std())
    lap = cv2.Laplacian(f, cv2.CV_32F)
    gm = np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
    hist = np.bincount((sq >> 2).ravel(), minlength=64) / sq.size
    p = hist[hist > 0]
    t = cv2.resize(sq, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    tz = (t - t.mean()) / max(float(t.std()), 1.0)
    return np.array(
        [
            f.mean() / 255.0,
            np.log(std + 1.0),
            np.log(float(np.abs(lap).mean()) / (std + 1.0) + 1e-3),
            np.log(float(np.median(gm)) / (std + 1.0) + 1e-3),
            float(-(p * np.log(p)).sum()),
            float(hist.max()),
            np.log(float(np.count_nonzero(np.bincount(sq.ravel(), minlength=256)))),
            float((tz * tz[:, ::-1]).mean()),
        ],
        np.float32,
    )


def _high_freq(sq: np.ndarray) -> float:
    f = sq.astype(np.float32)
    return float(np.abs(cv2.Laplacian(f, cv2.CV_32F)).mean()) / (float(f.std()) + 1.0)


def _transformed(sq: np.ndarray, name: str) -> np.ndarray:
    if name == "inverted":
        return 255 - sq
    k = {"rot90": 1, "rot180": 2, "rot270": 3}[name]
    return np.ascontiguousarray(np.rot90(sq, k))


def _looks_like_text(gray: np.ndarray) -> bool:
    """Dark-on-light (or light-on-dark) glyphs on a flat background."""
    h, w = gray.shape
    scale = 384.0 / max(h, w)
    if scale < 1.0:
        # Bilinear, not area averaging: averaging greys small print into solid bands
        # (a 1000 x 800 page of 12 px text then reads as noise, tests/test_ood.py),
        # while the sharper bilinear sample keeps the glyphs apart.
        gray = cv2.resize(
            gray,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_LINEAR,
        )
    _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if _glyphs_in_lines(bw):
        return True
    # Uneven lighting (a photographed page): threshold against the local mean.
    bw = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 31, 12)
    return _glyphs_in_lines(bw)


def _glyphs_in_lines(bw: np.ndarray) -> bool:
    fg = bw == 0 if np.count_nonzero(bw) >= bw.size / 2 else bw > 0
    frac = float(fg.mean())
    if not 0.01 <= frac <= 0.35:
        return False
    # Lines of text leave ink-free gaps between them: the ink per row (or per
    # column, for turned text) varies a lot, unlike in noise or texture.
    rows, cols = fg.mean(axis=1), fg.mean(axis=0)
    if max(rows.std() / rows.mean(), cols.std() / cols.mean()) < 0.6:
        return False
    n, _, st, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    areas = st[1:, cv2.CC_STAT_AREA]
    heights = st[1:, cv2.CC_STAT_HEIGHT]
    small = (areas >= 4) & (areas <= 600) & (heights <= 40)
    # Most of the ink must sit in many small, glyph-sized blobs...
    ink_in_small = float(areas[small].sum()) / max(float(areas.sum()), 1.0)
    if int(small.sum()) < 40 or ink_in_small < 0.5:
        return False
    # ...that line up: most glyphs have a neighbour on the same line, close by
    # (a star field or speckle has small blobs too, but scattered).
    box = st[1:][small][:1500].astype(np.float64)
    cx = box[:, cv2.CC_STAT_LEFT] + box[:, cv2.CC_STAT_WIDTH] / 2
    cy = box[:, cv2.CC_STAT_TOP] + box[:, cv2.CC_STAT_HEIGHT] / 2
    hh = np.maximum(box[:, cv2.CC_STAT_HEIGHT], 3.0)
    dx = np.abs(cx[:, None] - cx[None, :])
    dy = np.abs(cy[:, None] - cy[None, :])
    near = (dy < 0.5 * hh[:, None]) & (dx > 0) & (dx < 2.5 * hh[:, None])
    return float(near.any(axis=1).mean()) >= 0.6


# --------------------------------------------------------------------------- the gate


def _project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray, scale: np.ndarray) -> np.ndarray:
    d = x - mean
    z = d @ basis.T
    resid = d - z @ basis
    rec = np.log(np.mean(resid * resid, axis=-1) + 1e-6)
    return np.concatenate([z / scale, rec[..., None]], axis=-1)


@dataclass
class OODGate:
    """A fitted gate: PCA bases, the Gaussian over features, the orientation model.

    Attributes:
        thumb_mean, thumb_basis, thumb_scale: PCA of the standardised thumbnail.
        hog_mean, hog_basis, hog_scale: PCA of the gradient-orientation layout.
        feat_mean, feat_prec: Mean and inverse covariance of the feature vector.
        orient_coef, orient_intercept: Multinomial logistic regression over
            (thumbnail, gradient layout) for the classes :data:`ORIENTATIONS`.
        threshold: Mahalanobis distance that maps to score 1.
        orient_min: An image that passes the score is still rejected as
            rotated/inverted when its probability of being upright is below this.
        meta: What it was fitted on, when, and how (saved as JSON).
    """

    thumb_mean: np.ndarray
    thumb_basis: np.ndarray
    thumb_scale: np.ndarray
    hog_mean: np.ndarray
    hog_basis: np.ndarray
    hog_scale: np.ndarray
    feat_mean: np.ndarray
    feat_prec: np.ndarray
    orient_coef: np.ndarray
    orient_intercept: np.ndarray
    threshold: float
    orient_min: float
    meta: dict[str, Any]

    # -- features and scores

    def _features(self, thumb: np.ndarray, hog: np.ndarray, stats: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                _project(thumb, self.thumb_mean, self.thumb_basis, self.thumb_scale),
                _project(hog, self.hog_mean, self.hog_basis, self.hog_scale),
                stats,
            ],
            axis=-1,
        ).astype(np.float64)

    def features(self, sq: np.ndarray) -> np.ndarray:
        """Feature vector of a 128 x 128 square (see :func:`square`)."""
        return self._features(_thumb(sq), _hog(sq), _stats(sq))

    def _distance(self, feats: np.ndarray) -> np.ndarray:
        d = np.atleast_2d(feats) - self.feat_mean
        m2 = np.einsum("ij,jk,ik->i", d, self.feat_prec, d)
        return np.sqrt(np.maximum(m2, 0.0))

    def _to_score(self, distance: float) -> float:
        s = float(distance) / self.threshold
        return s if np.isfinite(s) else float(np.finfo(np.float32).max)

    def score_square(self, sq: np.ndarray) -> float:
        """Score (distance / threshold) of a 128 x 128 square."""
        return self._to_score(self._distance(self.features(sq))[0])

    def score(self, gray: np.ndarray) -> float:
        """Score of a grayscale image: ``<= 1`` looks like the training X-rays."""
        return self.score_square(square(gray))

    def _orientation(self, thumb: np.ndarray, hog: np.ndarray) -> np.ndarray:
        logits = np.concatenate([thumb, hog], axis=-1) @ self.orient_coef.T + self.orient_intercept
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=-1, keepdims=True)

    def orientation(self, sq: np.ndarray) -> dict[str, float]:
        """Probabilities of :data:`ORIENTATIONS` for a 128 x 128 square.

        Only meaningful for chest X-rays: it tells which way up an X-ray is.
        """
        p = self._orientation(_thumb(sq), _hog(sq))
        return {k: float(v) for k, v in zip(ORIENTATIONS, p)}

    # -- verdict

    def assess(self, gray: np.ndarray, colourfulness: float | None = None) -> OODResult:
        """Is ``gray`` a frontal chest X-ray? See the module docstring for the rules.

        Args:
            gray: 2-D uint8 image (as decoded by :mod:`cxrlib.io.imaging`).
            colourfulness: Mean chroma 0..1 of the upload before grey
                conversion (``decode_image(...).meta["colourfulness"]``), or None.

        Returns:
            :class:`OODResult`.
        """
        gray = _check_gray(gray)
        sq = square(gray)
        thumb, hog = _thumb(sq), _hog(sq)
        s = self._to_score(self._distance(self._features(thumb, hog, _stats(sq)))[0])

        def reject(kind: str) -> OODResult:
            return OODResult(False, s, REASONS[kind], kind)

        if float(sq.std()) < BLANK_STD or int(gray.max()) - int(gray.min()) < 8:
            return reject("blank")
        if colourfulness is not None and float(colourfulness) > COLOUR_LIMIT:
            return reject("colour")
        p = self._orientation(thumb, hog)
        turned = TRANSFORMS[int(np.argmax(p[1:]))]
        turned_kind = "inverted" if turned == "inverted" else "rotated"
        if s <= 1.0:
            if p[0] >= self.orient_min:
                return OODResult(True, s, REASONS["cxr"], "cxr")
            # Probably not upright: say so only if turning it back makes it
            # look more like an X-ray (a grey photograph can land here too).
            back = self.score_square(_transformed(sq, _UNDO[turned]))
            return reject(turned_kind if back < s else "unlike")
        if _looks_like_text(gray):
            return reject("text")
        if _high_freq(sq) > NOISE_HF:
            return reject("noise")
        # Fails as given, but the way up the orientation model suggests passes.
        if p[0] < 0.5 and self.score_square(_transformed(sq, _UNDO[turned])) <= 1.0:
            return reject(turned_kind)
        return reject("unlike")

    # -- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes ``path`` (npz, arrays) and ``path`` with ``.json`` (threshold, provenance)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            k: np.asarray(getattr(self, k), np.float32)
            for k in (
                "thumb_mean",
                "thumb_basis",
                "thumb_scale",
                "hog_mean",
                "hog_basis",
                "hog_scale",
                "feat_mean",
                "orient_coef",
                "orient_intercept",
            )
        }
        arrays["feat_prec"] = np.asarray(self.feat_prec, np.float64)
        scalars = {"threshold": float(self.threshold), "orient_min": float(self.orient_min)}
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays, scalars=np.array(list(scalars.values())))
        meta = dict(self.meta, **scalars, format_version=FORMAT_VERSION)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        return path


def load_gate(path: str | os.PathLike[str] = DEFAULT_GATE_PATH) -> OODGate:
    """Loads a gate saved by :meth:`OODGate.save`.

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: the file is not a gate of this format.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"OOD gate not found at {path}; fit one with "
            "`python -m cxrlib.infer.gate fit --data ../shared/cxr --lungs ../shared/lungs`"
        )
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    try:
        with np.load(path, allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        threshold, orient_min = (float(v) for v in arr.pop("scalars"))
        gate = OODGate(
            **{k: arr[k].astype(np.float64) for k in arr},
            threshold=threshold,
            orient_min=orient_min,
            meta=meta,
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a valid OOD gate: {exc}") from exc
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported gate format {meta.get('format_version')}")
    return gate


_DEFAULT: OODGate | None = None
_LOCK = threading.Lock()


def default_gate() -> OODGate:
    """The committed gate (``models/ood.npz``), loaded once."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = load_gate(DEFAULT_GATE_PATH)
        return _DEFAULT


def assess(gray: np.ndarray, colourfulness: float | None = None) -> OODResult:
    """Is this a frontal chest X-ray? Uses the cached default gate.

    Args:
        gray: 2-D uint8 image.
        colourfulness: Mean chroma 0..1 from :func:`cxrlib.io.imaging.decode_image`, or None.

    Returns:
        :class:`OODResult` (``reason`` is a sentence to show when ``is_cxr`` is False).

    Raises:
        FileNotFoundError: the committed gate file is missing.
        ValueError: ``gray`` is not a non-empty 2-D uint8 array.
    """
    return default_gate().assess(gray, colourfulness)


# --------------------------------------------------------------------------- DICOM header

#: Modalities that are radiographs (or may wrap one: other, secondary capture).
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "OT", "SC"})
_MODALITY_NAMES = {
    "CT": "computed tomography",
    "MR": "magnetic resonance",
    "US": "ultrasound",
    "MG": "mammography",
    "NM": "nuclear medicine",
    "PT": "PET",
    "XA": "angiography",
    "RF": "fluoroscopy",
    "IO": "intra-oral radiography",
    "PX": "panoramic dental radiography",
}
_LATERAL_VIEWS = frozenset({"LL", "RL", "LLD", "RLD", "LAT", "LATERAL"})
_OBLIQUE_VIEWS = frozenset({"LAO", "RAO", "LPO", "RPO", "LLO", "RLO", "OBL", "OBLIQUE"})
_CHEST_WORDS = ("CHEST", "THORAX", "TORAX", "THORAKS", "LUNG", "BRUST", "PECHO", "POITRINE")


def header_concerns(meta: Mapping[str, Any]) -> list[str]:
    """What a DICOM header says against a frontal chest X-ray, as sentences to show.

    Complements :func:`assess`, which sees only pixels and has no rule for lateral
    views. Only the code-string fields that :func:`cxrlib.io.imaging.decode_image` keeps
    are read (``Modality``, ``ViewPosition``, ``BodyPartExamined``). Headers are often
    incomplete or wrong, so these are warnings: absent or unknown values say nothing.

    Args:
        meta: ``DecodedImage.meta`` (any image; only DICOM files carry these fields).

    Returns:
        Plain sentences, empty when the header raises no concern.
    """
    concerns = []
    modality = str(meta.get("Modality") or "").strip().upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        what = _MODALITY_NAMES.get(modality)
        named = f"{modality} ({what})" if what else modality
        concerns.append(
            f"The DICOM header gives the modality as {named}, not a radiograph "
            "(CR or DX): the model only knows chest X-rays."
        )
    view = str(meta.get("ViewPosition") or "").strip().upper()
    kind = "lateral" if view in _LATERAL_VIEWS else "oblique" if view in _OBLIQUE_VIEWS else ""
    if kind:
        concerns.append(
            f"The DICOM header says this is a {kind} view (View Position {view}): the "
            "model was trained on frontal (PA or AP) chest X-rays only."
        )
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    if part and not any(word in part for word in _CHEST_WORDS):
        concerns.append(
            f"The DICOM header gives the body part as {part}, not the chest: the model "
            "only knows chest X-rays."
        )
    return concerns


# --------------------------------------------------------------------------- fitting


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    scale = np.maximum(s[:k] / np.sqrt(len(x)), 1e-6)
    return mean, vt[:k], scale


def _fit_orientation(
    sq: Sequence[np.ndarray], c: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression: upright X-ray vs each of :data:`TRANSFORMS` applied to it."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y = [], []
    for s in sq:
        for k, name in enumerate(ORIENTATIONS):
            t = s if name == "upright" else _transformed(s, name)
            x.append(np.concatenate([_thumb(t), _hog(t)]))
            y.append(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(np.stack(x), y)
    return lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)


def fit_gate(
    train: Sequence[np.ndarray],
    val: Sequence[np.ndarray],
    n_thumb: int = 32,
    n_hog: int = 16,
    n_orient: int = 2500,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> OODGate:
    """Fits a gate on chest X-rays (no negatives are needed).

    Args:
        train: Grayscale uint8 chest X-rays for the PCA, the Gaussian and the
            orientation model (which sees them turned and inverted too).
        val: Other chest X-rays, to set the threshold and the orientation limit.
        n_thumb: Principal components of the thumbnail.
        n_hog: Principal components of the gradient layout.
        n_orient: Training images (at most) for the orientation model.
        seed: Seed of the orientation model's sample.
        meta: Provenance to store in the JSON.

    Returns:
        The fitted :class:`OODGate`.
    """
    if len(train) < 8 or len(val) < 4:
        raise ValueError("need at least 8 training and 4 validation images")
    sq_train = [square(g) for g in train]
    thumbs = np.stack([_thumb(s) for s in sq_train]).astype(np.float64)
    hogs = np.stack([_hog(s) for s in sq_train]).astype(np.float64)
    stats = np.stack([_stats(s) for s in sq_train]).astype(np.float64)
    tm, tb, ts = _pca(thumbs, min(n_thumb, len(train) - 2))
    hm, hb, hs = _pca(hogs, min(n_hog, len(train) - 2))
    pick = np.random.default_rng(seed).permutation(len(sq_train))[:n_orient]
    coef, intercept = _fit_orientation([sq_train[i] for i in sorted(pick)], seed=seed)
    gate = OODGate(
        tm,
        tb,
        ts,
        hm,
        hb,
        hs,
        np.zeros(1),
        np.zeros((1, 1)),
        coef,
        intercept,
        1.0,
        0.0,
        dict(meta or {}),
    )
    feats = gate._features(thumbs, hogs, stats)
    cov = np.cov(feats.T)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    gate.feat_mean = feats.mean(axis=0)
    gate.feat_prec = np.linalg.inv(cov)

    sq_val = [square(g) for g in val]
    v_thumbs = np.stack([_thumb(s) for s in sq_val]).astype(np.float64)
    v_hogs = np.stack([_hog(s) for s in sq_val]).astype(np.float64)
    v_stats = np.stack([_stats(s) for s in sq_val]).astype(np.float64)
    dist = gate._distance(gate._features(v_thumbs, v_hogs, v_stats))
    upright = gate._orientation(v_thumbs, v_hogs)[:, 0]
    gate.orient_min = float(min(np.quantile(upright, ORIENT_QUANTILE, method="lower"), 0.5))
    # The smallest distance percentile (from VAL_QUANTILE up) at which the
    # score and the orientation check together accept VAL_TARGET of val.
    for q in np.append(np.arange(VAL_QUANTILE, 1.0, 0.0005), 1.0):
        thr = float(np.quantile(dist, q))
        ok = (dist <= thr) & (upright >= gate.orient_min)
        if ok.mean() >= VAL_TARGET:
            break
    gate.threshold = thr
    gate.meta.update(
        n_train=len(train),
        n_val=len(val),
        n_orient=len(pick),
        n_thumb=int(tb.shape[0]),
        n_hog=int(hb.shape[0]),
        val_target=VAL_TARGET,
        orient_quantile=ORIENT_QUANTILE,
        threshold_distance=gate.threshold,
        val_quantile_used=round(float(q), 4),
        val_accept_rate=round(float(ok.mean()), 4),
        val_density_accept_rate=round(float(np.mean(dist <= thr)), 4),
        val_orientation_flag_rate=round(float(np.mean(upright < gate.orient_min)), 4),
    )
    return gate


def _read_rows(manifest: Path, split: str, column: str) -> list[Path]:
    with open(manifest, newline="") as fh:
        return [manifest.parent / r[column] for r in csv.DictReader(fh) if r["split"] == split]


def _read(paths: Iterable[Path]) -> list[np.ndarray]:
    out = []
    for p in paths:
        g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if g is not None:
            out.append(g)
    return out


def _subsample(paths: list[Path], n: int, rng: np.random.Generator) -> list[Path]:
    if n <= 0 or len(paths) <= n:
        return paths
    return [paths[i] for i in sorted(rng.choice(len(paths), n, replace=False))]


# --------------------------------------------------------------------------- negatives

_WORDS = (
    "patient report chest radiograph findings impression lungs clear no acute disease the "
    "quick brown fox jumps over lazy dog lorem ipsum dolor sit amet consectetur adipiscing "
    "elit invoice total amount date page figure table summary results method"
).split()


def _chroma(rgb: np.ndarray) -> float:
    """Mean chroma (max - min channel) / 255, as :mod:`cxrlib.io.imaging` reports it."""
    rgb = rgb[..., :3].astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)


def _text_page(rng: np.random.Generator, h: int, w: int, dark_on_light: bool) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

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
    from PIL import Image, ImageDraw, ImageFont

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
    from PIL import Image, ImageDraw

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


SAMPLE_IMAGES: tuple[str, ...] = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "page",
    "horse",
    "text",
    "brick",
    "grass",
    "gravel",
    "checkerboard",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "retina",
    "shepp_logan_phantom",
    "colorwheel",
    "binary_blobs",
    "cell",
)


def _sample_images() -> dict[str, np.ndarray]:
    """scikit-image's and scikit-learn's bundled pictures, uint8 (grey or RGB)."""
    import warnings

    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in SAMPLE_IMAGES:
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


def make_negatives(seed: int = 0, as_made: bool = False) -> list[tuple[str, np.ndarray, float]]:
    """A varied set of >= 200 images that are not chest X-rays, built locally.

    Bundled sample pictures (whole, grey copies, and 3 random crops each with
    changed contrast and size), faces, rendered text pages, UI-like
    screenshots, random shapes, noise, gradients, flat images, checkerboards
    and 2 x 2 tiles of pictures. Nothing is downloaded.

    Args:
        seed: Seed of the random crops, sizes and contents.
        as_made: Return colour pictures as RGB (to encode and decode them the
            way an upload is) instead of converting them to grey.

    Returns:
        (name, uint8 image, colourfulness 0..1) triples; the image is grey
        unless ``as_made``; colour pictures carry their mean chroma, the rest 0.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray, float]] = []

    def add(name: str, im: np.ndarray) -> None:
        im = np.ascontiguousarray(im, np.uint8)
        if as_made:
            out.append((name, im, round(_chroma(im), 4) if im.ndim == 3 else 0.0))
        elif im.ndim == 3:
            out.append((name, cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), round(_chroma(im), 4)))
        else:
            out.append((name, im, 0.0))

    photos = _sample_images()
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
    import skimage.data as sd

    faces = sd.lfw_subset()
    for i in range(0, 200, 40):
        add(f"face{i}", cv2.resize((faces[i] * 255).astype(np.uint8), (200, 200)))
    for i in range(24):
        h, w = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        add(f"textpage{i}", _text_page(rng, h, w, dark_on_light=i % 4 != 3))
    for i in range(10):
        add(f"ui{i}", _ui(rng, int(rng.integers(300, 800)), int(rng.integers(400, 1200))))
    for i in range(12):
        add(f"shapes{i}", _shapes(rng, int(rng.integers(128, 600)), int(rng.integers(128, 600))))
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
    names = list(photos)
    for i in range(8):
        tiles = []
        for _ in range(4):
            im = photos[names[int(rng.integers(len(names)))]]
            im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im
            tiles.append(cv2.resize(im, (160, 160)))
        add(f"tile{i}", np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])]))
    return out


# --------------------------------------------------------------------------- CLI


def fit_command(args: argparse.Namespace) -> dict[str, Any]:
    """``fit``: reads the data, fits, saves; returns the saved metadata."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    cxr = Path(args.data)
    train_paths = _subsample(_read_rows(cxr / "manifest.csv", "train", "path"), args.n_train, rng)
    val_paths = _read_rows(cxr / "manifest.csv", "val", "path")
    fitted_on = {
        "train": [f"{args.data} train split ({len(train_paths)} sampled, seed {args.seed})"],
        "calibration": [f"{args.data} val split (all)"],
    }
    if args.lungs:
        lungs = Path(args.lungs)
        train_paths += _read_rows(lungs / "manifest.csv", "train", "image")
        val_paths += _read_rows(lungs / "manifest.csv", "val", "image")
        fitted_on["train"].append(f"{args.lungs} train split (all)")
        fitted_on["calibration"].append(f"{args.lungs} val split (all)")
    train, val = _read(train_paths), _read(val_paths)
    meta = {
        "kind": "ood_gate",
        "fitted_on": fitted_on,
        "negatives_used": (
            "no non-X-ray images: the score is a one-class fit; the orientation model "
            "learns from the training X-rays turned 90/180/270 degrees and inverted"
        ),
        "seed": args.seed,
        "command": "python -m cxrlib.infer.gate "
        + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
        "fitted_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "features": (
            f"{SQUARE}px square; {THUMB}x{THUMB} standardised thumbnail PCA; "
            f"HOG {HOG_GRID}x{HOG_GRID}x{HOG_BINS} on {HOG_SIZE}px PCA; {N_STATS} statistics"
        ),
        "score": "Mahalanobis distance / threshold (<= 1 accepts)",
        "orientation": "logistic regression upright/rot90/rot180/rot270/inverted; "
        "reject when P(upright) < orient_min",
        "colour_limit": COLOUR_LIMIT,
    }
    gate = fit_gate(train, val, n_thumb=args.n_thumb, n_hog=args.n_hog, seed=args.seed, meta=meta)
    gate.meta["fit_seconds"] = round(time.perf_counter() - t0, 1)
    path = gate.save(args.out)
    return json.loads(path.with_suffix(".json").read_text())


def evaluate_command(args: argparse.Namespace) -> dict[str, Any]:
    """``evaluate``: acceptance of CXR/lung test images, rejection of made negatives."""
    gate = load_gate(args.gate)
    res: dict[str, Any] = {"gate": str(args.gate)}
    sets = [("cxr_" + args.split, Path(args.data) / "manifest.csv", "path")]
    if args.lungs:
        sets.append(("lungs_" + args.split, Path(args.lungs) / "manifest.csv", "image"))
    for name, manifest, col in sets:
        if not manifest.exists():
            continue
        paths = _read_rows(manifest, args.split, col)
        verdicts = [gate.assess(g) for g in _read(paths)]
        res[name + "_accept_rate"] = round(float(np.mean([v.is_cxr for v in verdicts])), 4)
        res[name + "_n"] = len(verdicts)
        if name.startswith("cxr_"):
            res.update(orientation_check(gate, _read(paths[:: max(1, len(paths) // 300)])))
    negs = make_negatives(args.seed)
    verdicts = [gate.assess(g, c) for _, g, c in negs]
    res["negatives_reject_rate"] = round(float(np.mean([not v.is_cxr for v in verdicts])), 4)
    res["negatives_n"] = len(negs)
    kinds: dict[str, int] = {}
    for v in verdicts:
        kinds[v.kind] = kinds.get(v.kind, 0) + 1
    res["negatives_by_kind"] = kinds
    res["negatives_accepted"] = [n for (n, _, _), v in zip(negs, verdicts) if v.is_cxr]
    return res


def orientation_check(gate: OODGate, grays: Sequence[np.ndarray]) -> dict[str, Any]:
    """Rejection and right-reason rates of turned/inverted X-rays; acceptance of mirrored ones."""
    out: dict[str, Any] = {"orientation_n": len(grays)}
    mirrored = [gate.assess(np.ascontiguousarray(g[:, ::-1])).is_cxr for g in grays]
    out["mirrored_accept_rate"] = round(float(np.mean(mirrored)), 4)
    for t in TRANSFORMS:
        verdicts = [gate.assess(_transformed(g, t)) for g in grays]
        want = "inverted" if t == "inverted" else "rotated"
        out[f"{t}_reject_rate"] = round(float(np.mean([not v.is_cxr for v in verdicts])), 4)
        out[f"{t}_reason_rate"] = round(float(np.mean([v.kind == want for v in verdicts])), 4)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fit`` and ``evaluate``."""
    p = argparse.ArgumentParser(prog="python -m cxrlib.infer.gate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the gate on chest X-rays")
    f.add_argument("--data", default=str(ROOT.parent / "shared" / "cxr"))
    f.add_argument("--lungs", default=str(ROOT.parent / "shared" / "lungs"))
    f.add_argument("--out", default=str(DEFAULT_GATE_PATH))
    f.add_argument("--n-train", type=int, default=5000, help="train images sampled (0 = all)")
    f.add_argument("--n-thumb", type=int, default=32)
    f.add_argument("--n-hog", type=int, default=16)
    f.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("evaluate", help="acceptance and rejection rates")
    e.add_argument("--gate", default=str(DEFAULT_GATE_PATH))
    e.add_argument("--data", default=str(ROOT.parent / "shared" / "cxr"))
    e.add_argument("--lungs", default=str(ROOT.parent / "shared" / "lungs"))
    e.add_argument("--split", default="test")
    e.add_argument("--seed", type=int, default=1, help="seed of the made negatives")
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    if args.cmd == "fit":
        out = fit_command(args)
        print(
            json.dumps(
                {
                    k: out[k]
                    for k in (
                        "threshold",
                        "orient_min",
                        "val_accept_rate",
                        "n_train",
                        "n_val",
                        "fit_seconds",
                    )
                }
            )
        )
    else:
        print(json.dumps(evaluate_command(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

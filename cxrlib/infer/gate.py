"""The input gate: "is this a frontal chest X-ray?". A Gaussian over image features gives
the score, rules give the reason (docs/input-gate.md); :mod:`cxrlib.train.gate` fits it."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import special

from cxrlib.core import settings
from cxrlib.infer import gate_features as gf

#: The committed gate (where ``cxrlib.train.gate fit`` writes); loading follows ``$CXR_OOD``.
DEFAULT_GATE_PATH = settings.resolve(settings.DEFAULT_GATE)

#: Mean chroma (0..1, :func:`cxrlib.io.decode.decode_image` meta) above which an image
#: counts as a colour photograph.
COLOUR_LIMIT = 0.08
BLANK_STD = 2.0
NOISE_HF = 1.5
FORMAT_VERSION = 1


class GateRecord(BaseModel):
    """What inference reads of a gate's JSON (``models/ood.json``); the rest is its record."""

    model_config = ConfigDict(extra="ignore")

    format_version: int = FORMAT_VERSION


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


@dataclass(frozen=True)
class OODResult:
    """The gate's verdict on one image: ``score`` is the distance from the fitted X-rays in
    units of the threshold (``<= 1`` passes, unless a rule rejects)."""

    is_cxr: bool
    score: float
    reason: str
    kind: str = "cxr"


@dataclass
class OODGate:
    """A fitted gate: PCAs of the thumbnail and gradient layout, a Gaussian over the features,
    a logistic regression over the orientations, and the thresholds."""

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

    def feature_vector(self, thumb: np.ndarray, hog: np.ndarray, stats: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                gf.project(thumb, self.thumb_mean, self.thumb_basis, self.thumb_scale),
                gf.project(hog, self.hog_mean, self.hog_basis, self.hog_scale),
                stats,
            ],
            axis=-1,
        ).astype(np.float64)

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each feature vector from the fitted X-rays."""
        d = np.atleast_2d(feats) - self.feat_mean
        m2 = np.einsum("ij,jk,ik->i", d, self.feat_prec, d)
        return np.sqrt(np.maximum(m2, 0.0))

    def _score(self, thumb: np.ndarray, hog: np.ndarray, sq: np.ndarray) -> float:
        s = float(self.distance(self.feature_vector(thumb, hog, gf.stats(sq)))[0]) / self.threshold
        return s if np.isfinite(s) else float(np.finfo(np.float32).max)

    def score_square(self, sq: np.ndarray) -> float:
        """Distance / threshold of a :func:`~cxrlib.infer.gate_features.square`."""
        return self._score(gf.thumb(sq), gf.hog(sq), sq)

    def orientation_probs(self, thumb: np.ndarray, hog: np.ndarray) -> np.ndarray:
        logits = np.concatenate([thumb, hog], axis=-1) @ self.orient_coef.T + self.orient_intercept
        return special.softmax(logits, axis=-1)

    def assess(self, gray: np.ndarray, colourfulness: float | None = None) -> OODResult:
        """Is ``gray`` (2-D uint8) a frontal chest X-ray? ``colourfulness`` is the upload's
        mean chroma 0..1 before grey conversion (``decode_image(...).meta``), or None."""
        gray = gf.checked_gray(gray)
        sq = gf.square(gray)
        thumb, hog = gf.thumb(sq), gf.hog(sq)
        s = self._score(thumb, hog, sq)

        def reject(kind: str) -> OODResult:
            return OODResult(False, s, REASONS[kind], kind)

        if float(sq.std()) < BLANK_STD or int(gray.max()) - int(gray.min()) < 8:
            return reject("blank")
        if colourfulness is not None and float(colourfulness) > COLOUR_LIMIT:
            return reject("colour")
        p = self.orientation_probs(thumb, hog)
        turned = gf.TRANSFORMS[int(np.argmax(p[1:]))]
        turned_kind = "inverted" if turned == "inverted" else "rotated"
        if s <= 1.0:
            if p[0] >= self.orient_min:
                return OODResult(True, s, REASONS["cxr"], "cxr")
            # Probably not upright: say so only if turning it back makes it
            # look more like an X-ray (a grey photograph can land here too).
            back = self.score_square(gf.transformed(sq, gf.UNDO[turned]))
            return reject(turned_kind if back < s else "unlike")
        if gf.looks_like_text(gray):
            return reject("text")
        if gf.high_freq(sq) > NOISE_HF:
            return reject("noise")
        # Fails as given, but the way up the orientation model suggests passes.
        if p[0] < 0.5 and self.score_square(gf.transformed(sq, gf.UNDO[turned])) <= 1.0:
            return reject(turned_kind)
        return reject("unlike")


def load_gate(path: str | os.PathLike[str] | None = None) -> OODGate:
    """Loads a fitted gate; FileNotFoundError when missing, ValueError when not a gate."""
    path = settings.gate_path() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"OOD gate not found at {path}; fit one with "
            "`python -m cxrlib.train.gate fit --data ../shared/cxr --lungs ../shared/lungs`"
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
    version = GateRecord.model_validate(meta).format_version
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported gate format {version}")
    return gate


@functools.cache
def _gate_at(path: Path) -> OODGate:
    return load_gate(path)


def assess(gray: np.ndarray, colourfulness: float | None = None) -> OODResult:
    """:meth:`OODGate.assess` by the gate at ``settings.gate_path()``, loaded once per path."""
    return _gate_at(settings.gate_path()).assess(gray, colourfulness)

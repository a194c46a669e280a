"""One image, straight through: bytes -> :func:`decode` -> :func:`check_input` (the gate)
-> :func:`diagnose_image`, or all by :func:`analyse`; each step can keep its result in a cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import ImageError, ModelServerError
from cxrlib.core.hashing import sha256_bytes
from cxrlib.core.methods import check_method
from cxrlib.core.timings import count, timed
from cxrlib.infer.focus import flat_map_focus, focus_verdict, lung_focus
from cxrlib.infer.preprocess import to_geometry
from cxrlib.infer.views import DEFAULT_VIEWS, view_batch
from cxrlib.io.decode import decode_image
from cxrlib.io.header_checks import header_concerns

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import LungSegmenter

#: Longest side of the image that is analysed and shown.
DISPLAY_MAX_SIDE = 1024


class ModelServer(Protocol):
    """What the pipeline asks of a model server's client (:mod:`cxrlib.serve.client`)."""

    url: str

    def diagnose(
        self, data: bytes, filename: str, method: str, class_index: int | None
    ) -> tuple[GateVerdict | None, Diagnosis, str]:
        """``(gate verdict, diagnosis, image sha256)`` of ``data``, computed by the server."""
        ...


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """Everything the app shows about one image (rendering excluded), picklable;
    ``uncertainty`` is each class's (lowest, highest) probability over the views. Without a
    heatmap method (batch scoring) ``method`` is "" and the heatmap and focus fields are None."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray
    predicted_index: int
    predicted_name: str
    uncertainty: np.ndarray
    view_probabilities: np.ndarray
    view_names: tuple[str, ...]
    target_index: int
    target_name: str
    method: str
    heatmap: np.ndarray | None
    lung_mask: np.ndarray | None
    lung_focus: float | None
    lung_area: float | None
    focus_level: str
    focus_verdict: str
    model_crop: tuple[int, int, int, int] | None = None
    averaged: bool = False

    @property
    def confidence(self) -> float:
        """Calibrated probability of the predicted class."""
        return float(self.probabilities[self.predicted_index])


@dataclass
class Models:
    """The loaded models (any may be None), their paths, errors, or a ``remote`` model server."""

    classifier: Classifier | None = None
    explainer: Explainer | None = None
    segmenter: LungSegmenter | None = None
    gate: Callable[..., Any] | None = None
    model_path: Path | None = None
    segmenter_path: Path | None = None
    gate_path: Path | None = None
    remote: ModelServer | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """The classifier's identity in cache keys: its weights hash (else its path) and a
        digest of what its JSON adds, since the same weights fed another way differ."""
        clf = self.classifier
        if clf is None:
            return ""
        views = [[v.name for v in clf.views], clf.view_temperature] if clf.views else []
        recipe = json.dumps(
            [clf.preprocess.model_dump(), clf.temperature, list(clf.class_names), *views],
            sort_keys=True,
        )
        return f"{clf.weights_sha256 or self.model_path}:{sha256_bytes(recipe.encode())[:12]}"


@dataclass
class Decoded:
    """A decoded upload: the pixels analysed and shown (None when refused, see ``error``)."""

    sha256: str
    pixels: np.ndarray | None = None
    format: str = ""
    notices: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.pixels is not None

    @property
    def colourfulness(self) -> float | None:
        """How colourful the original was (the gate's photo check), or None."""
        value = self.meta.get("colourfulness")
        return None if value is None else float(value)

    @property
    def header_concerns(self) -> list[str]:
        """What a DICOM header says against a frontal chest X-ray."""
        return header_concerns(self.meta)


@dataclass(frozen=True)
class GateVerdict:
    is_cxr: bool
    score: float
    reason: str


@dataclass(frozen=True)
class Analysis:
    decoded: Decoded
    gate: GateVerdict | None
    diagnosis: Diagnosis


def fit_display(gray: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """``gray`` shrunk (area interpolation) so its longer side is at most ``max_side``."""
    h, w = gray.shape[:2]
    if max(h, w) <= max_side:
        return gray
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def decode(
    data: bytes, filename: str = "", sha256: str | None = None, cache: LRUCache | None = None
) -> Decoded:
    """Decodes uploaded bytes in memory; an unreadable file gives ``error``, never raises."""
    sha = sha256 or sha256_bytes(data)

    def compute() -> Decoded:
        count("decodes")
        try:
            with timed("decode"):
                image = decode_image(data, filename)
        except ImageError as exc:
            return Decoded(sha, error=str(exc))
        pixels = fit_display(image.pixels)  # only the display-size pixels are kept
        notices = list(image.notices)
        if pixels is not image.pixels:
            h, w = image.pixels.shape
            notices.append(
                f"Large image ({w:,} x {h:,} px): analysed and shown at "
                f"{pixels.shape[1]:,} x {pixels.shape[0]:,} px"
            )
        return Decoded(sha, pixels, image.format, notices, dict(image.meta))

    return compute() if cache is None else cache.get_or_compute(("decoded", sha), compute)


def _served(
    models: Models,
    decoded: Decoded,
    data: bytes,
    method: str,
    class_index: int | None,
    cache: LRUCache | None,
    filename: str = "",
) -> tuple[GateVerdict | None, Diagnosis]:
    """The model server's (gate verdict, diagnosis) of ``data``, the bytes of ``decoded``."""
    remote = models.remote
    assert remote is not None
    if not data:
        raise ValueError("the model server needs the upload's bytes (data=...)")

    def ask() -> tuple[GateVerdict | None, Diagnosis]:
        gate, diagnosis, sha = remote.diagnose(data, filename, method, class_index)
        if sha != decoded.sha256:
            raise ModelServerError("the model server answered for another image")
        return gate, diagnosis

    if cache is None:
        return ask()
    return cache.get_or_compute(("remote", decoded.sha256, remote.url, method, class_index), ask)


def check_input(
    models: Models,
    decoded: Decoded,
    cache: LRUCache | None = None,
    *,
    data: bytes = b"",
    method: str = "gradcam",
) -> GateVerdict | None:
    """The input gate's verdict on a decoded upload, or None without a gate (or pixels). A
    model server is sent ``data`` and answers with the diagnosis by ``method`` too."""
    gate, pixels = models.gate, decoded.pixels
    if pixels is None:
        return None
    if models.remote is not None:
        return _served(models, decoded, data, method, None, cache)[0]
    if gate is None:
        return None

    def compute() -> GateVerdict:
        with timed("gate"):
            out = gate(pixels, colourfulness=decoded.colourfulness)
        return GateVerdict(bool(out.is_cxr), float(out.score), str(getattr(out, "reason", "")))

    if cache is None:
        return compute()
    return cache.get_or_compute(("gate", decoded.sha256, str(models.gate_path)), compute)


def diagnose(
    classifier: Classifier,
    gray: np.ndarray,
    explainer: Explainer | None = None,
    segmenter: LungSegmenter | None = None,
    method: str | None = "gradcam",
    class_index: int | None = None,
) -> Diagnosis:
    """The stages in order on one 2-D uint8 image: lungs, test-time views and classifier
    with the heatmap (one pass), lung focus (with a ``segmenter``), verdict. With ``method``
    None it stops after the classifier: no heatmap, lung mask or focus (batch scoring)."""
    if method is not None:
        check_method(method)
        if explainer is None:
            from cxrlib.infer.explain import get_explainer  # imports TensorFlow

            explainer = get_explainer(classifier)
        if explainer.classifier is not classifier:
            raise ValueError("the explainer belongs to a different classifier")
    names = classifier.class_names
    views = classifier.views or DEFAULT_VIEWS
    cfg = classifier.preprocess
    with timed("segment"):
        crop = classifier.crop_boxes([gray])[0]
        mask = None
        if method is not None and segmenter is not None:
            mask = np.asarray(segmenter.segment(gray)).astype(bool)
    raw: np.ndarray | None = None
    with timed("views"):
        batch = view_batch(to_geometry(gray, cfg, crop), cfg, views)
        if method is not None and explainer is not None and method in explainer.fast_methods:
            # The views' logits and the CAM: one pass.
            res = explainer.fast_cams(batch, class_index)
            raw, target = res.cam(method)[0], int(res.targets[0])
            probs, probs_all = classifier.combine_views(res.logits)
            predicted = int(np.argmax(probs))
            if class_index is None and target != predicted:
                # The views' average can disagree with the original: explain what is shown.
                res = explainer.fast_cams(batch[:1], predicted)
                raw, target = res.cam(method)[0], predicted
        else:
            probs, probs_all = classifier.combine_views(classifier.logits(batch))
            predicted = int(np.argmax(probs))
            target = predicted if class_index is None else int(class_index)
            if method is not None and explainer is not None:
                raw, _ = explainer.raw(batch[0], method, target)
    heatmap = focus = area = None
    level = verdict = ""
    if raw is not None and explainer is not None:
        with timed("heatmap"):
            heatmap = explainer.to_image(raw, gray.shape, crop)
            share = None
            if mask is not None:
                area, focus = float(mask.mean()), lung_focus(heatmap, mask)
                if crop is not None:
                    share = flat_map_focus(mask, crop)
            level, verdict = focus_verdict(focus, area, not heatmap.max() > 0, share)
    return Diagnosis(
        class_names=tuple(names),
        probabilities=probs,
        predicted_index=predicted,
        predicted_name=names[predicted],
        uncertainty=np.stack([probs_all.min(axis=0), probs_all.max(axis=0)], axis=1),
        view_probabilities=probs_all,
        view_names=("original",) + tuple(v.name for v in views),
        target_index=target,
        target_name=names[target],
        method=method or "",
        heatmap=heatmap,
        lung_mask=mask,
        lung_focus=focus,
        lung_area=area,
        focus_level=level,
        focus_verdict=verdict,
        model_crop=crop,
        averaged=bool(classifier.views),
    )


def diagnose_image(
    models: Models,
    decoded: Decoded,
    method: str | None = "gradcam",
    class_index: int | None = None,
    cache: LRUCache | None = None,
    *,
    data: bytes = b"",
) -> Diagnosis:
    """The :class:`Diagnosis` of one decoded upload, here or by ``models.remote`` (sent
    ``data``); the predicted class asked for by index is the entry of ``class_index=None``.
    ``method`` None gives the probabilities alone (no heatmap), except from a model server.

    Raises:
        RuntimeError: No classifier or explainer is loaded (with the reason).
        ValueError: The upload was not decoded.
        ModelServerError: The model server is down or failed.
    """
    classifier, explainer, pixels = models.classifier, models.explainer, decoded.pixels
    if models.remote is not None and pixels is not None:
        return _served(models, decoded, data, method or "gradcam", class_index, cache)[1]
    if classifier is None or (explainer is None and method is not None):
        raise RuntimeError(models.errors.get("classifier") or "no classifier is loaded")
    if pixels is None:
        raise ValueError("the upload was not decoded")
    cache = LRUCache() if cache is None else cache
    sha, model = decoded.sha256, models.model_id
    predicted = cache.get(("predicted", sha, model))
    if class_index is not None and predicted is not None and int(class_index) == predicted:
        class_index = None
    target = None if class_index is None else int(class_index)
    seg = "" if models.segmenter is None else str(models.segmenter_path)
    key = ("diagnosis", sha, model, seg, method, target)

    def compute() -> Diagnosis:
        if method is not None:
            count("heatmaps")
        return diagnose(classifier, pixels, explainer, models.segmenter, method, target)

    diagnosis = cache.get_or_compute(key, compute)
    cache.put(("predicted", sha, model), int(diagnosis.predicted_index))
    return diagnosis


def analyse(
    data: bytes,
    models: Models,
    filename: str = "",
    method: str = "gradcam",
    class_index: int | None = None,
    cache: LRUCache | None = None,
) -> Analysis:
    """Decode (ImageError for an unusable image), input gate and diagnosis. The gate's
    verdict is returned, not enforced: the caller decides whether to show a rejected image."""
    decoded = decode(data, filename, cache=cache)
    if not decoded.ok:
        raise ImageError(decoded.error)
    if models.remote is not None:
        gate, diagnosis = _served(models, decoded, data, method, class_index, cache, filename)
        return Analysis(decoded, gate, diagnosis)
    gate = check_input(models, decoded, cache)
    return Analysis(decoded, gate, diagnose_image(models, decoded, method, class_index, cache))

"""One image, straight through: bytes -> decoded -> input gate -> lung mask -> diagnosis.

:func:`analyse` runs the whole line on uploaded bytes; its steps are also
public, for a caller that shows each one as it comes (the Diagnose page):

1. :func:`decode`: the bytes as a 2-D uint8 image at most :data:`DISPLAY_MAX_SIDE`
   per side (:mod:`cxrlib.io`), or the reason it was refused.
2. :func:`check_input`: the input gate's verdict (is this a frontal chest X-ray?).
3. :func:`diagnose_image`: lung mask, the classifier over the image and its
   test-time views, the heatmap of one class and its lung focus
   (:func:`cxrlib.infer.diagnose.diagnose`).

Who computes steps 2 and 3 is chosen once, when the :class:`Models` are made: the
models in this process, or a model server (``Models.remote``, sent the upload's bytes).

Caching: given a :class:`cxrlib.core.cache.LRUCache`, each step keeps its result
under a key that starts with what it is, then the image hash, the identity of
the model that made it and the settings that changed it:

    * ``("decoded", image)``
    * ``("gate", image, gate)``
    * ``("diagnosis", image, model, segmenter, method, class)``
    * ``("predicted", image, model)``: the predicted class, so that asking for it
      by index reuses the entry of ``class=None``;
    * ``("remote", image, server, method, class)``: a model server's (gate, diagnosis).

The lung mask is not kept here: the segmenter keeps each image's segmentation
(:class:`cxrlib.infer.lungs.LungSegmenter`, the one cache of masks), so another method
or class of one image segments nothing.

Only a computed diagnosis counts in :data:`cxrlib.core.counters.COUNTERS`
``["heatmaps"]`` (and a decode in ``["decodes"]``): a cached answer counts nothing.
Nothing here imports TensorFlow at import time (the app's first page must not
wait for it); the models arrive already loaded in a :class:`Models`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from cxrlib.core.cache import LRUCache
from cxrlib.core.counters import count
from cxrlib.core.errors import ImageError, ModelServerError
from cxrlib.core.hashing import sha256_bytes
from cxrlib.core.timings import timed
from cxrlib.io.decode import decode_image
from cxrlib.io.header_checks import header_concerns

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier
    from cxrlib.infer.diagnosis import Diagnosis
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import LungSegmenter

#: Longest side of the image that is analysed and shown.
DISPLAY_MAX_SIDE = 1024


class ModelServer(Protocol):
    """What the pipeline asks of a model server's client (:mod:`cxrlib.serve.client`)."""

    url: str

    def diagnose(
        self,
        data: bytes,
        filename: str = "",
        method: str = "gradcam",
        class_index: int | None = None,
    ) -> tuple[GateVerdict | None, Diagnosis, str]:
        """``(gate verdict, diagnosis, image sha256)`` of ``data``, computed by the server."""
        ...


@dataclass
class Models:
    """The loaded models of the pipeline; any of them may be missing (None).

    Attributes:
        classifier: The classifier.
        explainer: Its explainer (heatmaps).
        segmenter: The lung segmenter.
        gate: The input gate ``f(gray, colourfulness=None) -> verdict``.
        model_path: Where the classifier was loaded from.
        segmenter_path: Where the segmenter was loaded from.
        gate_path: Where the gate was loaded from.
        remote: A model server that computes the gate's verdict and the diagnosis
            instead of the models here.
        errors: Component name -> plain message of why it is missing.
    """

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
        digest of what its JSON adds (preprocessing, temperatures, classes, test-time
        views), since the same weights fed another way are another model."""
        clf = self.classifier
        if clf is None:
            return ""
        views = [[v.name for v in clf.views], clf.view_temperature] if clf.views else []
        recipe = json.dumps(
            [clf.preprocess.to_dict(), clf.temperature, list(clf.class_names), *views],
            sort_keys=True,
        )
        return f"{clf.weights_sha256 or self.model_path}:{sha256_bytes(recipe.encode())[:12]}"

    @property
    def segmenter_id(self) -> str:
        """The segmenter's identity in cache keys ("" without one)."""
        return "" if self.segmenter is None else str(self.segmenter_path)

    @property
    def gate_id(self) -> str:
        """The gate's identity in cache keys ("" without one)."""
        return "" if self.gate is None else str(self.gate_path)


@dataclass
class Decoded:
    """A decoded upload, or why it was refused.

    Attributes:
        sha256: Digest of the uploaded bytes.
        pixels: The image that is analysed and shown (at most
            :data:`DISPLAY_MAX_SIDE` pixels per side), or None when refused.
        format: File format found in the bytes ("PNG", "DICOM", ...).
        notices: Plain sentences about the decoding (and any downscaling).
        meta: Safe technical fields only (see :class:`cxrlib.io.decoded.DecodedImage`).
        error: The :class:`~cxrlib.core.errors.ImageError` message, or "".
    """

    sha256: str
    pixels: np.ndarray | None = None
    format: str = ""
    notices: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        """The bytes were decoded."""
        return self.pixels is not None

    @property
    def colourfulness(self) -> float | None:
        """How colourful the original was (the gate's photo check), or None."""
        value = self.meta.get("colourfulness")
        return None if value is None else float(value)

    @property
    def header_concerns(self) -> list[str]:
        """What a DICOM header says against a frontal chest X-ray
        (:func:`cxrlib.io.header_checks.header_concerns`)."""
        return header_concerns(self.meta)


@dataclass(frozen=True)
class GateVerdict:
    """The input gate's verdict in plain values."""

    is_cxr: bool
    score: float
    reason: str


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyse` found: the decoded image, the gate's verdict and the diagnosis."""

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


def _decode(data: bytes, filename: str, sha: str) -> Decoded:
    count("decodes")
    try:
        with timed("decode"):
            image = decode_image(data, filename)
    except ImageError as exc:
        return Decoded(sha, error=str(exc))
    pixels = fit_display(image.pixels)
    notices = list(image.notices)
    if pixels is not image.pixels:
        h, w = image.pixels.shape
        notices.append(
            f"Large image ({w:,} x {h:,} px): analysed and shown at "
            f"{pixels.shape[1]:,} x {pixels.shape[0]:,} px"
        )
    # Only the display-size pixels are kept (the full-size array is dropped here).
    return Decoded(sha, pixels=pixels, format=image.format, notices=notices, meta=dict(image.meta))


def decode(
    data: bytes, filename: str = "", sha256: str | None = None, cache: LRUCache | None = None
) -> Decoded:
    """Decodes uploaded bytes in memory; an unreadable file gives ``error``, never raises.

    Args:
        data: The uploaded bytes.
        filename: Their name (a hint only: the bytes decide the format).
        sha256: Their digest, when the caller has it already.
        cache: Keeps the result under ``("decoded", sha256)``.
    """
    sha = sha256 or sha256_bytes(data)
    if cache is None:
        return _decode(data, filename, sha)
    return cache.get_or_compute(("decoded", sha), lambda: _decode(data, filename, sha))


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
    """The input gate's verdict on a decoded upload, or None without a gate (or pixels).

    With a model server, ``data`` (the bytes ``decoded`` came from) is sent there and the
    verdict comes with the server's diagnosis for ``method`` (one request).

    Raises:
        ModelServerError: The model server is down or failed.
    """
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
    return cache.get_or_compute(("gate", decoded.sha256, models.gate_id), compute)


def diagnose_image(
    models: Models,
    decoded: Decoded,
    method: str = "gradcam",
    class_index: int | None = None,
    cache: LRUCache | None = None,
    *,
    data: bytes = b"",
) -> Diagnosis:
    """Probabilities, test-time range, heatmap and lung focus of one decoded upload:
    the one way to a diagnosis, by the models here or by ``models.remote`` (sent
    ``data``, the bytes ``decoded`` came from).

    ``class_index=None`` (the predicted class) and the predicted class's index
    share one cache entry. The segmenter keeps the image's lung mask, so another
    method or class does not segment again.

    Raises:
        RuntimeError: No classifier or explainer is loaded (with the reason).
        ValueError: The upload was not decoded.
        ModelServerError: The model server is down or failed.
    """
    classifier, explainer, pixels = models.classifier, models.explainer, decoded.pixels
    if models.remote is not None and pixels is not None:
        return _served(models, decoded, data, method, class_index, cache)[1]
    if classifier is None or explainer is None:
        raise RuntimeError(models.errors.get("classifier") or "no classifier is loaded")
    if pixels is None:
        raise ValueError("the upload was not decoded")
    from cxrlib.infer.diagnose import diagnose  # imports TensorFlow

    cache = LRUCache() if cache is None else cache
    sha, model = decoded.sha256, models.model_id
    predicted = cache.get(("predicted", sha, model))
    if class_index is not None and predicted is not None and int(class_index) == predicted:
        class_index = None
    target = None if class_index is None else int(class_index)
    key = ("diagnosis", sha, model, models.segmenter_id, method, target)

    def compute() -> Diagnosis:
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
    """The whole line on uploaded bytes: decode, input gate, lung mask, diagnosis
    (in this process or on ``models.remote``).

    The gate's verdict is returned, not enforced: the caller decides whether a
    rejected image is shown (the Diagnose page asks first; batch scoring flags it).

    Raises:
        ImageError: The bytes are not a usable image.
        RuntimeError: No classifier or explainer is loaded.
        ValueError: An unknown method or class.
        ModelServerError: The model server is down or failed.
    """
    decoded = decode(data, filename, cache=cache)
    if not decoded.ok:
        raise ImageError(decoded.error)
    if models.remote is not None:
        gate, diagnosis = _served(models, decoded, data, method, class_index, cache, filename)
        return Analysis(decoded, gate, diagnosis)
    gate = check_input(models, decoded, cache)
    return Analysis(decoded, gate, diagnose_image(models, decoded, method, class_index, cache))

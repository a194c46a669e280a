"""The classifier at inference: a saved Keras model, its JSON and one preprocessing path.

The model is flat (its trunk built on the model's own input, the head on a named
layer, never ``Sequential([base, head])``) so that tf-keras-vis can see inside it;
:mod:`cxrlib.train.architectures` builds it. Layer names the rest of the package
relies on:
    ``last_conv``: the last convolutional feature map (Grad-CAM's layer).
    ``logits``: the Dense layer before the softmax (temperature scaling).
    ``probs``: the softmax output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrlib.core import settings
from cxrlib.core.errors import ModelError
from cxrlib.core.hashing import sha256_file
from cxrlib.infer.lungs import LungSegmenter, default_segmenter
from cxrlib.infer.preprocess import Box, PreprocessConfig, heatmap_to_image, prepare, to_geometry
from cxrlib.infer.runtime import compiled_forward
from cxrlib.infer.views import View, view_batch, views_by_name

CLASS_NAMES: tuple[str, ...] = ("covid", "normal", "pneumonia")
PENULTIMATE_LAYER = "last_conv"
LOGITS_LAYER = "logits"


def meta_path(model_path: str | Path) -> Path:
    """The JSON beside a model file."""
    return Path(model_path).with_suffix(".json")


@dataclass
class Classifier:
    """A trained model with its metadata and a compiled forward pass.

    Thread-safe for prediction: Streamlit serves every session from threads
    of one process, and ``tf.function`` calls may run concurrently.
    """

    model: keras.Model
    meta: dict[str, Any] = field(default_factory=dict)
    segmenter: LungSegmenter | None = None  # for lung-crop models; default: the committed one

    def __post_init__(self) -> None:
        self.class_names: tuple[str, ...] = tuple(self.meta.get("class_names", CLASS_NAMES))
        self.preprocess = PreprocessConfig.from_dict(self.meta.get("preprocess", {}))
        self.temperature = float(self.meta.get("temperature", 1.0))
        # Test-time averaging (cxrlib.infer.views): off unless the JSON records views and
        # the temperature fitted for their mean.
        ttv = self.meta.get("test_time_views") or {}
        try:
            self.views: tuple[View, ...] = views_by_name(ttv.get("views", ()))
        except KeyError as exc:
            raise ModelError(f"the model's JSON names {exc}") from exc
        self.view_temperature = float(ttv.get("temperature", self.temperature))
        self.logits_model = keras.Model(
            self.model.inputs, self.model.get_layer(LOGITS_LAYER).output
        )
        size = self.model.input_shape[1]
        if size != self.preprocess.size:
            raise ModelError(f"model input is {size} px but its JSON says {self.preprocess.size}")
        self._logits_fn = compiled_forward(self.logits_model, size)

    def lung_segmenter(self) -> LungSegmenter:
        """The lung segmenter that makes this model's crop boxes (loaded on first use)."""
        if self.segmenter is None:
            self.segmenter = default_segmenter()
        return self.segmenter

    def lung_frames(
        self, grays: Sequence[np.ndarray]
    ) -> list[tuple[Box | None, np.ndarray | None]]:
        """Crop box and lung mask of each image, as this model's preprocessing needs them.

        The box is None unless the model is ``lung_crop``, the mask None unless
        it is ``lung_mask``. Both come from the segmenter, which keeps each image's
        segmentation (:class:`~cxrlib.infer.lungs.LungSegmenter`): none is kept here,
        so a mask has one cache.
        """
        pre = self.preprocess
        if not pre.uses_lungs:
            return [(None, None)] * len(grays)
        found = self.lung_segmenter().frames(grays, pre.lung_margin)
        return [pre.used_frame(box, mask) for box, mask in found]

    def crop_box(self, gray: np.ndarray) -> Box | None:
        """The crop box of one image (see :meth:`lung_frames`)."""
        return self.lung_frames([gray])[0][0]

    def prepare(
        self,
        gray: np.ndarray,
        crop: Box | None | str = "auto",
        mask: np.ndarray | None | str = "auto",
    ) -> np.ndarray:
        """Grayscale image -> this model's uint8 input (the one preprocessing path).

        ``"auto"`` uses :meth:`lung_frames`; pass a box and mask (or None) to
        frame an edited image as its original was (the lung ablations do).
        """
        auto = isinstance(crop, str) or isinstance(mask, str)
        box, lung = self.lung_frames([gray])[0] if auto else (None, None)
        box = box if isinstance(crop, str) else crop
        lung = lung if isinstance(mask, str) else mask
        return prepare(gray, self.preprocess, box, lung)

    def to_image(
        self, model_map: np.ndarray, shape: tuple[int, ...], crop: Box | None = None
    ) -> np.ndarray:
        """Maps a map over the model input back onto the original image of ``shape``."""
        return heatmap_to_image(model_map, (shape[0], shape[1]), self.preprocess, crop)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits for prepared inputs of shape (N, size, size) or (N, size, size, 1)."""
        x = np.asarray(batch, np.float32)
        if x.ndim == 3:
            x = x[..., None]
        return self._logits_fn(x)

    def probabilities(self, batch: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Softmax probabilities for prepared inputs; temperature-scaled if ``calibrated``."""
        t = self.temperature if calibrated else 1.0
        return softmax(self.logits(batch) / t)

    def view_logits(
        self,
        grays: Sequence[np.ndarray],
        views: Sequence[View] = (),
        batch_size: int = 64,
        crops: Sequence[Box | None] | None = None,
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """Logits ``(N, 1 + len(views), n_classes)`` of raw grayscale images and their views.

        View 0 is the image itself. ``crops`` and ``masks`` override the crop
        boxes and lung masks (default: :meth:`lung_frames`).
        """
        out = []
        for i in range(0, len(grays), batch_size):
            chunk = grays[i : i + batch_size]
            need = crops is None or (masks is None and self.preprocess.lung_mask)
            frames = self.lung_frames(chunk) if need else [(None, None)] * len(chunk)
            boxes = [f[0] for f in frames] if crops is None else crops[i : i + batch_size]
            lungs = [f[1] for f in frames] if masks is None else masks[i : i + batch_size]
            batch = np.stack(
                [
                    view_batch(to_geometry(g, self.preprocess, b, m), self.preprocess, views)
                    for g, b, m in zip(chunk, boxes, lungs, strict=True)
                ]
            )  # (n, 1 + views, size, size)
            z = self.logits(batch.reshape(-1, *batch.shape[2:]))
            out.append(z.reshape(len(chunk), batch.shape[1], -1))
        k = len(self.class_names)
        return np.concatenate(out) if out else np.zeros((0, 1 + len(views), k), np.float32)

    def resolve_views(self, views: Sequence[View] | None) -> tuple[View, ...]:
        """``views`` as a tuple, or the model's own (:attr:`views`) when None."""
        return self.views if views is None else tuple(views)

    def combine_views(
        self, view_logits: np.ndarray, average: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(..., V, K)`` logits -> ``(probabilities (..., K), per view (..., V, K))``.

        Averaged (``average`` True, or None for a model with test-time views,
        :attr:`views`), the probabilities are those of the mean logits and every
        view is scaled by the temperature fitted for that mean; otherwise they are
        the original's (view 0) at the model's temperature.
        """
        if bool(self.views) if average is None else average:
            return average_views(view_logits, self.view_temperature)
        per_view = softmax(np.asarray(view_logits) / self.temperature)
        return per_view[..., 0, :], per_view

    def predict(
        self,
        grays: Sequence[np.ndarray],
        batch_size: int = 64,
        crops: Sequence[Box | None] | None = None,
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """Calibrated probabilities (N, n_classes) for raw grayscale images.

        The model's own prediction: averaged over its test-time views when it
        has them (:meth:`combine_views`). ``crops`` and ``masks`` override the
        crop boxes and lung masks (default: :meth:`lung_frames`).
        """
        z = self.view_logits(grays, self.views, batch_size, crops, masks)
        return self.combine_views(z)[0]

    @property
    def weights_sha256(self) -> str:
        return str(self.meta.get("weights_sha256", ""))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float32)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def average_views(view_logits: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from the logits of each image's test-time views (:mod:`cxrlib.infer.views`).

    Args:
        view_logits: ``(..., V, K)`` logits; view 0 is the original.
        temperature: Divides the logits (the mean and each view alike).

    Returns:
        ``(mean, per_view)``: the ``(..., K)`` softmax of the mean logits and the
        ``(..., V, K)`` softmax of each view's logits.
    """
    z = np.asarray(view_logits, np.float64) / float(temperature)
    return softmax(z.mean(axis=-2)), softmax(z)


def load_classifier(
    path: str | Path | None = None, segmenter: LungSegmenter | None = None
) -> Classifier:
    """Loads a ``.keras`` classifier (default :func:`cxrlib.core.settings.model_path`) and
    its JSON; raises :class:`ModelError`.

    A model trained on lung-cropped inputs also needs a lung segmenter:
    ``segmenter``, or by default :func:`cxrlib.infer.lungs.default_segmenter`.
    """
    path = settings.model_path() if path is None else Path(path)
    if not path.exists():
        raise ModelError(f"no model at {path}; train one with `python -m cxrlib.train`")
    mp = meta_path(path)
    meta = json.loads(mp.read_text()) if mp.exists() else {}
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"cannot load {path}: {exc}") from exc
    if meta.get("weights_sha256") and meta["weights_sha256"] != sha256_file(path):
        raise ModelError(f"{path} does not match the weights hash in {mp.name}")
    clf = Classifier(model, meta, segmenter=segmenter)
    if clf.preprocess.uses_lungs:
        clf.lung_segmenter()  # fail now, not at the first image, when the segmenter is missing
    return clf

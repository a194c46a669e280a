"""The classifier at inference: a saved Keras model (flat, with the layers ``last_conv``
and ``logits``, so that tf-keras-vis sees inside it), its JSON and its preprocessing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import special

from cxrlib.core import settings
from cxrlib.core.errors import ModelError
from cxrlib.core.hashing import sha256_file
from cxrlib.infer.lungs import LungSegmenter, default_segmenter
from cxrlib.infer.preprocess import Box, PreprocessConfig, prepare, to_geometry
from cxrlib.infer.runtime import compiled_forward
from cxrlib.infer.views import View, view_batch, views_by_name

CLASS_NAMES: tuple[str, ...] = ("covid", "normal", "pneumonia")
PENULTIMATE_LAYER = "last_conv"
LOGITS_LAYER = "logits"


class ViewsRecord(BaseModel):
    """A model's test-time views and the temperature fitted for their mean."""

    model_config = ConfigDict(extra="ignore")

    views: tuple[str, ...] = ()
    temperature: float | None = None


class ClassifierRecord(BaseModel):
    """What inference reads of a classifier's JSON (``models/cxr_classifier.json``)."""

    model_config = ConfigDict(extra="ignore")

    class_names: tuple[str, ...] = CLASS_NAMES
    preprocess: PreprocessConfig = PreprocessConfig()
    temperature: float = 1.0
    test_time_views: ViewsRecord | None = None


def meta_path(model_path: str | Path) -> Path:
    """The JSON beside a model file."""
    return Path(model_path).with_suffix(".json")


@dataclass(eq=False)
class Classifier:
    """A trained model with its metadata and a compiled, thread-safe forward pass."""

    model: keras.Model
    meta: dict[str, Any] = field(default_factory=dict)
    segmenter: LungSegmenter | None = None  # for lung-crop models; default: the committed one

    def __post_init__(self) -> None:
        record = ClassifierRecord.model_validate(self.meta)
        self.class_names = record.class_names
        self.preprocess = record.preprocess
        self.temperature = record.temperature
        # Test-time averaging is off unless the JSON records views and their temperature.
        ttv = record.test_time_views or ViewsRecord()
        try:
            self.views: tuple[View, ...] = views_by_name(ttv.views)
        except KeyError as exc:
            raise ModelError(f"the model's JSON names {exc}") from exc
        self.view_temperature = self.temperature if ttv.temperature is None else ttv.temperature
        self.logits_model = keras.Model(
            self.model.inputs, self.model.get_layer(LOGITS_LAYER).output
        )
        size = self.model.input_shape[1]
        if size != self.preprocess.size:
            raise ModelError(f"model input is {size} px but its JSON says {self.preprocess.size}")
        self._logits_fn = compiled_forward(self.logits_model, size)

    @property
    def weights_sha256(self) -> str:
        return str(self.meta.get("weights_sha256", ""))

    def lung_segmenter(self) -> LungSegmenter:
        """The segmenter of this model's crop boxes (loaded on first use)."""
        if self.segmenter is None:
            self.segmenter = default_segmenter()
        return self.segmenter

    def crop_boxes(self, grays: Sequence[np.ndarray]) -> list[Box | None]:
        """The lung crop box of each image (all None unless the model crops to the lungs)."""
        if not self.preprocess.lung_crop:
            return [None] * len(grays)
        return [box for box, _ in self.lung_segmenter().frames(grays, self.preprocess.lung_margin)]

    def prepare(self, gray: np.ndarray) -> np.ndarray:
        """Grayscale image -> this model's uint8 input, cropped by :meth:`crop_boxes`."""
        return prepare(gray, self.preprocess, self.crop_boxes([gray])[0])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits for prepared inputs of shape (N, size, size) or (N, size, size, 1)."""
        x = np.asarray(batch, np.float32)
        return self._logits_fn(x[..., None] if x.ndim == 3 else x)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for prepared inputs."""
        return softmax(self.logits(batch) / self.temperature)

    def view_logits(
        self,
        grays: Sequence[np.ndarray],
        views: Sequence[View] = (),
        batch_size: int = 64,
        crops: Sequence[Box | None] | None = None,
    ) -> np.ndarray:
        """Logits ``(N, 1 + len(views), K)`` of raw grayscale images and their views (view 0
        the image); ``crops`` override those of :meth:`crop_boxes`."""
        out = []
        for i in range(0, len(grays), batch_size):
            chunk = grays[i : i + batch_size]
            boxes = self.crop_boxes(chunk) if crops is None else crops[i : i + batch_size]
            batch = np.stack(
                [
                    view_batch(to_geometry(g, self.preprocess, b), self.preprocess, views)
                    for g, b in zip(chunk, boxes, strict=True)
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
        """``(..., V, K)`` logits -> ``(probabilities, per view)``: of the mean logits if
        ``average`` (default: the model has views), else of the original (view 0)."""
        if bool(self.views) if average is None else average:
            return average_views(view_logits, self.view_temperature)
        per_view = softmax(np.asarray(view_logits) / self.temperature)
        return per_view[..., 0, :], per_view

    def predict(
        self,
        grays: Sequence[np.ndarray],
        batch_size: int = 64,
        crops: Sequence[Box | None] | None = None,
    ) -> np.ndarray:
        """Calibrated probabilities (N, n_classes) of raw grayscale images, over its views."""
        return self.combine_views(self.view_logits(grays, self.views, batch_size, crops))[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float32)."""
    return special.softmax(logits, axis=-1).astype(np.float32)


def average_views(view_logits: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of the mean over views (axis -2) of ``view_logits / temperature``, and of each."""
    z = np.asarray(view_logits, np.float64) / float(temperature)
    return softmax(z.mean(axis=-2)), softmax(z)


def load_classifier(
    path: str | Path | None = None, segmenter: LungSegmenter | None = None
) -> Classifier:
    """Loads a classifier, its JSON and a lung-crop model's segmenter; ModelError on failure."""
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
    if clf.preprocess.lung_crop:
        clf.lung_segmenter()  # fail now, not at the first image
    return clf

"""The base of every heatmap method (:class:`HeatmapMethod`); the Grad-CAM family
(:class:`CamMethod`) only weighs the ``last_conv`` activations, so all of them come out of
ONE compiled pass (:class:`CamPass`)."""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrlib.infer.classifier import LOGITS_LAYER, PENULTIMATE_LAYER, Classifier
from cxrlib.infer.preprocess import Box, heatmap_to_image

ClassIndex = int | Sequence[int] | None


def normalize_map(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalises a map to float32 [0, 1]; non-finite values count as 0."""
    hm = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if hm.size == 0:
        return hm
    lo, hi = float(hm.min()), float(hm.max())
    if not hi - lo > 1e-30:
        return np.zeros_like(hm)
    out = (hm - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


class ExplainedModel:
    """A classifier being explained, and what its heatmap methods share."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.model: keras.Model = classifier.model
        self.size = int(self.model.input_shape[1])
        self.n_classes = int(self.model.output_shape[-1])
        #: Serialises tf-keras-vis calls (its visualisers are not thread-safe).
        self.lock = threading.Lock()

    def as_batch(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (S, S), (S, S, 1), (N, S, S) or (N, S, S, 1) as float32 (N, S, S, 1)."""
        arr = np.asarray(x, dtype=np.float32)
        s = self.size
        if arr.ndim == 2:
            arr = arr[None, ..., None]
        elif arr.ndim == 3:
            arr = arr[None] if arr.shape == (s, s, 1) else arr[..., None]
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 1):
            raise ValueError(f"model input must be ({s}, {s}) or a batch of them, got {x.shape}")
        return arr

    def targets(self, n: int, class_index: ClassIndex) -> np.ndarray:
        """(n,) int32 target classes (one for all, or one per item); -1: the predicted one."""
        if class_index is None:
            return np.full(n, -1, np.int32)
        idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
        if (idx < 0).any() or (idx >= self.n_classes).any():
            raise ValueError(f"class_index {class_index} out of range 0..{self.n_classes - 1}")
        return idx.astype(np.int32)

    @functools.cached_property
    def linear(self) -> keras.Model:
        """The model with a linear output, for tf-keras-vis (its ``predict`` is silent)."""
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # optional, heavy

        copy = tf.keras.models.clone_model(self.model)
        copy.set_weights(self.model.get_weights())
        modified = ReplaceToLinear()(copy)
        linear = copy if modified is None else modified
        linear.predict = functools.partial(type(linear).predict, linear, verbose=0)
        return linear

    def to_image(
        self, raw_map: np.ndarray, shape: tuple[int, ...], crop: Box | None = None
    ) -> np.ndarray:
        """A model-space map onto an image of ``shape`` (made with ``crop``), in [0, 1]."""
        return normalize_map(heatmap_to_image(raw_map, shape, self.classifier.preprocess, crop))


class HeatmapMethod(ABC):
    """One heatmap method bound to one :class:`ExplainedModel`; ``visualiser`` is the
    ``"module:Class"`` of its tf-keras-vis reference."""

    visualiser: ClassVar[str | None] = None

    def __init__(self, model: ExplainedModel) -> None:
        self.model = model

    @abstractmethod
    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        """The raw map of one model input ``xb`` (1, S, S, 1) for class ``target``."""

    def raw(self, x: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """The raw map of one model input and the class it explains (default: predicted)."""
        xb = self.model.as_batch(x)[:1]
        if class_index is None:
            target = int(np.argmax(self.model.classifier.logits(xb)[0]))
        else:
            target = int(self.model.targets(1, class_index)[0])
        return self.compute(xb, target), target

    def reference(
        self, x: np.ndarray, class_index: int, expand_cam: bool = False, normalize: bool = True
    ) -> np.ndarray:
        """The plain tf-keras-vis map of one model input."""
        from tf_keras_vis.utils.scores import CategoricalScore  # optional, heavy

        if self.visualiser is None:
            raise ValueError(f"{type(self).__name__} has no tf-keras-vis reference")
        xb = self.model.as_batch(x)[:1]
        with self.model.lock:
            out = self._visualise(CategoricalScore(int(class_index)), xb, expand_cam, normalize)
        return np.asarray(out, dtype=np.float32)[0]

    @functools.cached_property
    def vis(self) -> Any:
        """The tf-keras-vis visualiser on the linear copy."""
        module, _, name = str(self.visualiser).partition(":")
        return getattr(import_module(module), name)(self.model.linear, clone=False)

    def _visualise(self, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool) -> Any:
        """Calls :attr:`vis` the way this method needs."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class FastCams:
    """One compiled pass over a batch: logits, targets and each CAM's (N, h, w) raw map."""

    logits: np.ndarray
    targets: np.ndarray
    maps: Mapping[str, np.ndarray]

    def cam(self, method: str) -> np.ndarray:
        """The (N, h, w) raw maps of one fast method."""
        if method not in self.maps:
            raise ValueError(f"{method!r} is not a fast-path method {tuple(self.maps)}")
        return self.maps[method]


class CamPass:
    """The compiled pass of several CAM methods (key -> class)."""

    def __init__(self, model: ExplainedModel, methods: Mapping[str, type[CamMethod]]) -> None:
        self.model = model
        self.methods = dict(methods)
        m = model.model
        self._cam_model = keras.Model(
            m.inputs, [m.get_layer(PENULTIMATE_LAYER).output, m.get_layer(LOGITS_LAYER).output]
        )
        s = model.size
        self._fn = tf.function(
            self._graph,
            input_signature=[
                tf.TensorSpec((None, s, s, 1), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            reduce_retracing=True,
        )

    def _graph(self, x: tf.Tensor, cls: tf.Tensor) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            acts, logits = self._cam_model(x, training=False)
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            target = tf.where(cls < 0, predicted, cls)
            score = tf.gather(logits, target, axis=1, batch_dims=1)  # (N,)
            total = tf.reduce_sum(score)
        # Items are independent in inference mode: d(sum)/dA_n = dS_n/dA_n.
        grads = tape.gradient(total, acts)
        maps = [c.cam(acts, grads, score) for c in self.methods.values()]
        return (logits, target, *maps)

    def __call__(self, batch: np.ndarray, class_index: ClassIndex = None) -> FastCams:
        """Logits and raw maps of model inputs for one class, one per item, or the predicted."""
        x = self.model.as_batch(batch)
        cls = self.model.targets(x.shape[0], class_index)
        logits, target, *maps = (t.numpy() for t in self._fn(tf.constant(x), tf.constant(cls)))
        return FastCams(logits, target, dict(zip(self.methods, maps, strict=True)))


class CamMethod(HeatmapMethod):
    """``relu(sum_k A_k * w_k)`` over the ``last_conv`` activations; a subclass defines ``w``."""

    def __init__(self, model: ExplainedModel, cams: CamPass | None = None) -> None:
        super().__init__(model)
        self.cams = cams if cams is not None else CamPass(model, {"cam": type(self)})
        self._key = next(k for k, c in self.cams.methods.items() if c is type(self))

    @staticmethod
    @abstractmethod
    def weights(acts: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        """Weights of the activations (N, h, w, C): broadcastable to ``acts``."""

    @classmethod
    def cam(cls, acts: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        """The raw (N, h, w) map, in the compiled graph."""
        return tf.nn.relu(tf.reduce_sum(acts * cls.weights(acts, grads, score), axis=-1))

    def raw(self, x: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        res = self.cams(x, class_index)
        return res.cam(self._key)[0], int(res.targets[0])

    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        return self.raw(xb, target)[0]

    def _visualise(self, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool) -> Any:
        return self.vis(
            score,
            xb,
            expand_cam=expand_cam,
            normalize_cam=normalize,
            penultimate_layer=PENULTIMATE_LAYER,
            seek_penultimate_conv_layer=False,
        )

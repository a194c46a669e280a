"""The base of every heatmap method, and the work the methods share.

tf-keras-vis's ``ModelVisualization`` and pytorch-grad-cam's ``BaseCAM`` in one:

* :class:`ExplainedModel`: the classifier being explained and what its methods
  share: input checks, targets (a class index, or the predicted class), the
  mapping of a model-space map back onto the image, normalisation, one lock and
  one linear copy of the model for tf-keras-vis.
* :class:`HeatmapMethod`: one method; a subclass implements :meth:`~HeatmapMethod.compute`
  (and names its tf-keras-vis reference, if it has one).
* :class:`CamMethod` and :class:`CamPass`: the Grad-CAM family's *fast path*. tf-keras-vis
  builds a new ``keras.Model`` on every call, runs it eagerly, computes the CAM in
  NumPy and upsamples it with ``scipy.ndimage.zoom``: on this CPU 5-40x the compiled
  forward pass. The pass here is ONE compiled ``tf.function`` that returns the
  ``last_conv`` activations and the logits, and takes the gradient of the target logit
  with respect to ``last_conv`` only (just the head: GAP, dropout, Dense), so it costs
  about one forward pass. Every registered CAM (and the logits) comes out of that call;
  a CAM subclass only says how it weighs the activations.

The CAM formulas are tf-keras-vis 0.8.7's, on the logits (what ``ReplaceToLinear`` +
``CategoricalScore`` give).

Upsampling (decided): tf-keras-vis zooms with ``scipy.ndimage.zoom(order=1)``
(corner-aligned); here a model-space map goes through
:func:`cxrlib.infer.preprocess.heatmap_to_image` (OpenCV bilinear, half-pixel centres),
which also undoes padding and cropping so the map lines up with the uploaded image.
The two upsamplers differ by design, so the fast path is compared with tf-keras-vis at
*feature resolution* (``expand_cam=False``), where they agree to float precision after
min-max normalisation. Every map is min-max normalised to [0, 1] at the image's own
size after mapping back (like tf-keras-vis, but a flat map becomes all zeros instead of
dividing by an epsilon; never NaN).
"""

from __future__ import annotations

import functools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cxrlib.infer.classifier import LOGITS_LAYER, PENULTIMATE_LAYER, Classifier  # noqa: E402
from cxrlib.infer.preprocess import Box  # noqa: E402

ClassIndex = int | Sequence[int] | None


def normalize_map(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalises a map to float32 [0, 1]; flat or empty maps give zeros.

    Non-finite values are treated as 0, so the result is never NaN.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if not np.isfinite(hm).all():
        hm = np.nan_to_num(hm, nan=0.0, posinf=0.0, neginf=0.0)
    if hm.size == 0:
        return hm.copy()
    lo, hi = float(hm.min()), float(hm.max())
    rng = hi - lo
    if not rng > 1e-30:
        return np.zeros_like(hm)
    out = (hm - np.float32(lo)) * np.float32(1.0 / rng)
    np.clip(out, 0.0, 1.0, out=out)
    return out


class ExplainedModel:
    """A classifier being explained, and what all its heatmap methods share.

    Args:
        classifier: The classifier (its Keras model needs ``last_conv`` and ``logits``).
    """

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.model: keras.Model = classifier.model
        self.size = int(self.model.input_shape[1])
        self.n_classes = int(self.model.output_shape[-1])
        #: Serialises tf-keras-vis calls (its visualisers are not thread-safe).
        self.lock = threading.Lock()
        self._linear: keras.Model | None = None

    def as_batch(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (S, S), (S, S, 1), (N, S, S) or (N, S, S, 1) as float32 (N, S, S, 1)."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None, ..., None]
        s = self.size
        if arr.ndim == 3:
            arr = arr[None] if arr.shape == (s, s, 1) else arr[..., None]
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 1):
            raise ValueError(f"model input must be ({s}, {s}) or a batch of them, got {x.shape}")
        return arr

    def targets(self, n: int, class_index: ClassIndex) -> np.ndarray:
        """(n,) int32 target classes (one for all, or one per item); -1 = the predicted one."""
        if class_index is None:
            return np.full(n, -1, np.int32)
        idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
        if (idx < 0).any() or (idx >= self.n_classes).any():
            raise ValueError(f"class_index {class_index} out of range 0..{self.n_classes - 1}")
        return idx.astype(np.int32)

    def target_of(self, xb: np.ndarray, class_index: int | None) -> int:
        """The class to explain for one input: ``class_index``, or the predicted class."""
        if class_index is None:
            return int(np.argmax(self.classifier.logits(xb[:1])[0]))
        return int(self.targets(1, class_index)[0])

    def linear(self) -> keras.Model:
        """One copy of the model with a linear output, for every tf-keras-vis visualiser.

        Built on first use, with :attr:`lock` held. Score-CAM scores its masked inputs
        with ``model.predict``, whose default progress bar would print to the server
        log on every map: silenced on this private copy (never saved).
        """
        if self._linear is None:
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # optional, heavy

            # What ModelVisualization(model, ReplaceToLinear(), clone=True) does.
            copy = tf.keras.models.clone_model(self.model)
            copy.set_weights(self.model.get_weights())
            modified = ReplaceToLinear()(copy)
            linear = copy if modified is None else modified
            linear.predict = functools.partial(type(linear).predict, linear, verbose=0)
            self._linear = linear
        return self._linear

    def to_image(
        self, raw_map: np.ndarray, shape: tuple[int, ...], crop: Box | None = None
    ) -> np.ndarray:
        """A model-space map onto an image of ``shape`` (made with ``crop``), in [0, 1]."""
        return normalize_map(self.classifier.to_image(raw_map, shape, crop))


class HeatmapMethod(ABC):
    """One heatmap method bound to one :class:`ExplainedModel`.

    Attributes:
        fast: The method runs on the compiled CAM pass (:class:`CamMethod`).
        visualiser: ``"module:Class"`` of its tf-keras-vis reference, or None.
    """

    fast: ClassVar[bool] = False
    visualiser: ClassVar[str | None] = None

    def __init__(self, model: ExplainedModel) -> None:
        self.model = model
        self._vis: Any = None

    @abstractmethod
    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        """The un-normalised map of one model input ``xb`` (1, S, S, 1) for class ``target``,
        at feature or input resolution."""

    def raw(self, x: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """The un-normalised map of one model input and the class it explains."""
        xb = self.model.as_batch(x)[:1]
        target = self.model.target_of(xb, class_index)
        return self.compute(xb, target), target

    # ------------------------------------------------------ tf-keras-vis reference
    def reference(
        self, x: np.ndarray, class_index: int, expand_cam: bool = False, normalize: bool = True
    ) -> np.ndarray:
        """The plain tf-keras-vis result for one model input (reference, or engine).

        Args:
            x: One model input, (S, S) or (S, S, 1).
            class_index: Target class.
            expand_cam: CAMs only: upsample to the input size with scipy (tf-keras-vis's way).
            normalize: Let tf-keras-vis normalise the map.

        Returns:
            (h, w) map (feature resolution for CAMs unless ``expand_cam``, input
            resolution for SmoothGrad).
        """
        from tf_keras_vis.utils.scores import CategoricalScore  # optional, heavy

        if self.visualiser is None:
            raise ValueError(f"{type(self).__name__} has no tf-keras-vis reference")
        xb = self.model.as_batch(x)[:1]
        score = CategoricalScore(int(class_index))
        with self.model.lock:
            out = self._visualise(self._visualiser(), score, xb, expand_cam, normalize)
        return np.asarray(out, dtype=np.float32)[0]

    def _visualiser(self) -> Any:
        """The tf-keras-vis visualiser on the shared linear copy (built once; lock held)."""
        if self._vis is None:
            module, _, name = str(self.visualiser).partition(":")
            self._vis = getattr(import_module(module), name)(self.model.linear(), clone=False)
        return self._vis

    def _visualise(
        self, vis: Any, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool
    ) -> Any:
        """Calls the visualiser the way this method needs."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class FastCams:
    """One compiled pass over a batch: logits, targets and every CAM's raw map.

    Attributes:
        logits: (N, n_classes) uncalibrated logits.
        targets: (N,) class index each CAM explains.
        maps: Method key -> (N, h, w) raw (un-normalised) map at feature resolution.
    """

    logits: np.ndarray
    targets: np.ndarray
    maps: Mapping[str, np.ndarray]

    def cam(self, method: str) -> np.ndarray:
        """The (N, h, w) raw maps of one fast method."""
        if method not in self.maps:
            raise ValueError(f"{method!r} is not a fast-path method {tuple(self.maps)}")
        return self.maps[method]


class CamPass:
    """The compiled pass shared by several CAM methods (traced on first call).

    Args:
        model: The model explained.
        methods: Method key -> :class:`CamMethod` subclass, each computed in the pass.
    """

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

    def key_of(self, cls: type[CamMethod]) -> str:
        """The key under which ``cls`` is computed here."""
        for key, c in self.methods.items():
            if c is cls:
                return key
        raise ValueError(f"{cls.__name__} is not computed by this pass")

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
        """Logits and every method's raw map in one compiled pass.

        Args:
            batch: Model inputs, (S, S), (N, S, S) or (N, S, S, 1), values 0..255.
            class_index: Target class (one for all, or one per item); ``None``
                explains each item's predicted class.
        """
        x = self.model.as_batch(batch)
        cls = self.model.targets(x.shape[0], class_index)
        logits, target, *maps = (t.numpy() for t in self._fn(tf.constant(x), tf.constant(cls)))
        return FastCams(logits, target, dict(zip(self.methods, maps, strict=True)))


class CamMethod(HeatmapMethod):
    """A Grad-CAM-family method: ``relu(sum_k A_k * w_k)`` over the ``last_conv``
    activations ``A``, run on a :class:`CamPass`; a subclass defines :meth:`weights`.

    Args:
        model: The model explained.
        cams: The pass shared with the other CAM methods (default: one of its own).
    """

    fast = True

    def __init__(self, model: ExplainedModel, cams: CamPass | None = None) -> None:
        super().__init__(model)
        self.cams = cams if cams is not None else CamPass(model, {"cam": type(self)})
        self._key = self.cams.key_of(type(self))

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

    def _visualise(
        self, vis: Any, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool
    ) -> Any:
        return vis(
            score,
            xb,
            expand_cam=expand_cam,
            normalize_cam=normalize,
            penultimate_layer=PENULTIMATE_LAYER,
            seek_penultimate_conv_layer=False,
        )

"""Heatmaps: where the classifier looked (Grad-CAM family, Score-CAM, SmoothGrad).

tf-keras-vis is the reference implementation and the engine for Score-CAM and
SmoothGrad (SmoothGrad's noisy copies go through tf-keras-vis as one batch, see
:meth:`Explainer.smoothgrad`). Grad-CAM, Grad-CAM++ and LayerCAM run on a *fast path* that
reproduces tf-keras-vis's formulas in one compiled ``tf.function``:

* tf-keras-vis builds a new ``keras.Model`` on every call and runs it eagerly,
  then computes the CAM in NumPy and upsamples it with ``scipy.ndimage.zoom``;
  on this CPU that is 5-40x the compiled forward pass.
* The fast path runs ONE compiled forward pass that returns the ``last_conv``
  activations and the logits, and takes the gradient of the target logit with
  respect to ``last_conv`` only, which touches just the head (GAP, dropout,
  Dense), so it costs about as much as the forward pass alone. All three CAMs
  (and the logits) come out of that single call.

The formulas are tf-keras-vis 0.8.7's, on the logits (what ``ReplaceToLinear``
+ ``CategoricalScore`` give): Grad-CAM ``relu(sum_k A_k * mean_ij dS/dA_k)``;
LayerCAM ``relu(sum_k A_k * relu(dS/dA_k))``; Grad-CAM++ with tf-keras-vis's
``exp(S)`` derivatives, alpha normalisation and ``relu`` weights (``S`` is
clipped to [-80, 80] before ``exp`` so that it cannot overflow to inf/NaN; for
any realistic logit this changes nothing).

Upsampling (decided): tf-keras-vis zooms with ``scipy.ndimage.zoom(order=1)``
(corner-aligned); here the feature-resolution map goes through
:func:`cxrlib.infer.preprocess.heatmap_to_image` (OpenCV bilinear, half-pixel
centres), which also undoes padding/cropping so the map lines up with the
uploaded image. The two upsamplers differ by design, so the fast path is
compared with tf-keras-vis at *feature resolution* (``expand_cam=False``),
where the two agree to float precision after min-max normalisation. Every
method's map is min-max normalised to [0, 1] at the image's own size after
mapping back (like tf-keras-vis, but a flat map becomes all zeros instead of
dividing by an epsilon; never NaN).

Score-CAM (``max_N`` = Faster Score-CAM) deliberately runs on the
``ReplaceToLinear`` copy of the model as well: tf-keras-vis 0.8.7 applies a
softmax to the model's outputs itself (``score(K.softmax(preds))``), so on the
softmax model it would weight channels by a softmax *of probabilities* (all
weights squeezed into ~[0.2, 0.6], which adds a class-independent map); on the
linear copy the weights are the paper's post-softmax class probabilities.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cxrlib.infer.classifier import LOGITS_LAYER, PENULTIMATE_LAYER, Classifier  # noqa: E402
from cxrlib.infer.preprocess import Box  # noqa: E402

METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "layercam", "scorecam", "smoothgrad")
METHOD_NAMES: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "layercam": "LayerCAM",
    "scorecam": "Faster Score-CAM",
    "smoothgrad": "SmoothGrad",
}
#: Methods computed by the compiled fast path (tf-keras-vis is their reference).
FAST_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "layercam")
_EXP_CLIP = 80.0


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


@dataclass(frozen=True, eq=False)
class FastCams:
    """One compiled pass over a batch: logits, targets and three raw CAMs.

    Attributes:
        logits: (N, n_classes) uncalibrated logits.
        targets: (N,) class index each CAM explains.
        gradcam: (N, h, w) raw (un-normalised) Grad-CAM at feature resolution.
        gradcampp: (N, h, w) raw Grad-CAM++.
        layercam: (N, h, w) raw LayerCAM.
    """

    logits: np.ndarray
    targets: np.ndarray
    gradcam: np.ndarray
    gradcampp: np.ndarray
    layercam: np.ndarray

    def cam(self, method: str) -> np.ndarray:
        """The (N, h, w) raw maps of one fast method."""
        if method not in FAST_METHODS:
            raise ValueError(f"{method!r} is not a fast-path method {FAST_METHODS}")
        return getattr(self, method)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return method


class Explainer:
    """Explains one classifier's predictions; build once, reuse.

    Thread-safe: the compiled fast path runs concurrently; tf-keras-vis calls
    (Score-CAM, SmoothGrad, the reference path) are serialised by a lock.

    Args:
        classifier: The classifier to explain.
        scorecam_max_n: ``max_N`` of Faster Score-CAM (channels kept).
        smooth_samples: Noisy samples averaged by SmoothGrad.
        smooth_noise: SmoothGrad noise, as a fraction of the input's range.
        seed: Seed of SmoothGrad's noise (so the same input gives the same map).
    """

    def __init__(
        self,
        classifier: Classifier,
        scorecam_max_n: int = 10,
        smooth_samples: int = 20,
        smooth_noise: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.classifier = classifier
        self.model: keras.Model = classifier.model
        self.size = int(self.model.input_shape[1])
        self.n_classes = int(self.model.output_shape[-1])
        self.scorecam_max_n = scorecam_max_n
        self.smooth_samples = smooth_samples
        self.smooth_noise = smooth_noise
        self.seed = seed
        self._lock = threading.Lock()
        self._vis: dict[str, Any] | None = None
        cam_model = keras.Model(
            self.model.inputs,
            [
                self.model.get_layer(PENULTIMATE_LAYER).output,
                self.model.get_layer(LOGITS_LAYER).output,
            ],
        )
        self._cam_model = cam_model
        s = self.size
        self._fast_fn = tf.function(
            self._fast_graph,
            input_signature=[
                tf.TensorSpec((None, s, s, 1), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ],
            reduce_retracing=True,
        )

    def warm_up(self) -> None:
        """Traces the compiled fast path once (a second or two), e.g. at app start."""
        self.fast_cams(np.zeros((self.size, self.size), np.float32))

    # ----------------------------------------------------------------- fast path
    def _fast_graph(self, x: tf.Tensor, cls: tf.Tensor) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            acts, logits = self._cam_model(x, training=False)
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
            target = tf.where(cls < 0, predicted, cls)
            score = tf.gather(logits, target, axis=1, batch_dims=1)  # (N,)
            total = tf.reduce_sum(score)
        # Items are independent in inference mode: d(sum)/dA_n = dS_n/dA_n.
        grads = tape.gradient(total, acts)
        space = (1, 2)
        # Grad-CAM (tf_keras_vis.gradcam.Gradcam._calculate_cam).
        weights = tf.reduce_mean(grads, axis=space, keepdims=True)
        gradcam = tf.nn.relu(tf.reduce_sum(acts * weights, axis=-1))
        # LayerCAM: relu on the gradients, then on the map.
        layercam = tf.nn.relu(tf.reduce_sum(acts * tf.nn.relu(grads), axis=-1))
        # Grad-CAM++ (tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus.__call__).
        expo = tf.exp(tf.clip_by_value(score, -_EXP_CLIP, _EXP_CLIP))[:, None, None, None]
        first = expo * grads
        second = first * grads
        third = second * grads
        global_sum = tf.reduce_sum(acts, axis=space, keepdims=True)
        denom = second * 2.0 + third * global_sum
        denom = denom + tf.cast(tf.equal(second, 0.0), second.dtype)
        alphas = second / denom
        norm = tf.reduce_sum(alphas, axis=space, keepdims=True)
        norm = norm + tf.cast(tf.equal(norm, 0.0), norm.dtype)
        alphas = alphas / norm
        dl_weights = tf.reduce_sum(tf.nn.relu(first) * alphas, axis=space, keepdims=True)
        gradcampp = tf.nn.relu(tf.reduce_sum(dl_weights * acts, axis=-1))
        return logits, target, gradcam, gradcampp, layercam

    def _as_batch(self, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None, ..., None]
        s = self.size
        if arr.ndim == 3:
            arr = arr[None] if arr.shape == (s, s, 1) else arr[..., None]
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 1):
            raise ValueError(f"model input must be ({s}, {s}) or a batch of them, got {x.shape}")
        return arr

    def _targets(self, n: int, class_index: int | Sequence[int] | None) -> np.ndarray:
        if class_index is None:
            return np.full(n, -1, np.int32)
        idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
        if (idx < 0).any() or (idx >= self.n_classes).any():
            raise ValueError(f"class_index {class_index} out of range 0..{self.n_classes - 1}")
        return idx.astype(np.int32)

    def fast_cams(
        self, batch: np.ndarray, class_index: int | Sequence[int] | None = None
    ) -> FastCams:
        """Logits and raw Grad-CAM / Grad-CAM++ / LayerCAM maps in one compiled pass.

        Args:
            batch: Model inputs, (S, S), (N, S, S) or (N, S, S, 1), values 0..255.
            class_index: Target class (one for all, or one per item); ``None``
                explains each item's predicted class.

        Returns:
            :class:`FastCams` with un-normalised maps at feature resolution.
        """
        x = self._as_batch(batch)
        cls = self._targets(x.shape[0], class_index)
        out = self._fast_fn(tf.constant(x), tf.constant(cls))
        logits, target, gc, gcpp, lc = (t.numpy() for t in out)
        return FastCams(logits, target, gc, gcpp, lc)

    # ---------------------------------------------------------- tf-keras-vis path
    def _visualisers(self) -> dict[str, Any]:
        """tf-keras-vis visualisers, built once (lazily) on one linear copy of the model."""
        if self._vis is None:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.layercam import Layercam
            from tf_keras_vis.saliency import Saliency
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

            # One clone with a linear output serves every visualiser (clone=False below).
            gradcam = Gradcam(self.model, model_modifier=ReplaceToLinear(), clone=True)
            linear = gradcam.model
            # Score-CAM scores its masked inputs with ``model.predict``, whose default
            # progress bar would print to the server log on every map: silenced on this
            # private copy (never saved; the other visualisers call the model directly).
            linear.predict = functools.partial(type(linear).predict, linear, verbose=0)
            self._vis = {
                "gradcam": gradcam,
                "gradcampp": GradcamPlusPlus(linear, clone=False),
                "layercam": Layercam(linear, clone=False),
                "scorecam": Scorecam(linear, clone=False),
                "smoothgrad": Saliency(linear, clone=False),
            }
        return self._vis

    def reference(
        self,
        x: np.ndarray,
        method: str,
        class_index: int,
        expand_cam: bool = False,
        normalize: bool = True,
    ) -> np.ndarray:
        """The plain tf-keras-vis result for one model input (reference and engine).

        Args:
            x: One model input, (S, S) or (S, S, 1).
            method: One of :data:`METHODS`.
            class_index: Target class.
            expand_cam: CAMs only: upsample to the input size with scipy (tf-keras-vis's way).
            normalize: Let tf-keras-vis normalise the map.

        Returns:
            (h, w) map (feature resolution for CAMs unless ``expand_cam``, input
            resolution for SmoothGrad).
        """
        from tf_keras_vis.utils.scores import CategoricalScore

        _check_method(method)
        xb = self._as_batch(x)[:1]
        score = CategoricalScore(int(class_index))
        with self._lock:
            vis = self._visualisers()[method]
            common = dict(penultimate_layer=PENULTIMATE_LAYER, seek_penultimate_conv_layer=False)
            if method == "smoothgrad":
                state = np.random.get_state()
                np.random.seed(self.seed)
                try:
                    out = vis(
                        score,
                        xb,
                        smooth_samples=self.smooth_samples,
                        smooth_noise=self.smooth_noise,
                        normalize_map=normalize,
                    )
                finally:
                    np.random.set_state(state)
            elif method == "scorecam":
                out = vis(
                    score,
                    xb,
                    max_N=self.scorecam_max_n,
                    expand_cam=expand_cam,
                    normalize_cam=normalize,
                    **common,
                )
            else:
                out = vis(score, xb, expand_cam=expand_cam, normalize_cam=normalize, **common)
        return np.asarray(out, dtype=np.float32)[0]

    def smoothgrad(self, x: np.ndarray, class_index: int) -> np.ndarray:
        """SmoothGrad of one model input (un-normalised, input resolution).

        tf-keras-vis's ``Saliency(smooth_samples=n)`` runs n separate eager
        forward/backward passes; here the same n noisy copies (the same noise:
        ``numpy.random.RandomState(seed)`` draws exactly what tf-keras-vis draws
        after ``np.random.seed(seed)``) go through ONE ``Saliency`` call as a
        batch, and the per-copy ``|gradient|`` maps are averaged, which is
        tf-keras-vis's formula. No global random state is touched.
        """
        from tf_keras_vis.utils.scores import CategoricalScore

        xb = self._as_batch(x)[:1]
        n = self.smooth_samples
        sigma = self.smooth_noise * (float(xb.max()) - float(xb.min()))
        noise = np.random.RandomState(self.seed).normal(0.0, sigma, (n,) + xb.shape)
        noisy = (xb[None] + noise.astype(np.float32)).reshape((n,) + xb.shape[1:])
        with self._lock:
            vis = self._visualisers()["smoothgrad"]
            grads = vis(
                CategoricalScore([int(class_index)] * n),
                noisy,
                smooth_samples=0,
                normalize_map=False,
            )
        return np.asarray(grads, dtype=np.float32).mean(axis=0)

    # ------------------------------------------------------------------- public
    def raw(
        self, x: np.ndarray, method: str, class_index: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Un-normalised map of one model input and the class it explains.

        CAMs come at feature resolution, SmoothGrad at input resolution.
        """
        _check_method(method)
        if method in FAST_METHODS:
            res = self.fast_cams(x, class_index)
            return res.cam(method)[0], int(res.targets[0])
        xb = self._as_batch(x)[:1]
        if class_index is None:
            class_index = int(np.argmax(self.classifier.logits(xb)[0]))
        else:
            class_index = int(self._targets(1, class_index)[0])
        if method == "smoothgrad":
            return self.smoothgrad(xb, class_index), class_index
        return self.reference(xb, method, class_index, normalize=False), class_index

    def to_image(
        self, raw_map: np.ndarray, shape: tuple[int, ...], crop: Box | None = None
    ) -> np.ndarray:
        """Maps a model-space map onto an image of ``shape`` (made with ``crop``) and
        normalises it to [0, 1]."""
        return normalize_map(self.classifier.to_image(raw_map, shape, crop))

    def explain_with_class(
        self, gray: np.ndarray, method: str = "gradcam", class_index: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Like :meth:`explain`, also returning the class index explained."""
        crop = self.classifier.crop_box(gray)
        raw, target = self.raw(self.classifier.prepare(gray, crop), method, class_index)
        return self.to_image(raw, gray.shape, crop), target

    def explain(
        self, gray: np.ndarray, method: str = "gradcam", class_index: int | None = None
    ) -> np.ndarray:
        """Heatmap of a grayscale image, at the image's own size.

        Args:
            gray: 2-D uint8 image (any size); prepared with the classifier's preprocessing.
            method: One of :data:`METHODS`.
            class_index: Class to explain; ``None`` = the predicted class.

        Returns:
            float32 map of ``gray.shape[:2]`` in [0, 1].
        """
        return self.explain_with_class(gray, method, class_index)[0]

    def explain_input(
        self, x: np.ndarray, method: str = "gradcam", class_index: int | None = None
    ) -> np.ndarray:
        """Heatmap of a model input (already prepared), at the input's size (S, S)."""
        raw, _ = self.raw(x, method, class_index)
        s = self.size
        if raw.shape != (s, s):
            raw = cv2.resize(raw.astype(np.float32), (s, s), interpolation=cv2.INTER_LINEAR)
        return normalize_map(raw)


# ------------------------------------------------------------- module interface
#: Explainers of the last few models (an Explainer holds its model, so a
#: weak-keyed cache could never drop an entry; a small LRU bounds the memory).
_CACHE: OrderedDict[int, tuple[Any, Explainer]] = OrderedDict()
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


def _wrap(model: keras.Model) -> Classifier:
    size = int(model.input_shape[1])
    # A bare keras.Model has no saved preprocessing: resize only, no contrast change.
    return Classifier(model, {"preprocess": {"size": size, "contrast": "none"}})


def get_explainer(model: Classifier | keras.Model) -> Explainer:
    """The cached :class:`Explainer` of a classifier or bare Keras model (built once)."""
    with _CACHE_LOCK:
        hit = _CACHE.get(id(model))
        if hit is not None and hit[0] is model:
            _CACHE.move_to_end(id(model))
            return hit[1]
        clf = model if isinstance(model, Classifier) else _wrap(model)
        explainer = Explainer(clf)
        _CACHE[id(model)] = (model, explainer)  # holding the model keeps its id unique
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return explainer


def explain(
    model: Classifier | keras.Model,
    image: np.ndarray,
    method: str = "gradcam",
    class_index: int | None = None,
) -> np.ndarray:
    """Heatmap in [0, 1] for one image, reusing a cached :class:`Explainer` per model.

    Args:
        model: A :class:`~cxrlib.infer.classifier.Classifier` or a bare Keras classifier
            (with ``last_conv`` and ``logits`` layers; inputs are only resized).
        image: A 2-D uint8 grayscale image of any size (prepared, and the map
            returned at its size), or the model input itself, float or with a
            channel/batch axis, (S, S, 1) / (1, S, S, 1) / float (S, S) (map at (S, S)).
        method: One of :data:`METHODS`.
        class_index: Class to explain; ``None`` = the predicted class.

    Returns:
        float32 map in [0, 1].
    """
    explainer = get_explainer(model)
    img = np.asarray(image)
    if img.ndim == 2 and img.dtype == np.uint8:
        return explainer.explain(img, method, class_index)
    return explainer.explain_input(img, method, class_index)

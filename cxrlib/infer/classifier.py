"""The classifier: a flat functional Keras 3 model and its saved metadata.

tf-keras-vis cannot look inside a nested backbone, so the backbone is built
on the model's own input tensor and the head is put on a named layer of it
(never ``Sequential([base, head])``).

Layer names the rest of the package relies on:
    ``last_conv``: the last convolutional feature map (Grad-CAM's layer).
    ``logits``: the Dense layer before the softmax (temperature scaling).
    ``probs``: the softmax output.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cxrlib.infer.preprocess import (  # noqa: E402
    Box,
    PreprocessConfig,
    heatmap_to_image,
    prepare,
    to_geometry,
)
from cxrlib.infer.views import View, view_batch, views_by_name  # noqa: E402

CLASS_NAMES: tuple[str, ...] = ("covid", "normal", "pneumonia")
PENULTIMATE_LAYER = "last_conv"
LOGITS_LAYER = "logits"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "cxr_classifier.keras"


#: First-stage filters of the trunks that have a width, when none is given.
DEFAULT_WIDTHS: dict[str, int] = {"resnet": 32, "small": 16}


class ModelError(RuntimeError):
    """The model file is missing, unreadable or does not match its JSON."""


def _set_bn_momentum(model: keras.Model, momentum: float) -> None:
    # Keras applications use momentum 0.999: trained from scratch for a few
    # thousand steps the moving statistics never catch up, and validation
    # predicts a single class (measured on this data, see STACK-NOTES.md).
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _mobilenet_trunk(x: keras.KerasTensor, alpha: float) -> keras.KerasTensor:
    """MobileNetV2 cut at stride 16 (after block 12), built on ``x``.

    Stopping at stride 16 gives a 10 x 10 Grad-CAM grid at 160 px instead of
    5 x 5, and drops the widest, least useful blocks for a from-scratch model.
    """
    base = keras.applications.MobileNetV2(
        input_tensor=x, include_top=False, weights=None, alpha=alpha
    )
    return base.get_layer("block_12_add").output


def _small_trunk(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """A 4-block plain CNN (tests and quick experiments)."""
    for i, filters in enumerate((width, width * 2, width * 4, width * 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"b{i}_bn")(x)
        x = keras.layers.ReLU(name=f"b{i}_relu")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"b{i}_pool")(x)
    return x


def _resnet_trunk(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """A narrow ResNet (basic blocks, 2-2-2) cut at stride 16, built on ``x``.

    ResNet-18's stem and first three stages at ``width`` (ResNet-18: 64) filters;
    its fourth stage is left out for the same Grad-CAM grid as the MobileNetV2
    trunk (10 x 10 at 160 px). Plain 3 x 3 convolutions run faster per parameter
    than depthwise ones on a 2-core CPU (``benchmarks/arch_speed.py``).
    """
    x = keras.layers.Conv2D(width, 5, strides=2, padding="same", use_bias=False, name="stem_conv")(
        x
    )
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"s{stage}b{block}"
            y = keras.layers.Conv2D(
                filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
            )(x)
            y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
            y = keras.layers.ReLU(name=f"{name}_relu1")(y)
            y = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"{name}_conv2"
            )(y)
            y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
            if stride != 1 or x.shape[-1] != filters:
                x = keras.layers.Conv2D(
                    filters, 1, strides=stride, use_bias=False, name=f"{name}_proj"
                )(x)
                x = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(x)
            x = keras.layers.Add(name=f"{name}_add")([x, y])
            x = keras.layers.ReLU(name=f"{name}_out")(x)
    return x


def build_classifier(
    size: int = 160,
    arch: str = "mobilenetv2",
    alpha: float = 0.5,
    width: int | None = None,
    head_filters: int = 256,
    dropout: float = 0.2,
    bn_momentum: float = 0.95,
    n_classes: int = len(CLASS_NAMES),
    seed: int | None = None,
) -> keras.Model:
    """Builds the flat classifier.

    Args:
        size: Input side in pixels; the input is ``(size, size, 1)`` uint8-valued floats.
        arch: ``"mobilenetv2"`` (stride-16 MobileNetV2 trunk), ``"resnet"`` (narrow
            stride-16 ResNet) or ``"small"`` (4-block CNN).
        alpha: MobileNetV2 width multiplier.
        width: Filters of the first block of the ResNet or small CNN
            (default: :data:`DEFAULT_WIDTHS`).
        head_filters: Channels of the ``last_conv`` 1x1 convolution.
        dropout: Dropout before the logits.
        bn_momentum: BatchNorm momentum for every BN layer.
        n_classes: Number of output classes.
        seed: Seed for weight initialisation.

    Returns:
        An uncompiled functional model with layers ``last_conv``, ``logits``, ``probs``.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 1), name="image")
    # The model takes raw 0-255 pixels; MobileNet's stem wants [-1, 1].
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    if arch == "mobilenetv2":
        x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
        trunk = _mobilenet_trunk(x, alpha)
    elif arch == "resnet":
        trunk = _resnet_trunk(x, width or DEFAULT_WIDTHS["resnet"])
    elif arch == "small":
        trunk = _small_trunk(x, width or DEFAULT_WIDTHS["small"])
    else:
        raise ValueError(f"unknown arch {arch!r}")
    x = keras.layers.Conv2D(head_filters, 1, use_bias=False, name="head_conv")(trunk)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(name=PENULTIMATE_LAYER)(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(n_classes, name=LOGITS_LAYER)(x)
    outputs = keras.layers.Activation("softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name=f"cxr_{arch}")
    _set_bn_momentum(model, bn_momentum)
    return model


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _compiled_forward(model: keras.Model, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """float32 ``(N, size, size, 1)`` -> logits as numpy, compiled once.

    Under TensorFlow (the app's backend) a ``tf.function``: ``model.predict`` on one
    image is several times slower. Other Keras backends (JAX, for training on a GPU
    machine) call the model as it is; TensorFlow is imported only where it is used.
    """
    if keras.backend.backend() != "tensorflow":
        return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
    import tensorflow as tf

    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: fn(tf.constant(x)).numpy()


def meta_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


@dataclass
class Classifier:
    """A trained model with its metadata and a compiled forward pass.

    Thread-safe for prediction: Streamlit serves every session from threads
    of one process, and ``tf.function`` calls may run concurrently.
    """

    model: keras.Model
    meta: dict[str, Any] = field(default_factory=dict)
    segmenter: Any = None  # a LungSegmenter for lung-crop models; default: the committed one

    def __post_init__(self) -> None:
        self._frames = ImageMemo(512)
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
        self._logits_fn = _compiled_forward(self.logits_model, size)

    def lung_segmenter(self) -> Any:
        """The lung segmenter that makes this model's crop boxes (loaded on first use)."""
        if self.segmenter is None:
            from cxrlib.infer.lungs import default_segmenter  # lungs imports this module

            self.segmenter = default_segmenter()
        return self.segmenter

    def lung_frames(
        self, grays: Sequence[np.ndarray]
    ) -> list[tuple[Box | None, np.ndarray | None]]:
        """Crop box and lung mask of each image, as this model's preprocessing needs them.

        The box is None unless the model is ``lung_crop``, the mask None unless
        it is ``lung_mask``. Both are remembered per image content (a few
        hundred), so preparing an image, explaining it and mapping its heatmap
        back segment it once.
        """
        pre = self.preprocess
        if not pre.uses_lungs:
            return [(None, None)] * len(grays)

        def segment(todo: list[np.ndarray]) -> list[tuple[Box | None, np.ndarray | None]]:
            found = self.lung_segmenter().frames(todo, pre.lung_margin)
            return [pre.used_frame(box, mask) for box, mask in found]

        return self._frames.get_many(grays, segment)

    def forget_images(self) -> None:
        """Drops the remembered crop boxes and masks (the next image is segmented afresh)."""
        self._frames.clear()

    def crop_boxes(self, grays: Sequence[np.ndarray]) -> list[Box | None]:
        """The crop box of each image: its lung box for a ``lung_crop`` model, else None."""
        return [box for box, _ in self.lung_frames(grays)]

    def crop_box(self, gray: np.ndarray) -> Box | None:
        """The crop box of one image (see :meth:`lung_frames`)."""
        return self.lung_frames([gray])[0][0]

    def lung_masks(self, grays: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """The lung mask of each image for a ``lung_mask`` model, else None."""
        return [mask for _, mask in self.lung_frames(grays)]

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


class ImageMemo:
    """Per-image results remembered by image content, the oldest dropped beyond ``capacity``.

    Thread-safe; the computation itself runs outside the lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(
        self, grays: Sequence[np.ndarray], compute: Callable[[list[np.ndarray]], Sequence[Any]]
    ) -> list[Any]:
        """The result for each image; ``compute`` gets those not remembered, in one call."""
        keys = [image_key(g) for g in grays]
        with self._lock:
            known = {k: self._items[k] for k in keys if k in self._items}
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            found = compute([grays[i] for i in todo])
            with self._lock:
                for i, value in zip(todo, found, strict=True):
                    known[keys[i]] = self._items[keys[i]] = value
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        return [known[k] for k in keys]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def image_key(gray: np.ndarray) -> bytes:
    """A short digest of an image's pixels and shape (for per-image memos)."""
    a = np.ascontiguousarray(gray)
    return hashlib.blake2b(a.tobytes(), digest_size=16, person=repr(a.shape).encode()[:16]).digest()


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


def save_classifier(model: keras.Model, meta: dict[str, Any], path: str | Path) -> Path:
    """Saves ``model`` to ``path`` (.keras) and ``meta`` (+ weights hash) beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if getattr(model, "optimizer", None) is not None:
        # The same layers without the training state: the optimizer's moments were over
        # half the file (two thirds for a wide ResNet), and classifiers load with
        # compile=False, so nothing reads them.
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    model.save(path)
    meta = dict(meta)
    meta["weights_sha256"] = sha256_file(path)
    meta.setdefault("class_names", list(CLASS_NAMES))
    meta_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_classifier(path: str | Path = DEFAULT_MODEL_PATH, segmenter: Any = None) -> Classifier:
    """Loads a ``.keras`` classifier and its JSON; raises :class:`ModelError`.

    A model trained on lung-cropped inputs also needs a lung segmenter:
    ``segmenter``, or by default the committed one.
    """
    path = Path(path)
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

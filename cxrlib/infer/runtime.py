"""What the classifier and the lung segmenter share: a compiled forward pass and a
per-image memo.

Both models are Keras files loaded with ``compile=False``; both are called on many
small batches from the app's threads, so each gets one compiled forward pass. The
segmenter remembers its last results per image content (:func:`per_image`) in a
:class:`cxrlib.core.cache.LRUCache`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from cxrlib.core.cache import LRUCache
from cxrlib.core.hashing import sha256_bytes

#: Memos are bounded by their number of images; this byte bound is never the one that bites.
_MEMO_BYTES = 2**40
_MISSING = object()


def compiled_forward(model: keras.Model, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """float32 ``(N, size, size, 1)`` -> the model's output as numpy, compiled once.

    Under TensorFlow (the app's backend) a ``tf.function``: ``model.predict`` on one
    image is several times slower. Other Keras backends (JAX, for training on a GPU
    machine) call the model as it is.
    """
    if keras.backend.backend() != "tensorflow":
        return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
    import tensorflow as tf  # only under the TensorFlow backend (a JAX machine has none)

    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: fn(tf.constant(x)).numpy()


def image_memo(capacity: int) -> LRUCache:
    """A cache for per-image results, bounded by ``capacity`` images (see :func:`per_image`)."""
    return LRUCache(max_items=capacity, max_bytes=_MEMO_BYTES)


def image_key(gray: np.ndarray) -> str:
    """The hash of an image's pixels and shape (the key of a per-image memo)."""
    a = np.ascontiguousarray(gray)
    return sha256_bytes(repr(a.shape).encode() + a.tobytes())


def per_image(
    memo: LRUCache,
    grays: Sequence[np.ndarray],
    compute: Callable[[list[np.ndarray]], Sequence[Any]],
) -> list[Any]:
    """The result for each image: remembered in ``memo``, or from one ``compute`` call
    over the images not remembered."""
    keys = [image_key(g) for g in grays]
    known = {k: v for k in keys if (v := memo.get(k, _MISSING)) is not _MISSING}
    todo = [i for i, k in enumerate(keys) if k not in known]
    if todo:
        found = compute([grays[i] for i in todo])
        for i, value in zip(todo, found, strict=True):
            known[keys[i]] = value
            memo.put(keys[i], value)
    return [known[k] for k in keys]


def device_description() -> str:
    """``"GPU: <name>"`` when TensorFlow sees a GPU, else ``"CPU"``."""
    import tensorflow as tf  # not at the top: Keras may run on JAX (training on a GPU machine)

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name") or gpus[0].name
    except Exception:  # noqa: BLE001 - details are optional
        name = gpus[0].name
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"GPU: {name}{more}"

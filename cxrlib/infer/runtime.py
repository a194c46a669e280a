"""What the classifier and the lung segmenter share: a compiled forward pass, a device."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def compiled_forward(model: keras.Model, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """float32 ``(N, size, size, 1)`` -> the model's output as numpy: a ``tf.function``
    under TensorFlow (far faster than ``predict`` on one image), else the model itself."""
    if keras.backend.backend() != "tensorflow":
        return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
    import tensorflow as tf  # only under the TensorFlow backend (a JAX machine has none)

    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: fn(tf.constant(x)).numpy()


def device_description() -> str:
    """``"GPU: <name>"`` when TensorFlow sees a GPU, else ``"CPU"``."""
    import tensorflow as tf  # not at the top: Keras may run on JAX

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
    except Exception:  # noqa: BLE001 - details are optional
        name = None
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"GPU: {name or gpus[0].name}{more}"

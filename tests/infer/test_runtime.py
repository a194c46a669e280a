"""cxrlib.infer.runtime: what the models share (here: the device they run on)."""

from __future__ import annotations

from cxrlib.infer.runtime import device_description


def test_device_description_matches_tensorflow():
    import tensorflow as tf

    text = device_description()
    if tf.config.list_physical_devices("GPU"):
        assert text.startswith("GPU: ")
    else:
        assert text == "CPU"

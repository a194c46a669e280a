"""The model architectures CXR Lens trains: the classifier and the lung U-Net.

Both are flat functional models of built-in layers, so inference loads the saved files without
this module, and tf-keras-vis can see inside the classifier (its trunk is built on the model's
own input tensor). A new trunk: docs/architecture.md.
"""

from __future__ import annotations

from typing import Any

import keras

from cxrlib.infer.classifier import CLASS_NAMES, LOGITS_LAYER, PENULTIMATE_LAYER
from cxrlib.infer.lungs import CONVENTIONS, OUTPUT_LAYER

#: The classifier trunks :func:`build_classifier` knows (``--arch``).
ARCHITECTURES: tuple[str, ...] = ("mobilenetv2", "small")

#: First-stage filters of the trunks that have a width, when none is given.
DEFAULT_WIDTHS: dict[str, int] = {"small": 16}


def _small_trunk(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """A 4-block plain CNN (tests and quick experiments)."""
    for i, filters in enumerate((width, width * 2, width * 4, width * 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"b{i}_bn")(x)
        x = keras.layers.ReLU(name=f"b{i}_relu")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"b{i}_pool")(x)
    return x


def build_classifier(
    size: int = 160,
    arch: str = "mobilenetv2",
    alpha: float = 0.5,
    width: int | None = None,
    head_filters: int = 256,
    bn_momentum: float = 0.95,
    seed: int | None = None,
) -> keras.Model:
    """The uncompiled classifier on ``(size, size, 1)`` raw 0-255 pixels: the ``arch`` trunk
    (``alpha``: MobileNetV2's width multiplier; ``width``: the small CNN's first filters), a
    ``head_filters`` 1x1 convolution, pooling, dropout, logits and softmax."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 1), name="image")
    # The model takes raw 0-255 pixels; MobileNet's stem wants [-1, 1].
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    if arch == "mobilenetv2":
        x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
        base = keras.applications.MobileNetV2(
            input_tensor=x, include_top=False, weights=None, alpha=alpha
        )
        # Cut at stride 16 (after block 12): a finer Grad-CAM grid, without the widest blocks.
        trunk = base.get_layer("block_12_add").output
    elif arch == "small":
        trunk = _small_trunk(x, width or DEFAULT_WIDTHS["small"])
    else:
        raise ValueError(f"unknown arch {arch!r}")
    x = keras.layers.Conv2D(head_filters, 1, use_bias=False, name="head_conv")(trunk)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(name=PENULTIMATE_LAYER)(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    x = keras.layers.Dense(len(CLASS_NAMES), name=LOGITS_LAYER)(x)
    outputs = keras.layers.Activation("softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name=f"cxr_{arch}")
    # Keras applications use momentum 0.999: trained from scratch for a few thousand steps
    # the moving statistics never catch up, and validation predicts a single class.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    return model


def _conv_block(x: keras.KerasTensor, base_filters: int, level: int, name: str) -> Any:
    """Two 3x3 convolutions with BatchNorm (momentum 0.9) and ReLU; filters double per
    level up to 96, which keeps the file small."""
    filters = min(base_filters * 2**level, 96)
    for i in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_unet(size: int = 128, base_filters: int = 16, depth: int = 4) -> keras.Model:
    """A U-Net of ``depth`` down-sampling steps from raw 0-255 pixels to one sigmoid lung channel
    per mask convention (``size`` divisible by ``2**depth``)."""
    if size % (2**depth):
        raise ValueError(f"size {size} must be divisible by {2**depth}")
    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skips = []
    for d in range(depth):
        x = _conv_block(x, base_filters, d, f"enc{d}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"enc{d}_pool")(x)
    x = _conv_block(x, base_filters, depth, "mid")
    for d in reversed(range(depth)):
        x = keras.layers.UpSampling2D(interpolation="bilinear", name=f"dec{d}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{d}_cat")([x, skips[d]])
        x = _conv_block(x, base_filters, d, f"dec{d}")
    out = keras.layers.Conv2D(len(CONVENTIONS), 1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name="lung_unet")

"""The model architectures CXR Lens trains: the classifier and the lung U-Net.

Both are flat functional Keras models of built-in layers, saved as ``.keras`` files,
so inference (:mod:`cxrlib.infer`) loads them without this module. tf-keras-vis cannot
look inside a nested backbone, so the classifier's trunk is built on the model's own
input tensor and the head is put on a named layer of it (never
``Sequential([base, head])``); the layer names inference relies on are
:data:`cxrlib.infer.classifier.PENULTIMATE_LAYER` and
:data:`cxrlib.infer.classifier.LOGITS_LAYER`.

To add a classifier architecture: write a ``_<name>_trunk(x, ...)`` that returns a
stride-16 feature map, add it to :func:`build_classifier` and to the ``--arch``
choices of ``python -m cxrlib.train``.
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


def _set_bn_momentum(model: keras.Model, momentum: float) -> None:
    # Keras applications use momentum 0.999: trained from scratch for a few
    # thousand steps the moving statistics never catch up, and validation
    # predicts a single class (measured on this data).
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
        arch: ``"mobilenetv2"`` (stride-16 MobileNetV2 trunk) or ``"small"`` (4-block CNN).
        alpha: MobileNetV2 width multiplier.
        width: Filters of the small CNN's first block (default: :data:`DEFAULT_WIDTHS`).
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


# --------------------------------------------------------------------------- lung U-Net


def _conv_block(x: keras.KerasTensor, filters: int, name: str, momentum: float) -> Any:
    for i in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(
            x
        )
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_unet(
    size: int = 128,
    base_filters: int = 16,
    depth: int = 4,
    max_filters: int = 96,
    outputs: int = len(CONVENTIONS),
    bn_momentum: float = 0.9,
) -> keras.Model:
    """Builds a flat functional U-Net.

    Args:
        size: Side of the square input, divisible by ``2**depth``.
        base_filters: Filters at full resolution; doubled per level.
        depth: Number of down-sampling steps.
        max_filters: Cap on filters per level (keeps the file small).
        outputs: Sigmoid output channels (one per mask convention).
        bn_momentum: BatchNorm momentum (0.9: statistics keep up when training
            from scratch for a few thousand steps).

    Returns:
        Model mapping ``(None, size, size, 1)`` raw 0..255 floats to
        ``(None, size, size, outputs)`` lung probabilities.
    """
    if size % (2**depth):
        raise ValueError(f"size {size} must be divisible by {2**depth}")
    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skips = []
    for d in range(depth):
        x = _conv_block(x, min(base_filters * 2**d, max_filters), f"enc{d}", bn_momentum)
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"enc{d}_pool")(x)
    x = _conv_block(x, min(base_filters * 2**depth, max_filters), "mid", bn_momentum)
    for d in reversed(range(depth)):
        x = keras.layers.UpSampling2D(interpolation="bilinear", name=f"dec{d}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{d}_cat")([x, skips[d]])
        x = _conv_block(x, min(base_filters * 2**d, max_filters), f"dec{d}", bn_momentum)
    out = keras.layers.Conv2D(outputs, 1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name="lung_unet")

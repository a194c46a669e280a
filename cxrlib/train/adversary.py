"""A source adversary for training: penalise features that tell the hospitals apart.

Class and source are confounded in the training data, so a classifier can score well by
recognising *where* an image comes from. Following conditional domain-adversarial training
(Li et al., "Deep domain generalization via conditional invariant adversarial networks",
ECCV 2018), a small head tries to predict each image's source from the classifier's pooled
features *given its class*, and a gradient-reversal layer (Ganin and Lempitsky, ICML 2015)
turns the head's success into a penalty for the trunk. Conditioning on the class matters here:
the sources differ in their class mix, and an unconditional adversary would push the trunk to
forget the class itself.

The adversary exists only while training: the saved classifier is the plain flat model
(:func:`cxrlib.train.architectures.build_classifier`), which shares its layers with the training model.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

SOURCE_OUTPUT = "source"
"""Name of the adversary's softmax output in the training model."""


@keras.saving.register_keras_serializable(package="cxrlib")
class GradientReversal(keras.layers.Layer):
    """Identity on the way forward; multiplies the gradient by ``-strength`` on the way back.

    Written with ``stop_gradient`` alone, so it works on every Keras backend:
    ``stop_gradient((1 + s) * x) - s * x`` equals ``x``, and its gradient is ``-s``.
    """

    def __init__(self, strength: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strength = float(strength)

    def call(self, x: Any) -> Any:
        s = self.strength
        return ops.stop_gradient((1.0 + s) * x) - s * x

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength}


def with_source_adversary(
    classifier: keras.Model,
    n_sources: int,
    strength: float,
    hidden: int = 64,
    features_layer: str = "gap",
) -> keras.Model:
    """The training model: the classifier plus a class-conditional source adversary.

    Args:
        classifier: A flat classifier from :func:`cxrlib.train.architectures.build_classifier`.
        n_sources: Number of training sources (the adversary's classes).
        strength: How strongly the trunk is pushed away from what the adversary uses
            (the reversed gradient's scale).
        hidden: Units of the adversary's hidden layer.
        features_layer: The pooled features the adversary reads.

    Returns:
        A model with inputs ``[image, class]`` (the class as a one-hot or soft target) and
        outputs ``[probs, source]``; its layers up to ``probs`` are the classifier's own.
    """
    n_classes = int(classifier.output.shape[-1])
    given = keras.Input((n_classes,), name="given_class")
    features = classifier.get_layer(features_layer).output
    x = GradientReversal(strength, name="reverse_gradient")(features)
    x = keras.layers.Concatenate(name="adversary_in")([x, given])
    x = keras.layers.Dense(hidden, activation="relu", name="adversary_hidden")(x)
    source = keras.layers.Dense(n_sources, activation="softmax", name=SOURCE_OUTPUT)(x)
    return keras.Model([classifier.input, given], [classifier.output, source], name="adversarial")


def source_codes(sources: list[str] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes for each image's source, and the sorted source names they index."""
    names = sorted({str(s) for s in sources})
    index = {s: i for i, s in enumerate(names)}
    return np.array([index[str(s)] for s in sources], np.int64), names

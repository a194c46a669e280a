"""LayerCAM (Jiang et al., IEEE TIP 2021): every position weighted by its own positive gradient."""

from __future__ import annotations

import tensorflow as tf

from cxrlib.infer.heatmaps.gradcam import GradCAM


class LayerCAM(GradCAM):
    """``relu(sum_k A_k * relu(dS/dA_k))`` (``tf_keras_vis.layercam.Layercam``)."""

    visualiser = "tf_keras_vis.layercam:Layercam"

    @staticmethod
    def weights(acts: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(grads)

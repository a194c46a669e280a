"""Grad-CAM (Selvaraju et al., ICCV 2017): activations weighted by their mean gradient."""

from __future__ import annotations

import tensorflow as tf

from cxrlib.infer.heatmaps.base import CamMethod


class GradCAM(CamMethod):
    """``relu(sum_k A_k * mean_ij dS/dA_k)`` (``tf_keras_vis.gradcam.Gradcam``)."""

    visualiser = "tf_keras_vis.gradcam:Gradcam"

    @staticmethod
    def weights(acts: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(grads, axis=(1, 2), keepdims=True)

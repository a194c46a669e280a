"""Grad-CAM++ (Chattopadhyay et al., WACV 2018): higher-order gradient weights."""

from __future__ import annotations

import tensorflow as tf

from cxrlib.infer.heatmaps.gradcam import GradCAM

#: ``S`` is clipped before ``exp`` so that it cannot overflow (no realistic logit is).
EXP_CLIP = 80.0


class GradCAMPlusPlus(GradCAM):
    """tf-keras-vis's ``GradcamPlusPlus``: ``exp(S)`` derivatives, alphas, ``relu`` weights."""

    visualiser = "tf_keras_vis.gradcam_plus_plus:GradcamPlusPlus"

    @staticmethod
    def weights(acts: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        space = (1, 2)
        expo = tf.exp(tf.clip_by_value(score, -EXP_CLIP, EXP_CLIP))[:, None, None, None]
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
        return tf.reduce_sum(tf.nn.relu(first) * alphas, axis=space, keepdims=True)

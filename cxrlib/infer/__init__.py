"""Inference: the straight line from a grayscale image to a diagnosis and its heatmap."""

import os

# Quiet TensorFlow's C++ start-up messages; set before any module here imports Keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""What the app shows about one image: the :class:`Diagnosis` dataclass.

Its own module, without TensorFlow, so that a page which receives a diagnosis
from the model server (:mod:`cxrlib.serve.client`) does not import Keras to
hold it; :mod:`cxrlib.infer.diagnose` computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """Everything the app shows about one image (rendering excluded).

    Attributes:
        class_names: Class names, in the model's order.
        probabilities: (K,) calibrated probabilities: the model's prediction,
            averaged over the test-time views when the model has them
            (:meth:`cxrlib.infer.classifier.Classifier.combine_views`), else the original's.
        predicted_index: Index of the most probable class.
        predicted_name: Its name.
        uncertainty: (K, 2) lowest and highest calibrated probability of each
            class over the original image and its test-time views.
        view_probabilities: (V, K) calibrated probabilities of every view
            (row 0 is the original).
        view_names: Names of the views ("original" first).
        averaged: The probabilities are the average over the views.
        target_index: The class the heatmap explains.
        target_name: Its name.
        method: The explanation method.
        heatmap: float32 map in [0, 1] at the image's size.
        lung_mask: Boolean lung mask at the image's size, or None without a segmenter.
        lung_focus: Share of the heatmap inside the lungs, or None when unknown.
        lung_area: Share of the image covered by the lungs, or None.
        focus_level: One of :data:`cxrlib.infer.verdict.FOCUS_LEVELS`.
        focus_verdict: One sentence (or two) for the user.
        model_crop: ``(top, bottom, left, right)`` of the part of the image the
            model saw (a lung-crop model's lung box), or None for the whole image.
    """

    class_names: tuple[str, ...]
    probabilities: np.ndarray
    predicted_index: int
    predicted_name: str
    uncertainty: np.ndarray
    view_probabilities: np.ndarray
    view_names: tuple[str, ...]
    target_index: int
    target_name: str
    method: str
    heatmap: np.ndarray
    lung_mask: np.ndarray | None
    lung_focus: float | None
    lung_area: float | None
    focus_level: str
    focus_verdict: str
    model_crop: tuple[int, int, int, int] | None = None
    averaged: bool = False

    @property
    def confidence(self) -> float:
        """Calibrated probability of the predicted class."""
        return float(self.probabilities[self.predicted_index])

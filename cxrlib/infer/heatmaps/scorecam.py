"""Faster Score-CAM (Wang et al., CVPR-W 2020), run by tf-keras-vis on the linear copy of
the model, since tf-keras-vis applies the softmax that gives the paper's weights itself."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlib.infer.classifier import PENULTIMATE_LAYER
from cxrlib.infer.heatmaps.base import ExplainedModel, HeatmapMethod


class ScoreCAM(HeatmapMethod):
    """Channels weighted by the class score of the input masked by each channel; ``max_n``
    is Faster Score-CAM's ``max_N`` (channels kept)."""

    visualiser = "tf_keras_vis.scorecam:Scorecam"

    def __init__(self, model: ExplainedModel, max_n: int = 10) -> None:
        super().__init__(model)
        self.max_n = max_n

    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        return self.reference(xb, target, normalize=False)

    def _visualise(self, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool) -> Any:
        return self.vis(
            score,
            xb,
            max_N=self.max_n,
            expand_cam=expand_cam,
            normalize_cam=normalize,
            penultimate_layer=PENULTIMATE_LAYER,
            seek_penultimate_conv_layer=False,
        )

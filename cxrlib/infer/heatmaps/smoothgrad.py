"""SmoothGrad (Smilkov et al., 2017): ``|gradient|`` averaged over noisy copies of the input."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlib.infer.heatmaps.base import ExplainedModel, HeatmapMethod


class SmoothGrad(HeatmapMethod):
    """tf-keras-vis's ``Saliency(smooth_samples=samples)`` with the same seeded noise, drawn
    without touching the global random state, and the copies in ONE ``Saliency`` call."""

    visualiser = "tf_keras_vis.saliency:Saliency"

    def __init__(
        self, model: ExplainedModel, samples: int = 20, noise: float = 0.2, seed: int = 0
    ) -> None:
        super().__init__(model)
        self.samples = samples
        self.noise = noise
        self.seed = seed

    def compute(self, xb: np.ndarray, target: int) -> np.ndarray:
        """The un-normalised map at input resolution."""
        from tf_keras_vis.utils.scores import CategoricalScore  # optional, heavy

        n = self.samples
        sigma = self.noise * (float(xb.max()) - float(xb.min()))
        noise = np.random.RandomState(self.seed).normal(0.0, sigma, (n,) + xb.shape)
        noisy = (xb[None] + noise.astype(np.float32)).reshape((n,) + xb.shape[1:])
        with self.model.lock:
            grads = self.vis(
                CategoricalScore([int(target)] * n), noisy, smooth_samples=0, normalize_map=False
            )
        return np.asarray(grads, dtype=np.float32).mean(axis=0)

    def _visualise(self, score: Any, xb: np.ndarray, expand_cam: bool, normalize: bool) -> Any:
        # tf-keras-vis draws its noise from numpy's global generator: seeded, then restored.
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            return self.vis(
                score,
                xb,
                smooth_samples=self.samples,
                smooth_noise=self.noise,
                normalize_map=normalize,
            )
        finally:
            np.random.set_state(state)

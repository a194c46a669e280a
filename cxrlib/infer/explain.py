"""Heatmaps of one classifier by every registered method, behind one facade."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import import_module
from typing import Any

import numpy as np

from cxrlib.core.methods import METHODS, REGISTRY, check_method
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.heatmaps.base import CamMethod, CamPass, ExplainedModel, FastCams, HeatmapMethod
from cxrlib.infer.preprocess import prepare


def method_class(method: str) -> type[HeatmapMethod]:
    """The class of a registered method (ValueError for an unknown key), imported on use."""
    module, _, name = REGISTRY[check_method(method)].target.partition(":")
    cls: type[HeatmapMethod] = getattr(import_module(module), name)
    return cls


class Explainer(ExplainedModel):
    """Explains one classifier with every registered method, the CAMs on one shared pass."""

    def __init__(self, classifier: Classifier, smooth_samples: int = 20, seed: int = 0) -> None:
        super().__init__(classifier)
        kwargs: dict[str, dict[str, Any]] = {
            "smoothgrad": {"samples": smooth_samples, "seed": seed}
        }
        classes = {key: method_class(key) for key in METHODS}
        cams = {k: c for k, c in classes.items() if issubclass(c, CamMethod)}
        self.fast_methods: tuple[str, ...] = tuple(cams)
        self._cams = CamPass(self, cams)
        self.methods: dict[str, HeatmapMethod] = {
            key: cls(self, cams=self._cams)  # type: ignore[call-arg]
            if key in cams
            else cls(self, **kwargs.get(key, {}))
            for key, cls in classes.items()
        }

    def method(self, key: str) -> HeatmapMethod:
        """The bound method of a key (ValueError for an unknown one)."""
        return self.methods[check_method(key)]

    def fast_cams(
        self, batch: np.ndarray, class_index: int | Sequence[int] | None = None
    ) -> FastCams:
        """Logits and every CAM's raw map, one compiled pass."""
        return self._cams(batch, class_index)

    def reference(
        self,
        x: np.ndarray,
        method: str,
        class_index: int,
        expand_cam: bool = False,
        normalize: bool = True,
    ) -> np.ndarray:
        """The plain tf-keras-vis map of one model input."""
        return self.method(method).reference(x, class_index, expand_cam, normalize)

    def raw(
        self, x: np.ndarray, method: str, class_index: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Un-normalised map of one model input and the class it explains."""
        return self.method(method).raw(x, class_index)

    def explain(
        self, gray: np.ndarray, method: str = "gradcam", class_index: int | None = None
    ) -> np.ndarray:
        """Heatmap (float32 in [0, 1], image-sized) of a 2-D uint8 image (None: predicted)."""
        crop = self.classifier.crop_boxes([gray])[0]
        x = prepare(gray, self.classifier.preprocess, crop)
        return self.to_image(self.raw(x, method, class_index)[0], gray.shape, crop)


@functools.cache
def get_explainer(classifier: Classifier) -> Explainer:
    """The :class:`Explainer` of a classifier, built once."""
    return Explainer(classifier)

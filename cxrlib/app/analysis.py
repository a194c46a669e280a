"""The Diagnose page's heatmaps: the display controls, applied to cached arrays (changing one
runs no model), and every heatmap method compared on one upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cxrlib.core.cache import LRUCache
from cxrlib.core.formatting import pct
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.infer.focus import hot_region_ious, mean_over_pairs
from cxrlib.infer.overlay import overlay
from cxrlib.infer.pipeline import Decoded, diagnose_image

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.app.resources import Resources
    from cxrlib.infer.pipeline import Diagnosis


@dataclass(frozen=True)
class DisplaySettings:
    """The display controls of the heatmap: ``outline`` draws the lung outline, ``hottest``
    shows only the hottest ``share`` % of the image."""

    opacity: float = 0.45
    colormap: str = "jet"
    outline: bool = True
    hottest: bool = False
    share: int = 15

    def overlay(self, pixels: np.ndarray, d: Diagnosis) -> np.ndarray:
        """The image with ``d``'s heatmap drawn with these settings."""
        if d.heatmap is None:
            raise ValueError("the diagnosis has no heatmap")
        return overlay(
            pixels,
            d.heatmap,
            opacity=float(self.opacity),
            colormap=self.colormap,
            hottest_percent=self.share if self.hottest else None,
            lung_mask=d.lung_mask if self.outline else None,
            frame=d.model_crop,
        )

    def described(self, d: Diagnosis) -> dict[str, object]:
        """The settings in words, for the PDF report of ``d``."""
        shown = self.outline and d.lung_mask is not None
        return {
            "opacity": f"{self.opacity:.2f}",
            "colour map": self.colormap,
            "lung outline": "on" if shown else "off",
            "hottest region only": f"{self.share}%" if self.hottest else "off",
        }


@dataclass(frozen=True)
class MethodComparison:
    """Every method's diagnosis of one image for one class (in menu order), and the
    :func:`~cxrlib.infer.focus.hot_region_ious` of their hottest ``percent`` %."""

    diagnoses: tuple[Diagnosis, ...]
    ious: np.ndarray
    percent: float

    @property
    def agreement(self) -> float:
        """The mean IoU over every pair of methods."""
        return mean_over_pairs(self.ious)

    def caption(self, d: Diagnosis) -> str:
        """A method's name with its lung focus, under its overlay."""
        focus = "" if d.lung_focus is None else f" · {pct(d.lung_focus)} in the lungs"
        return METHOD_LABELS.get(d.method, d.method) + focus

    def text(self) -> str:
        """How far the methods agree, in words."""
        out = (
            f"The {len(self.diagnoses)} methods' hottest {self.percent:g}% regions overlap by "
            f"**{pct(self.agreement)}** on average (intersection over union of each pair; "
            "100% would be the same region). Where methods disagree, no single map is the "
            "model's reason: each is one way of asking the same network where it looked."
        )
        labels = [METHOD_LABELS.get(d.method, d.method) for d in self.diagnoses]
        same = [
            (a, b)
            for i, a in enumerate(labels)
            for j, b in enumerate(labels)
            if i < j and self.ious[i, j] >= 0.95  # (nearly) the same region
        ]
        if same:
            pairs = "; ".join(f"{a} and {b}" for a, b in same)
            out += f" Here {pairs} mark the same region."
        if (METHOD_LABELS["gradcampp"], METHOD_LABELS["layercam"]) in same:
            # With a global-average-pooling head the gradient of a class score is the same
            # at every position of a channel, and both weightings keep its positive part.
            out += (
                " That is expected of this model: after global average pooling and one dense "
                "layer, Grad-CAM++ and LayerCAM both sum the channels that count for the "
                "class, so they are not two independent opinions."
            )
        return out


def compare_methods(
    res: Resources,
    cache: LRUCache,
    decoded: Decoded,
    class_index: int | None = None,
    percent: float = 15.0,
    *,
    data: bytes = b"",
) -> MethodComparison:
    """:func:`~cxrlib.infer.pipeline.diagnose_image` for every method, and their agreement."""
    diagnoses = tuple(
        diagnose_image(res, decoded, m, class_index, cache, data=data) for m in METHOD_LABELS
    )
    heatmaps = [d.heatmap for d in diagnoses if d.heatmap is not None]
    return MethodComparison(diagnoses, hot_region_ious(heatmaps, percent), percent)

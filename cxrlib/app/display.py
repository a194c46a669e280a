"""How the Diagnose page draws a heatmap: the display controls, applied to cached arrays
(changing one runs no model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cxrlib.infer.overlay import overlay

if TYPE_CHECKING:  # pragma: no cover
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

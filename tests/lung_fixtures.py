"""The tiny real lung fixtures (image + mask pairs) the segmenter tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LUNG_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lungs"


def fixture_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Each ``*_image.png`` with its ``*_mask.png`` as (uint8 image, bool mask)."""
    pairs = []
    for img_path in sorted(LUNG_FIXTURES.glob("*_image.png")):
        mask_path = img_path.with_name(img_path.name.replace("_image", "_mask"))
        image = np.asarray(Image.open(img_path).convert("L"))
        mask = np.asarray(Image.open(mask_path).convert("L")) > 127
        pairs.append((image, mask))
    return pairs

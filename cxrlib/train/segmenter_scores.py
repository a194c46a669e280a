"""How well a lung segmenter does on image/mask pairs: Dice per source, the thresholds
that maximise it, and the time one image takes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrlib.infer.lungs import LungSegmenter, dice, postprocess
from cxrlib.infer.preprocess import heatmap_to_image
from cxrlib.train.segmenter_data import Pair


def evaluate(
    segmenter: LungSegmenter, pairs: Sequence[Pair], conventions: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """Mean Dice at each image's own size, overall and per source.

    Each image is scored on its source's convention unless ``conventions``
    overrides it (one per pair; ``None`` = the segmenter's default).
    """
    if conventions is None:
        conventions = [p.convention for p in pairs]
    masks = segmenter.segment_many([p.image for p in pairs], conventions)
    scores = [dice(m, p.mask) for m, p in zip(masks, pairs)]
    per_source: dict[str, dict[str, float]] = {}
    for src in sorted({p.source for p in pairs}):
        s = [d for d, p in zip(scores, pairs) if p.source == src]
        per_source[src] = {
            "dice": round(float(np.mean(s)), 4),
            "dice_min": round(float(np.min(s)), 4),
            "n": len(s),
        }
    return {
        "dice": round(float(np.mean(scores)), 4) if scores else float("nan"),
        "n": len(scores),
        "per_source": per_source,
    }


def tune_thresholds(segmenter: LungSegmenter, pairs: Sequence[Pair]) -> dict[str, float]:
    """Per convention, the threshold in 0.3..0.7 with the best mean val Dice."""
    out = {}
    for conv in segmenter.conventions:
        group = [p for p in pairs if p.convention == conv]
        if not group:
            out[conv] = 0.5
            continue
        ch = segmenter.channel(conv)
        probs = []
        for start in range(0, len(group), 32):
            chunk = group[start : start + 32]
            fw = segmenter.forward(np.stack([segmenter.prepare(p.image) for p in chunk]))
            probs += [
                heatmap_to_image(f[..., ch], p.image.shape, segmenter.preprocess)
                for f, p in zip(fw, chunk)
            ]
        best = max(
            np.round(np.arange(0.3, 0.71, 0.05), 2),
            key=lambda t: np.mean([dice(postprocess(q, t), p.mask) for q, p in zip(probs, group)]),
        )
        out[conv] = float(best)
    return out


def inference_ms(segmenter: LungSegmenter, gray: np.ndarray, repeats: int = 30) -> float:
    """Median milliseconds of one :meth:`LungSegmenter.segment` call on an image it has
    not seen (after a warm-up): its memo is cleared before each call, so each call
    segments afresh rather than answering from the memo."""
    segmenter.segment(gray)
    times = []
    for _ in range(repeats):
        segmenter.forget_images()
        t = time.perf_counter()
        segmenter.segment(gray)
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 1)

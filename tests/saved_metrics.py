"""Hand-made metrics files (the saved test split of ``python -m cxrlib.evaluate``) for the tests."""

from __future__ import annotations

import numpy as np


def metrics_with(groups: dict[tuple[str, str], dict[str, int]], loso: dict) -> dict:
    """A metrics file whose test split holds ``groups[(source, label)][answer]`` images."""
    names = ["covid", "normal", "pneumonia"]
    preds, matrix = [], np.zeros((3, 3), int)
    for (source, label), answers in groups.items():
        for answer, n in answers.items():
            probs = [0.8 if c == answer else 0.1 for c in names]
            preds += [{"path": "x", "label": label, "source": source, "probs": probs}] * n
            matrix[names.index(label), names.index(answer)] += n
    test = {"predictions": preds, "confusion_matrix": {"labels": names, "matrix": matrix.tolist()}}
    return {"splits": {"test": test}, "loso": {"sources": loso}}


#: An ``explain_methods`` section (``evaluate --methods``) with one method in each band.
METHODS_SECTION = {
    "n": 200,
    "split": "test",
    "percent": 15.0,
    "methods": ["gradcam", "layercam", "smoothgrad"],
    "agreement": {"mean": 0.55, "median": 0.56, "p10": 0.44, "p90": 0.66},
    "pairwise_iou": {
        "gradcam~layercam": 0.8,
        "gradcam~smoothgrad": 0.2,
        "layercam~smoothgrad": 0.3,
    },
    "lung_focus": {"gradcam": 0.61, "layercam": 0.6, "smoothgrad": 0.63},
    "randomised": {
        "gradcam": {"rank_correlation": 0.01, "hot_iou": 0.1},
        "layercam": {"rank_correlation": 0.32, "hot_iou": 0.2},
        "smoothgrad": {
            "rank_correlation": 0.59,
            "rank_correlation_range": [0.43, 0.7],
            "hot_iou": 0.3,
        },
    },
}

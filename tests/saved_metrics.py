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

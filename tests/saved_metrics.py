"""Hand-made metrics files (the saved test split of ``python -m cxrlib.evaluate``) for the tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlib.core.metrics import Metrics, read_metrics


def typed(data: dict) -> Metrics:
    """A hand-made metrics file read through the schema, as the pages read one."""
    return read_metrics(data)


def section(key: str, data: Any) -> Any:
    """One hand-made section (``ablation``, ``loso``, ...) read through the schema."""
    return getattr(read_metrics({key: data}), key)


def split(data: dict) -> Any:
    """One hand-made split read through the schema."""
    return read_metrics({"splits": {"test": data}}).test


def external(
    called: dict[str, int], unseen: dict[str, int] | None = None, confident: int = 0
) -> dict:
    """An ``external`` section whose collection got ``called[c]`` answers of each class,
    ``confident`` of its COVID answers with a probability of 0.95."""
    from cxrlib.evaluate.external import answers

    names = ("covid", "normal", "pneumonia")

    def subset(counts):
        pred = np.repeat([names.index(c) for c in counts], list(counts.values()))
        probs = np.full((len(pred), 3), 0.1)
        probs[np.arange(len(pred)), pred] = 0.8
        probs[np.flatnonzero(pred == 0)[:confident]] = [0.95, 0.03, 0.02]
        return answers(probs, names)

    subsets = {"all": subset(called)}
    if unseen:
        subsets["segmenter_unseen"] = subset(unseen)
    return {
        "views": 9,
        "collections": {
            "openist_normal": {
                "name": "OpenIST",
                "description": "normal adults of a teaching website",
                "label": "normal",
                "population": "adult",
                "n": sum(called.values()),
                "subsets": subsets,
                "input_check_refused": 1,
                "duplicates": {"found": 0, "highest_similarity": 0.953},
            }
        },
    }


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


#: An ``explain_methods`` section (``evaluate methods``) with one method in each band.
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


def shortcuts() -> dict:
    """A ``shortcuts`` section: nih re-saved at 256 px changed 3.6% of 84 answers; the normals'
    sources told apart 71% of the time against 50% chance."""
    scores = {"balanced_accuracy": 0.8, "accuracy": 0.8, "sensitivity": {}}
    return {
        "split": "test",
        "resolution": {
            "nih": {
                "n": 84,
                "longer_side": 256,
                "changed": 0.036,
                "original": scores,
                "resaved": {**scores, "balanced_accuracy": 0.79},
            }
        },
        "source_probe": {
            "normal": {"sources": ["nih", "quex"], "balanced_accuracy": 0.71, "chance": 0.5}
        },
    }

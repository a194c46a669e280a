"""Every heatmap method on the same images: how far they agree, and whether each explains
the model at all (a map that hardly changes when the weights are re-drawn at random shows the
image, not what the model learnt: Adebayo et al., NeurIPS 2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrlib.core.methods import METHODS
from cxrlib.evaluate.metrics import summary
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.explain import Explainer
from cxrlib.infer.focus import hot_region_ious, lung_focus, map_rank_correlation, mean_over_pairs

PERCENT = 15.0  # the hottest share of a map compared
SEEDS = (0, 1, 2)  # one randomised network per seed


def randomised_classifier(classifier: Classifier, seed: int = 0) -> Classifier:
    """The same architecture, preprocessing and framing with freshly initialised weights."""
    import keras  # the network is cloned with Keras itself

    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(classifier.model)  # new layers, new initial weights
    return Classifier(fresh, classifier.meta, segmenter=classifier.segmenter)


def _over_seeds(per_seed: list[list[float]], name: str) -> dict[str, Any]:
    """The mean over seeds of each seed's mean, and their range."""
    means = [m for m in (summary(v)["mean"] for v in per_seed) if m is not None]
    if not means:
        return {name: None, f"{name}_range": None}
    return {name: summary(means)["mean"], f"{name}_range": [min(means), max(means)]}


def compare_explanations(
    classifier: Classifier, segmenter: Any, grays: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Every method's map of the predicted class, from the model and from re-initialised copies.

    Per image: how far every pair of methods' hottest regions overlap, each map's lung focus,
    and how alike each map is to the same method's map from :func:`randomised_classifier`
    (rank correlation over the model's view, and hot-region IoU), as means over one random
    network per seed with their range, since they move with the random draw.
    """
    methods = list(METHODS)
    mine = Explainer(classifier)
    theirs = [Explainer(randomised_classifier(classifier, s)) for s in SEEDS]
    preds = classifier.predict(list(grays)).argmax(axis=1)
    masks = segmenter.segment_many(list(grays), [None] * len(grays))
    ious = np.zeros((len(methods), len(methods)))
    agreement: list[float] = []
    focus: dict[str, list[float]] = {m: [] for m in methods}
    # [method][seed] -> one value per image
    rho: dict[str, list[list[float]]] = {m: [[] for _ in SEEDS] for m in methods}
    hot: dict[str, list[list[float]]] = {m: [[] for _ in SEEDS] for m in methods}
    for gray, mask, k in zip(grays, masks, preds, strict=True):
        box = classifier.crop_boxes([gray])[0]
        maps = [mine.explain(gray, m, int(k)) for m in methods]
        table = hot_region_ious(maps, PERCENT)
        ious += table
        agreement.append(mean_over_pairs(table))
        for m, own in zip(methods, maps, strict=True):
            if np.any(mask):
                focus[m].append(lung_focus(own, mask))
            for i, explainer in enumerate(theirs):
                other = explainer.explain(gray, m, int(k))
                rho[m][i].append(map_rank_correlation(own, other, box))
                hot[m][i].append(float(hot_region_ious([own, other], PERCENT)[0, 1]))
    ious /= max(1, len(agreement))
    a = np.asarray(agreement)
    return {
        "n": len(agreement),
        "percent": PERCENT,
        "seeds": list(SEEDS),
        "methods": methods,
        "agreement": {
            "mean": round(float(a.mean()), 4),
            "median": round(float(np.median(a)), 4),
            "p10": round(float(np.percentile(a, 10)), 4),
            "p90": round(float(np.percentile(a, 90)), 4),
        },
        "pairwise_iou": {
            f"{mi}~{mj}": round(float(ious[i, j]), 4)
            for i, mi in enumerate(methods)
            for j, mj in enumerate(methods)
            if j > i
        },
        "lung_focus": {m: summary(v)["mean"] for m, v in focus.items()},
        "randomised": {
            m: {**_over_seeds(rho[m], "rank_correlation"), **_over_seeds(hot[m], "hot_iou")}
            for m in methods
        },
    }


def format_methods(section: dict[str, Any]) -> str:
    """The methods comparison as a plain-text table."""
    agree = section["agreement"]
    lines = [
        f"== heatmap methods on {section['n']} images: hottest {section['percent']:g}% regions "
        f"overlap by {agree['mean']:.3f} on average (10th-90th percentile "
        f"{agree['p10']:.3f}-{agree['p90']:.3f}) ==",
        f"{'method':<12} {'lung focus':>10} {'vs random weights: rank corr.':>30} {'hot IoU':>8}",
    ]
    for m in section["methods"]:
        r = section["randomised"][m]
        cells = [section["lung_focus"][m], r["rank_correlation"], r["hot_iou"]]
        f = ["-" if v is None else f"{v:.3f}" for v in cells]
        spread = r.get("rank_correlation_range")
        if spread:
            f[1] += f" ({spread[0]:.2f} to {spread[1]:.2f})"
        lines.append(f"{m:<12} {f[0]:>10} {f[1]:>30} {f[2]:>8}")
    return "\n".join(lines)

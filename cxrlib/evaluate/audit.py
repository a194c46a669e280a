"""Shortcut audit: is the model reading the lungs, or the hospital?

Two checks, each a pure function of a classifier and images, run by
``python -m cxrlib.evaluate audit --ablate / --explain``:

* :func:`ablation`: scores on the original images, with the lungs erased
  (lung area filled with the image's mean) and with only the lungs kept. A
  model that still scores far above chance with the lungs erased is reading
  something other than the lungs.
* :func:`explanation_summary`: Grad-CAM lung focus per class and source, and
  a faithfulness figure (confidence drop when the hottest 20% is blurred out,
  against a random 20%).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlib.evaluate.metrics import headline_scores, summary
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.explain import Explainer
from cxrlib.infer.focus import confidence_drops, lung_focus, model_view_focus
from cxrlib.infer.lungs import erase_lungs, load_segmenter, lungs_only
from cxrlib.train.data import load_gray, stratified_sample

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd


def _chance(y: np.ndarray) -> float:
    return 1.0 / max(1, len(np.unique(y)))


def ablation_verdict(erased_bal: float, original_bal: float, chance: float) -> str:
    """A plain sentence about what the lungs-erased score means."""
    above = erased_bal - chance
    if above > 0.25:
        return (
            f"With the lungs erased the model still reaches {erased_bal:.0%} balanced accuracy "
            f"(chance is {chance:.0%}): it is reading something other than the lungs "
            "(borders, text, body shape, the hospital's look)."
        )
    if above > 0.1:
        return (
            f"With the lungs erased the model falls to {erased_bal:.0%} balanced accuracy "
            f"(chance {chance:.0%}, intact {original_bal:.0%}): it relies partly on what lies "
            "outside the lungs."
        )
    return (
        f"With the lungs erased the model falls to {erased_bal:.0%} balanced accuracy, close to "
        f"chance ({chance:.0%}): its decisions depend on the lung fields."
    )


def ablation(
    classifier: Classifier,
    segmenter: Any,
    grays: Sequence[np.ndarray],
    y: np.ndarray,
    masks: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Scores on original, lungs-erased and lungs-only versions of the images.

    Args:
        classifier: The classifier.
        segmenter: A :class:`cxrlib.infer.lungs.LungSegmenter` (used when ``masks`` is None).
        grays: 2-D uint8 images.
        y: True class indices.
        masks: Optional precomputed lung masks.

    Returns:
        ``{"original": s, "lungs_erased": s, "lungs_only": s, "chance": c, "verdict": str}``
        where each ``s`` has accuracy, balanced accuracy, macro-F1 and per-class
        sensitivity / AUC.
    """
    y = np.asarray(y)
    if masks is None:
        masks = segmenter.segment_many(list(grays), [None] * len(grays))
    names = classifier.class_names
    out: dict[str, Any] = {"n": int(len(y))}
    variants: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "original": lambda g, m: g,
        "lungs_erased": erase_lungs,
        "lungs_only": lungs_only,
    }
    # An edited image is framed as its original was (for a lung-crop model, the
    # erased lungs would otherwise move the crop box as well as the pixels; for a
    # lung-mask model, the mask too).
    frames = classifier.lung_frames(list(grays))
    crops, lung_masks = [f[0] for f in frames], [f[1] for f in frames]
    for name, fn in variants.items():
        edited = [fn(g, m) for g, m in zip(grays, masks, strict=True)]
        probs = classifier.predict(edited, crops=crops, masks=lung_masks)
        out[name] = headline_scores(y, probs, names)
    out["chance"] = round(_chance(y), 4)
    out["empty_masks"] = int(sum(1 for m in masks if not np.any(m)))
    out["verdict"] = ablation_verdict(
        out["lungs_erased"]["balanced_accuracy"],
        out["original"]["balanced_accuracy"],
        out["chance"],
    )
    return out


def _faithfulness(drops: Sequence[Any], idx: np.ndarray) -> dict[str, float | None]:
    """Mean confidence drops (hot area, random area, their difference) over ``idx``."""
    d = [drops[int(i)] for i in np.flatnonzero(idx)]
    if not d:
        return {"drop_hot": None, "drop_random": None, "score": None}
    return {
        "drop_hot": round(float(np.mean([x.drop_hot for x in d])), 4),
        "drop_random": round(float(np.mean([x.drop_random for x in d])), 4),
        "score": round(float(np.mean([x.score for x in d])), 4),
    }


def explanation_summary(
    classifier: Classifier,
    explainer: Any,
    segmenter: Any,
    grays: Sequence[np.ndarray],
    y: np.ndarray,
    sources: Sequence[str],
    method: str = "gradcam",
    fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Lung focus and faithfulness of the heatmaps of the predicted class.

    The predicted class is the model's own prediction (averaged over its test-time
    views when it has them), the class the app explains by default.

    Returns per-class (by true label) and per-source mean/median lung focus,
    and the mean confidence drops (hot area vs random area) overall and per class.
    """
    names = classifier.class_names
    y = np.asarray(y)
    preds = [int(k) for k in classifier.predict(list(grays)).argmax(axis=1)]
    maps, focus, flat = [], [], []
    masks = segmenter.segment_many(list(grays), [None] * len(grays))
    frames = classifier.lung_frames(list(grays))
    dilation = classifier.preprocess.mask_dilation
    for g, m, k, f in zip(grays, masks, preds, frames, strict=True):
        hm = explainer.explain(g, method, k)
        maps.append(hm)
        focus.append(lung_focus(hm, m) if np.any(m) else None)
        flat.append(model_view_focus(m, f, dilation) if np.any(m) else None)
    drops = confidence_drops(
        classifier, list(grays), maps, preds, fraction=fraction, rng=np.random.default_rng(seed)
    )
    src = np.asarray(sources)
    return {
        "method": method,
        "fraction": fraction,
        "n": int(len(y)),
        "lung_focus": summary(focus),
        # What a map spread evenly over the model's field of view would score: a
        # lung-crop model starts higher, so compare each focus with its own baseline.
        "flat_map_focus": summary(flat),
        "lung_focus_per_class": {
            names[c]: summary([focus[i] for i in np.flatnonzero(y == c)]) for c in np.unique(y)
        },
        "lung_focus_per_source": {
            s: summary([focus[i] for i in np.flatnonzero(src == s)])
            for s in sorted(set(src.tolist()))
        },
        "faithfulness": _faithfulness(drops, np.ones(len(y), bool)),
        "faithfulness_per_class": {names[c]: _faithfulness(drops, y == c) for c in np.unique(y)},
    }


def format_ablation(a: dict[str, Any]) -> str:
    """The ablation's balanced accuracies and verdict, two lines."""
    return (
        "ablation (balanced accuracy): original {:.3f}  lungs erased {:.3f}  lungs only {:.3f}"
        "  (chance {:.3f})\n{}".format(
            a["original"]["balanced_accuracy"],
            a["lungs_erased"]["balanced_accuracy"],
            a["lungs_only"]["balanced_accuracy"],
            a["chance"],
            a["verdict"],
        )
    )


def format_explain(ex: dict[str, Any]) -> str:
    """The lung focus per class and source, and the faithfulness, as lines."""
    lines = [
        f"Grad-CAM lung focus: mean {ex['lung_focus']['mean']}, median "
        f"{ex['lung_focus']['median']} (n={ex['lung_focus']['n']}); a flat map over the "
        f"model's view: mean {ex['flat_map_focus']['mean']}"
    ]
    for c, v in ex["lung_focus_per_class"].items():
        lines.append(f"  {c:<10} mean {v['mean']}  median {v['median']}")
    for s, v in ex["lung_focus_per_source"].items():
        lines.append(f"  {s:<12} mean {v['mean']}  median {v['median']}")
    f = ex["faithfulness"]
    lines.append(
        f"faithfulness: confidence drop hottest 20% {f['drop_hot']}, random 20% "
        f"{f['drop_random']}, difference {f['score']}"
    )
    return "\n".join(lines)


def run_audits(
    classifier: Classifier,
    df: pd.DataFrame,
    ablate: bool = False,
    explain: bool = False,
    max_images: int | None = None,
    segmenter_path: str | Path | None = None,
) -> dict[str, Any]:
    """The shortcut audit on manifest rows ``df``: lungs-erased / lungs-only
    ablation and Grad-CAM lung focus + faithfulness."""
    out: dict[str, Any] = {}
    if not (ablate or explain):
        return out
    seg = load_segmenter(segmenter_path)
    sub = stratified_sample(df, max_images)
    grays = [load_gray(f) for f in sub["file"]]
    y = sub["y"].to_numpy()
    if ablate:
        t0 = time.time()
        # Erase the whole lung, including the part behind the heart and diaphragm.
        masks = seg.segment_many(grays, ["full"] * len(grays))
        out["ablation"] = ablation(classifier, seg, grays, y, masks=masks)
        out["ablation"]["mask_convention"] = "full"
        out["ablation"]["seconds"] = round(time.time() - t0, 1)
        logger.info(format_ablation(out["ablation"]))
    if explain:
        t0 = time.time()
        ex = explanation_summary(
            classifier, Explainer(classifier), seg, grays, y, list(sub["source"])
        )
        ex["seconds"] = round(time.time() - t0, 1)
        out["explain"] = ex
        logger.info(format_explain(ex))
    return out

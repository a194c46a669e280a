"""The shortcut audit: is the model reading the lungs, or the hospital?

:func:`ablation` scores the images with the lungs erased and with only the lungs kept;
:func:`explanation_summary` measures how much of each heatmap falls on the lungs, and how much
the confidence drops when the hottest part is blurred out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlib.core.formatting import pct
from cxrlib.evaluate.metrics import headline_scores, summary
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.explain import Explainer
from cxrlib.infer.focus import confidence_drops, lung_focus, model_view_focus
from cxrlib.infer.lungs import erase_lungs, load_segmenter, lungs_only
from cxrlib.train.data import load_gray, stratified_sample

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


def ablation_verdict(erased_bal: float, original_bal: float, chance: float) -> str:
    """A plain sentence about what the lungs-erased score means."""
    above = erased_bal - chance
    if above > 0.25:
        return (
            f"With the lungs erased the model still reaches {pct(erased_bal)} balanced accuracy "
            f"(chance is {pct(chance)}): it is reading something other than the lungs "
            "(borders, text, body shape, the hospital's look)."
        )
    if above > 0.1:
        return (
            f"With the lungs erased the model falls to {pct(erased_bal)} balanced accuracy "
            f"(chance {pct(chance)}, intact {pct(original_bal)}): it relies partly on what lies "
            "outside the lungs."
        )
    return (
        f"With the lungs erased the model falls to {pct(erased_bal)} balanced accuracy, close "
        f"to chance ({pct(chance)}): its decisions depend on the lung fields."
    )


def ablation(
    classifier: Classifier,
    segmenter: Any,
    grays: Sequence[np.ndarray],
    y: np.ndarray,
    masks: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """:func:`cxrlib.evaluate.metrics.headline_scores` of the original, lungs-erased (filled
    with the image's mean) and lungs-only images, with chance and a verdict.

    ``masks``: the lung masks, found by ``segmenter`` when None.
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
    # An edited image is framed as its original was, so that erasing the lungs does not
    # move a lung-crop model's crop box or a lung-mask model's mask.
    frames = classifier.lung_frames(list(grays))
    crops, lung_masks = [f[0] for f in frames], [f[1] for f in frames]
    for name, fn in variants.items():
        edited = [fn(g, m) for g, m in zip(grays, masks, strict=True)]
        probs = classifier.predict(edited, crops=crops, masks=lung_masks)
        out[name] = headline_scores(y, probs, names)
    out["chance"] = round(1.0 / max(1, len(np.unique(y))), 4)
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
    """Lung focus per true class and source, and the confidence drops when the hottest or a
    random ``fraction`` of the image is blurred, of the maps of the class the model predicts
    (the one the app explains by default)."""
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
    bal = [a[k]["balanced_accuracy"] for k in ("original", "lungs_erased", "lungs_only")]
    return (
        f"ablation (balanced accuracy): original {bal[0]:.3f}  lungs erased {bal[1]:.3f}  "
        f"lungs only {bal[2]:.3f}  (chance {a['chance']:.3f})\n{a['verdict']}"
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
    """The lung ablation and / or the Grad-CAM lung focus on a stratified sample of at most
    ``max_images`` of the manifest rows ``df``."""
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

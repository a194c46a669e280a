"""Shortcut audit: is the model reading the lungs, or the hospital?

Three checks, each a pure function of a classifier and images, used by
``python -m cxrlib.evaluate --ablate / --explain / --loso``:

* :func:`ablation`: scores on the original images, with the lungs erased
  (lung area filled with the image's mean) and with only the lungs kept. A
  model that still scores far above chance with the lungs erased is reading
  something other than the lungs.
* :func:`explanation_summary`: Grad-CAM lung focus per class and source, and
  a faithfulness figure (confidence drop when the hottest 20% is blurred out,
  against a random 20%).
* :func:`compare_explanations`: every heatmap method on the same images: how far
  they agree, and the model-randomisation check (Adebayo et al., "Sanity checks for
  saliency maps", NeurIPS 2018): a map that hardly changes when the network's weights
  are re-drawn at random shows the image, not what the model learnt.
* :func:`leave_one_source_out`: retrain with one source held out and test on
  it: what the model does on a hospital it has never seen.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrlib.infer.focus import (
    confidence_drops,
    hot_region_ious,
    lung_focus,
    map_rank_correlation,
    mean_over_pairs,
    model_view_focus,
)
from cxrlib.infer.lungs import erase_lungs, lungs_only
from cxrlib.infer.classifier import Classifier


def _chance(y: np.ndarray) -> float:
    return 1.0 / max(1, len(np.unique(y)))


def _scores(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    from cxrlib.evaluate.cli import compute_metrics

    m = compute_metrics(y, probs, class_names, n_boot=0, curves=False)
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"],
        "sensitivity": {c: v["sensitivity"] for c, v in m["per_class"].items()},
        "auc": {c: v["auc"] for c, v in m["per_class"].items()},
    }


def held_out_scores(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Scores on a held-out source: :func:`_scores` plus ``n``, the accuracy within
    each class present (``per_class_accuracy``) and its number of images (``support``)."""
    y = np.asarray(y)
    res = _scores(y, probs, class_names)
    pred = np.asarray(probs).argmax(1)
    res["n"] = int(len(y))
    res["per_class_accuracy"] = {
        class_names[c]: round(float(np.mean(pred[y == c] == c)), 4) for c in np.unique(y)
    }
    res["support"] = {class_names[c]: int(np.sum(y == c)) for c in np.unique(y)}
    return res


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
        out[name] = _scores(y, probs, names)
    out["chance"] = round(_chance(y), 4)
    out["empty_masks"] = int(sum(1 for m in masks if not np.any(m)))
    out["verdict"] = ablation_verdict(
        out["lungs_erased"]["balanced_accuracy"],
        out["original"]["balanced_accuracy"],
        out["chance"],
    )
    return out


def _summary(values: Sequence[float | None]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not len(v):
        return {"n": 0, "mean": None, "median": None}
    return {
        "n": int(len(v)),
        "mean": round(float(v.mean()), 4),
        "median": round(float(np.median(v)), 4),
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
    for g, m, k in zip(grays, masks, preds, strict=True):
        hm = explainer.explain(g, method, k)
        maps.append(hm)
        focus.append(lung_focus(hm, m) if np.any(m) else None)
        flat.append(model_view_focus(classifier, g, m) if np.any(m) else None)
    drops = confidence_drops(
        classifier, list(grays), maps, preds, fraction=fraction, rng=np.random.default_rng(seed)
    )
    src = np.asarray(sources)

    def faith(idx: np.ndarray) -> dict[str, float | None]:
        d = [drops[i] for i in np.flatnonzero(idx)]
        if not d:
            return {"drop_hot": None, "drop_random": None, "score": None}
        return {
            "drop_hot": round(float(np.mean([x.drop_hot for x in d])), 4),
            "drop_random": round(float(np.mean([x.drop_random for x in d])), 4),
            "score": round(float(np.mean([x.score for x in d])), 4),
        }

    all_idx = np.ones(len(y), bool)
    return {
        "method": method,
        "fraction": fraction,
        "n": int(len(y)),
        "lung_focus": _summary(focus),
        # What a map spread evenly over the model's field of view would score: a
        # lung-crop model starts higher, so compare each focus with its own baseline.
        "flat_map_focus": _summary(flat),
        "lung_focus_per_class": {
            names[c]: _summary([focus[i] for i in np.flatnonzero(y == c)]) for c in np.unique(y)
        },
        "lung_focus_per_source": {
            s: _summary([focus[i] for i in np.flatnonzero(src == s)])
            for s in sorted(set(src.tolist()))
        },
        "faithfulness": faith(all_idx),
        "faithfulness_per_class": {names[c]: faith(y == c) for c in np.unique(y)},
    }


def randomised_classifier(classifier: Classifier, seed: int = 0) -> Classifier:
    """The same architecture, preprocessing and framing with freshly initialised weights."""
    import keras

    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(classifier.model)  # new layers, new initial weights
    return Classifier(fresh, classifier.meta, segmenter=classifier.segmenter)


def compare_explanations(
    classifier: Classifier,
    segmenter: Any,
    grays: Sequence[np.ndarray],
    y: np.ndarray,
    methods: Sequence[str] | None = None,
    percent: float = 15.0,
    seeds: Sequence[int] = (0, 1, 2),
) -> dict[str, Any]:
    """Every method's map of the predicted class, from the model and from re-initialised copies.

    Per image: the predicted class (as the app predicts it), each method's map of it,
    the intersection over union of every pair of methods' hottest ``percent`` %
    regions (:func:`cxrlib.infer.focus.hot_region_ious`), each map's lung focus, and how
    alike each map is to the same method's map from :func:`randomised_classifier`
    (rank correlation over the model's view, :func:`cxrlib.infer.focus.map_rank_correlation`,
    and hot-region IoU). Both networks explain the same class in the same crop. One
    random network per seed: how alike the maps stay moves with the draw, so the
    figures are means over the seeds, with their range.

    Returns:
        ``{"n", "percent", "seeds", "methods", "agreement": {mean, median, p10, p90},
        "pairwise_iou": {"a~b": mean}, "lung_focus": {method: mean},
        "randomised": {method: {"rank_correlation", "rank_correlation_range",
        "hot_iou", "hot_iou_range"}}}``.
    """
    from cxrlib.infer.explain import METHODS, Explainer

    methods = list(methods or METHODS)
    if len(methods) < 2:
        raise ValueError("comparing methods needs at least two")
    mine = Explainer(classifier)
    theirs = [Explainer(randomised_classifier(classifier, s)) for s in seeds]
    preds = classifier.predict(list(grays)).argmax(axis=1)
    masks = segmenter.segment_many(list(grays), [None] * len(grays))
    n = len(methods)
    ious, agreement = np.zeros((n, n)), []
    focus: dict[str, list[float]] = {m: [] for m in methods}
    # [method][seed] -> one value per image
    rho: dict[str, list[list[float]]] = {m: [[] for _ in seeds] for m in methods}
    hot: dict[str, list[list[float]]] = {m: [[] for _ in seeds] for m in methods}
    for gray, mask, k in zip(grays, masks, preds, strict=True):
        box = classifier.crop_box(gray)
        maps = [mine.explain(gray, m, int(k)) for m in methods]
        table = hot_region_ious(maps, percent)
        ious += table
        agreement.append(mean_over_pairs(table))
        for m, own in zip(methods, maps, strict=True):
            if np.any(mask):
                focus[m].append(lung_focus(own, mask))
            for i, explainer in enumerate(theirs):
                other = explainer.explain(gray, m, int(k))
                rho[m][i].append(map_rank_correlation(own, other, box))
                hot[m][i].append(float(hot_region_ious([own, other], percent)[0, 1]))
    ious /= max(1, len(agreement))
    a = np.asarray(agreement)

    def over_seeds(per_seed: list[list[float]], name: str) -> dict[str, Any]:
        means = [m for m in (_summary(v)["mean"] for v in per_seed) if m is not None]
        if not means:
            return {name: None, f"{name}_range": None}
        return {name: _summary(means)["mean"], f"{name}_range": [min(means), max(means)]}

    return {
        "n": len(agreement),
        "percent": percent,
        "seeds": list(seeds),
        "methods": methods,
        "agreement": {
            "mean": round(float(a.mean()), 4),
            "median": round(float(np.median(a)), 4),
            "p10": round(float(np.percentile(a, 10)), 4),
            "p90": round(float(np.percentile(a, 90)), 4),
        },
        "pairwise_iou": {
            f"{methods[i]}~{methods[j]}": round(float(ious[i, j]), 4)
            for i in range(n)
            for j in range(i + 1, n)
        },
        "lung_focus": {m: _summary(v)["mean"] for m, v in focus.items()},
        "randomised": {
            m: {**over_seeds(rho[m], "rank_correlation"), **over_seeds(hot[m], "hot_iou")}
            for m in methods
        },
    }


def leave_one_source_out(
    manifest: str | Path,
    cfg: Any,
    sources: Sequence[str],
    root: str | Path | None = None,
    log: Callable[[str], None] = print,
    views: Sequence[Any] = (),
) -> dict[str, Any]:
    """For each source: train without it (``cfg``, usually a short schedule), test on all of it.

    Args:
        manifest: The training manifest (needs ``split`` and ``source``).
        cfg: A :class:`cxrlib.train.classifier.TrainConfig`; ``exclude_sources`` is set per run.
        sources: The sources to hold out, one at a time.
        root: Folder the manifest's paths are relative to.
        log: Progress messages.
        views: Test-time views (:class:`cxrlib.infer.views.View`): each held-out source is also
            scored with the logits averaged over the original and them, under
            ``"with_views"`` (from the same single read of its images).

    Returns:
        ``{source: {"n", "accuracy", "balanced_accuracy", "sensitivity": {...},
        "per_class_accuracy": {...}, "internal_test_balanced_accuracy"}}`` plus the
        schedule used.
    """
    from cxrlib.train.data import read_manifest
    from cxrlib.evaluate.cli import file_view_logits, predict_files
    from cxrlib.train.classifier import train

    df = read_manifest(manifest, root=root)
    out: dict[str, Any] = {"schedule": cfg.to_dict(), "sources": {}}
    for s in sources:
        run_cfg = dataclasses.replace(cfg, exclude_sources=(s,))
        log(f"leave-one-source-out: training without {s} ...")
        with tempfile.TemporaryDirectory() as tmp:
            model, meta = train(manifest, tmp, run_cfg, root=root, verbose=0, log=lambda *_: None)
            clf = Classifier(model, meta)
            held = df[df["source"] == s]
            z = file_view_logits(clf, list(held["file"]), views)
            probs = clf.combine_views(z, average=False)[0]
            probs_views = clf.combine_views(z, average=True)[0] if views else None
            test = df[(df["split"] == "test") & (df["source"] != s)]
            # A manifest without a test split (a small check run) has no internal figure.
            probs_test = predict_files(clf, list(test["file"]), views=()) if len(test) else None
        res = held_out_scores(held["y"].to_numpy(), probs, clf.class_names)
        if probs_views is not None:
            res["with_views"] = held_out_scores(held["y"].to_numpy(), probs_views, clf.class_names)
            log(f"  {s} with {len(views)} views: accuracy {res['with_views']['accuracy']:.3f}")
        res["internal_test_balanced_accuracy"] = (
            None
            if probs_test is None
            else _scores(test["y"].to_numpy(), probs_test, clf.class_names)["balanced_accuracy"]
        )
        out["sources"][s] = res
        log(f"  {s}: n={res['n']} accuracy {res['accuracy']:.3f} {res['per_class_accuracy']}")
    return out

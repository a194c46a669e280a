"""The shortcut audit: is the model reading the lungs, or the hospital? Lungs erased or kept
alone, Grad-CAM lung focus and faithfulness, images re-saved at another source's size, and a
probe of how well the penultimate features tell the sources of one class apart.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cxrlib.core.formatting import pct
from cxrlib.evaluate.metrics import headline_scores, summary
from cxrlib.infer.classifier import LOGITS_LAYER, Classifier
from cxrlib.infer.explain import Explainer
from cxrlib.infer.focus import confidence_drops, flat_map_focus, lung_focus
from cxrlib.infer.lungs import erase_lungs, load_segmenter, lungs_only
from cxrlib.train.data import load_gray, stratified_sample

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Source -> the longer side its test images are re-saved at (nih is 384 px, quex 256 px).
RESOLUTION_SWAPS: dict[str, int] = {"nih": 256, "quex": 384}
#: A source needs this many images of a class to take part in that class's probe.
PROBE_MIN_IMAGES = 10


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
    classifier: Classifier, grays: Sequence[np.ndarray], y: np.ndarray, masks: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Headline scores of the original, lungs-erased (filled with the image's mean) and
    lungs-only images, with chance and a verdict."""
    y = np.asarray(y)
    names = classifier.class_names
    out: dict[str, Any] = {"n": int(len(y))}
    variants: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "original": lambda g, m: g,
        "lungs_erased": erase_lungs,
        "lungs_only": lungs_only,
    }
    # An edited image is framed as its original was, so that erasing the lungs does not
    # move a lung-crop model's crop box.
    crops = classifier.crop_boxes(list(grays))
    for name, fn in variants.items():
        edited = [fn(g, m) for g, m in zip(grays, masks, strict=True)]
        probs = classifier.predict(edited, crops=crops)
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
    keys = ("drop_hot", "drop_random", "score")
    if not d:
        return dict.fromkeys(keys)
    return {k: round(float(np.mean([getattr(x, k) for x in d])), 4) for k in keys}


def explanation_summary(
    classifier: Classifier,
    segmenter: Any,
    grays: Sequence[np.ndarray],
    y: np.ndarray,
    sources: Sequence[str],
) -> dict[str, Any]:
    """Lung focus per true class and source of the Grad-CAM maps of the predicted class (the
    app's default), and the confidence drops when their hottest or a random 20% is blurred."""
    method, fraction = "gradcam", 0.2
    explainer = Explainer(classifier)
    names = classifier.class_names
    y = np.asarray(y)
    preds = [int(k) for k in classifier.predict(list(grays)).argmax(axis=1)]
    maps, focus, flat = [], [], []
    masks = segmenter.segment_many(list(grays), [None] * len(grays))
    frames = classifier.crop_boxes(list(grays))
    for g, m, k, f in zip(grays, masks, preds, frames, strict=True):
        hm = explainer.explain(g, method, k)
        maps.append(hm)
        focus.append(lung_focus(hm, m) if np.any(m) else None)
        flat.append(flat_map_focus(m, f) if np.any(m) else None)
    drops = confidence_drops(
        classifier, list(grays), maps, preds, fraction=fraction, rng=np.random.default_rng(0)
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


def resave(gray: np.ndarray, longer_side: int) -> np.ndarray:
    """``gray`` at ``longer_side`` (Lanczos) and through JPEG quality 90, as the shared
    dataset's copies were made."""
    h, w = gray.shape
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(gray).resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def resolution_swap(
    classifier: Classifier, grays: Sequence[np.ndarray], y: np.ndarray, longer_side: int
) -> dict[str, Any]:
    """The share of answers that change when ``grays`` are re-saved at ``longer_side``, and
    the headline scores of both versions."""
    y = np.asarray(y)
    before = classifier.predict(list(grays))
    after = classifier.predict([resave(g, longer_side) for g in grays])
    names = classifier.class_names
    return {
        "n": int(len(y)),
        "longer_side": int(longer_side),
        "changed": round(float(np.mean(before.argmax(1) != after.argmax(1))), 4),
        "original": headline_scores(y, before, names),
        "resaved": headline_scores(y, after, names),
    }


def penultimate_features(classifier: Classifier, grays: Sequence[np.ndarray]) -> np.ndarray:
    """The input of the classifier's logits layer for each image (original view)."""
    import keras

    layer = classifier.model.get_layer(LOGITS_LAYER)
    features = keras.Model(classifier.model.inputs, layer.input)
    batch = np.stack([classifier.prepare(g) for g in grays]).astype(np.float32)[..., None]
    return np.asarray(features.predict(batch, batch_size=64, verbose=0))


def source_probe(classifier: Classifier, df: pd.DataFrame, features: np.ndarray) -> dict[str, Any]:
    """Per class, how well a logistic regression on ``features`` tells the sources of ``df``'s
    rows apart, cross-validated so that no patient ``group`` spans folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, Any] = {}
    for label in classifier.class_names:
        in_class = (df["label"] == label).to_numpy()
        counts = df.loc[in_class, "source"].value_counts()
        names = sorted(counts[counts >= PROBE_MIN_IMAGES].index)
        if len(names) < 2:
            continue
        rows = in_class & df["source"].isin(names).to_numpy()
        sources = df.loc[rows, "source"].to_numpy()
        folds = min(5, min(int(np.sum(sources == s)) for s in names))
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
        groups = df.loc[rows, "group"].to_numpy()
        pred = cross_val_predict(model, features[rows], sources, groups=groups, cv=cv)
        out[label] = {
            "sources": names,
            "n": {s: int(np.sum(sources == s)) for s in names},
            "balanced_accuracy": round(float(balanced_accuracy_score(sources, pred)), 4),
            "chance": round(1.0 / len(names), 4),
            "confusion": confusion_matrix(sources, pred, labels=names).tolist(),
        }
    return out


def shortcut_checks(classifier: Classifier, df: pd.DataFrame, groups: pd.Series) -> dict[str, Any]:
    """The resolution swaps of ``df``'s sources and the source probe on all of ``df``
    (``groups``: patient group per ``path``)."""
    grays = [load_gray(f) for f in df["file"]]
    swaps = {}
    for source, side in RESOLUTION_SWAPS.items():
        idx = np.flatnonzero((df["source"] == source).to_numpy())
        if len(idx):
            swaps[source] = resolution_swap(
                classifier, [grays[i] for i in idx], df["y"].to_numpy()[idx], side
            )
    with_groups = df.assign(group=df["path"].map(groups).fillna(df["path"]))
    probe = source_probe(classifier, with_groups, penultimate_features(classifier, grays))
    return {"resolution": swaps, "source_probe": probe}


def format_shortcuts(section: dict[str, Any]) -> str:
    """The resolution swaps and the source probe, a line each."""
    lines = []
    for source, s in section["resolution"].items():
        lines.append(
            f"{source} re-saved at {s['longer_side']} px: {pct(s['changed'], 1)} of {s['n']} "
            f"answers changed; balanced accuracy {s['original']['balanced_accuracy']:.3f} -> "
            f"{s['resaved']['balanced_accuracy']:.3f}"
        )
    for label, p in section["source_probe"].items():
        lines.append(
            f"source probe, {label}: balanced accuracy {p['balanced_accuracy']:.3f} "
            f"(chance {p['chance']:.3f}) over {', '.join(p['sources'])}"
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
    """The lung ablation and / or the Grad-CAM lung focus on a stratified sample of ``df``."""
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
        out["ablation"] = ablation(classifier, grays, y, masks)
        out["ablation"]["mask_convention"] = "full"
        out["ablation"]["seconds"] = round(time.time() - t0, 1)
        logger.info(format_ablation(out["ablation"]))
    if explain:
        t0 = time.time()
        ex = explanation_summary(classifier, seg, grays, y, list(sub["source"]))
        ex["seconds"] = round(time.time() - t0, 1)
        out["explain"] = ex
        logger.info(format_explain(ex))
    return out

"""Two shortcut checks beside the lung ablation: does resolution or the hospital decide?

:func:`resolution_swap` re-saves a source's images at another size and counts the answers
that change; :func:`source_probe` asks how well the classifier's penultimate features tell
the sources of one class apart.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cxrlib.evaluate.metrics import headline_scores
from cxrlib.infer.classifier import LOGITS_LAYER, Classifier
from cxrlib.train.data import load_gray

if TYPE_CHECKING:
    import pandas as pd

#: Source -> the longer side its test images are re-saved at (nih is 384 px, quex 256 px).
RESOLUTION_SWAPS: dict[str, int] = {"nih": 256, "quex": 384}
#: A source needs this many images of a class to take part in that class's probe.
PROBE_MIN_IMAGES = 10
JPEG_QUALITY = 90


def resave(gray: np.ndarray, longer_side: int) -> np.ndarray:
    """``gray`` resized (Lanczos, aspect kept) so its longer side is ``longer_side``, then
    JPEG-encoded at quality 90 and decoded, as the shared dataset's copies were made."""
    h, w = gray.shape
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(gray).resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def resolution_swap(
    classifier: Classifier, grays: Sequence[np.ndarray], y: np.ndarray, longer_side: int
) -> dict[str, Any]:
    """The share of answers on ``grays`` that change when they are re-saved at
    ``longer_side`` (``changed``), and the headline scores of both versions."""
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
    """``(N, D)``: the input of the classifier's logits layer for each image (original view)."""
    import keras

    layer = classifier.model.get_layer(LOGITS_LAYER)
    features = keras.Model(classifier.model.inputs, layer.input)
    batch = np.stack([classifier.prepare(g) for g in grays]).astype(np.float32)[..., None]
    return np.asarray(features.predict(batch, batch_size=64, verbose=0))


def _probe_one_class(
    x: np.ndarray, sources: np.ndarray, groups: np.ndarray, seed: int
) -> dict[str, Any]:
    """Cross-validated source prediction from ``x``: balanced accuracy against chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = sorted(set(sources.tolist()))
    folds = min(5, min(int(np.sum(sources == s)) for s in names))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(model, x, sources, groups=groups, cv=cv)
    return {
        "sources": names,
        "n": {s: int(np.sum(sources == s)) for s in names},
        "balanced_accuracy": round(float(balanced_accuracy_score(sources, pred)), 4),
        "chance": round(1.0 / len(names), 4),
        "confusion": confusion_matrix(sources, pred, labels=names).tolist(),
    }


def source_probe(
    classifier: Classifier, df: pd.DataFrame, features: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """Per class, how well the penultimate ``features`` of ``df``'s rows tell their sources
    apart (sources with at least :data:`PROBE_MIN_IMAGES` images of the class).

    ``df`` needs ``label``, ``source`` and ``group`` (patient group: no group spans folds).
    """
    out: dict[str, Any] = {}
    for label in classifier.class_names:
        in_class = (df["label"] == label).to_numpy()
        counts = df.loc[in_class, "source"].value_counts()
        kept = sorted(counts[counts >= PROBE_MIN_IMAGES].index)
        rows = in_class & df["source"].isin(kept).to_numpy()
        if len(kept) < 2:
            continue
        out[label] = _probe_one_class(
            features[rows],
            df.loc[rows, "source"].to_numpy(),
            df.loc[rows, "group"].to_numpy(),
            seed,
        )
    return out


def shortcut_checks(classifier: Classifier, df: pd.DataFrame, groups: pd.Series) -> dict[str, Any]:
    """The resolution swap of each source in :data:`RESOLUTION_SWAPS` present in ``df``, and
    the source probe on all of ``df`` (``groups``: patient group per ``path``)."""
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
            f"{source} re-saved at {s['longer_side']} px: {s['changed']:.1%} of {s['n']} answers "
            f"changed; balanced accuracy {s['original']['balanced_accuracy']:.3f} -> "
            f"{s['resaved']['balanced_accuracy']:.3f}"
        )
    for label, p in section["source_probe"].items():
        lines.append(
            f"source probe, {label}: balanced accuracy {p['balanced_accuracy']:.3f} "
            f"(chance {p['chance']:.3f}) over {', '.join(p['sources'])}"
        )
    return "\n".join(lines)

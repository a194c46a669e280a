"""The external check: chest X-rays of the lung set from a collection (OpenIST) that no
training image came from, which the internal test split cannot measure; also for the images
the lung segmenter never trained on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from cxrlib.core.errors import ManifestError
from cxrlib.core.formatting import pct
from cxrlib.core.metrics import CONFIDENT
from cxrlib.evaluate.metrics import diagnosed_probabilities
from cxrlib.infer import gate
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.views import View
from cxrlib.train.data import load_gray

logger = logging.getLogger(__name__)


#: The lung set's collection (``source`` in its manifest) that is not among the classifier's
#: sources, and what its record says of it: every image of it is of class ``label``.
SOURCE = "openist_normal"
COLLECTION = {
    "name": "OpenIST",
    "description": "normal adult chest X-rays of a radiology teaching website, collected in "
    "github.com/pi-null-mezon/OpenIST",
    "label": "normal",
    "population": "adult",
}

#: Rows of the external table: every image, and those the segmenter never trained on.
SUBSETS = {"all": None, "segmenter_unseen": ("val", "test")}

#: Two images whose thumbnails correlate at least this well are counted as the same picture
#: (all frontal chest X-rays share one layout, so different patients correlate highly too).
DUPLICATE_SIMILARITY = 0.98


def collection_frame(lungs_root: str | Path, source: str) -> pd.DataFrame:
    """The lung set's rows of ``source`` with their ``path`` and ``file`` (``split``: the
    segmenter's); ManifestError if the manifest is missing, lacks columns or has none of it."""
    manifest = Path(lungs_root) / "manifest.csv"
    if not manifest.exists():
        raise ManifestError(f"{manifest} does not exist: is {lungs_root} the lung set?")
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = {"image", "source", "split"} - set(df.columns)
    if missing:
        raise ManifestError(f"{manifest} lacks column(s): {', '.join(sorted(missing))}")
    df = df[df["source"] == source]
    if df.empty:
        raise ManifestError(f"{manifest}: no image of {source!r}")
    root = Path(lungs_root).resolve()
    return df.assign(path=df["image"], file=[str(root / p) for p in df["image"]])


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """A 32 x 32 thumbnail, zero-mean and of unit length: the dot product of two is their
    correlation."""
    t = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    t -= t.mean()
    return t / max(float(np.linalg.norm(t)), 1e-6)


def nearest_similarity(thumbs: np.ndarray, reference: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each row of ``thumbs``, its highest correlation with any ``reference`` row."""
    if not len(reference):
        return np.full(len(thumbs), -1.0, np.float32)
    return np.concatenate(
        [(thumbs[i : i + chunk] @ reference.T).max(1) for i in range(0, len(thumbs), chunk)]
    )


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a share ``k / n`` (None when ``n`` is 0)."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def answers(probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """How many images got each answer, with shares and intervals, and how many of them with
    a probability of at least :data:`CONFIDENT`."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(class_names))
    n = len(probs)
    pred, k = probs.argmax(axis=1), len(class_names)
    called = dict(zip(class_names, np.bincount(pred, minlength=k).tolist()))
    sure = pred[probs.max(axis=1) >= CONFIDENT]
    confident = dict(zip(class_names, np.bincount(sure, minlength=k).tolist()))
    return {
        "n": n,
        "called": called,
        "share": {c: round(k / n, 4) if n else None for c, k in called.items()},
        "ci95": {c: wilson_interval(k, n) for c, k in called.items()},
        "confident": confident,
        "confident_share": {c: round(k / n, 4) if n else None for c, k in confident.items()},
        "confident_at": CONFIDENT,
    }


def external_check(
    classifier: Classifier,
    lungs_root: str | Path,
    training_files: Sequence[str],
    views: Sequence[View] | None = None,
) -> dict[str, Any]:
    """Scores ``classifier`` on the lung set's outside collection: the answers of every image
    and of those the segmenter never trained on, how many the app's input check refuses, and
    how many are copies of one of ``training_files``."""
    logger.info(f"reading {len(training_files):,} training-source images to look for duplicates")
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda f: thumbnail(load_gray(f)), training_files))
    reference = np.stack(rows) if rows else np.zeros((0, 32 * 32), np.float32)
    out: dict[str, Any] = {"collections": {}, "reference_images": len(reference)}
    names = classifier.class_names
    frame = collection_frame(lungs_root, SOURCE)
    files = list(frame["file"])
    probs = diagnosed_probabilities(classifier, files, views)
    # Read once for both checks (the diagnosis reads its own).
    grays = [load_gray(f) for f in files]
    refused = [not gate.assess(g).is_cxr for g in grays]
    nearest = nearest_similarity(np.stack([thumbnail(g) for g in grays]), reference)
    split = frame["split"].to_numpy()
    subsets = {}
    for key, splits in SUBSETS.items():
        keep = np.ones(len(frame), bool) if splits is None else np.isin(split, splits)
        subsets[key] = answers(probs[keep], names)
    out["collections"][SOURCE] = {
        **COLLECTION,
        "n": len(frame),
        "subsets": subsets,
        "mean_probs": {k: round(float(v), 4) for k, v in zip(names, probs.mean(0))},
        "input_check_refused": int(np.sum(refused)),
        "duplicates": {
            "similarity_threshold": DUPLICATE_SIMILARITY,
            "found": int(np.sum(nearest >= DUPLICATE_SIMILARITY)),
            "highest_similarity": round(float(nearest.max()), 4) if len(nearest) else None,
        },
        "predictions": [
            {"path": p, "split": s, "probs": [round(float(v), 5) for v in pr]}
            for p, s, pr in zip(frame["path"], split, probs)
        ],
    }
    used = classifier.resolve_views(views)
    out["views"] = 1 + len(used) if used else 1
    return out


def format_external(section: dict[str, Any], class_names: Sequence[str]) -> str:
    """A readable summary of :func:`external_check` output."""
    lines = []
    for source, rec in section["collections"].items():
        dup = rec["duplicates"]
        lines.append(
            f"== {source} ({rec['name']}, all {rec['label']}): {rec['n']} images, "
            f"{rec['input_check_refused']} refused by the input check, {dup['found']} duplicates "
            f"of a training-source image (highest thumbnail correlation "
            f"{dup['highest_similarity']}; {dup['similarity_threshold']} counts) =="
        )
        lines.append(f"{'subset':<18}{'n':>5}" + "".join(f"{c:>12}" for c in class_names))
        for key, sub in rec["subsets"].items():
            shares = "".join(f"{pct(sub['share'][c] or 0, 1):>12}" for c in class_names)
            lines.append(f"{key:<18}{sub['n']:>5}{shares}")
    return "\n".join(lines)

"""Manifests and image loading for training and evaluation.

A manifest is a CSV with at least ``path,label`` (optionally ``source``, ``split``), its paths
relative to a root folder. Images in model geometry and the lung frames of each file are cached
with joblib under :data:`CACHE_DIR` (delete it to start afresh); the frames per file, so that
any subset of the images (a leave-one-source-out run) is segmented only once. And a classifier's
logits and probabilities over image files, for calibration and evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import cv2
import joblib
import numpy as np
import pandas as pd

from cxrlib.core.errors import ManifestError
from cxrlib.infer.classifier import CLASS_NAMES, Classifier
from cxrlib.infer.preprocess import Box, PreprocessConfig, small_mask, to_geometry
from cxrlib.infer.views import View

CACHE_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "cache"


def read_manifest(
    path: str | Path,
    root: str | Path | None = None,
    split: str | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> pd.DataFrame:
    """A manifest CSV (optionally one ``split`` of it) plus ``file`` (the path resolved against
    ``root``, default the CSV's folder), ``y`` (the label's index) and ``source`` ("unknown"
    where absent).

    Raises:
        ManifestError: on missing columns, unknown labels or an empty selection.
    """
    path = Path(path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(df.columns)
    if missing:
        raise ManifestError(f"{path} lacks column(s): {', '.join(sorted(missing))}")
    if split is not None:
        if "split" not in df.columns:
            raise ManifestError(f"{path} has no split column; cannot select split {split!r}")
        df = df[df["split"] == split]
    if df.empty:
        raise ManifestError(f"{path}: no rows" + (f" with split == {split!r}" if split else ""))
    bad = sorted(set(df["label"]) - set(class_names))
    if bad:
        raise ManifestError(f"{path}: unknown label(s) {bad}; expected {list(class_names)}")
    base = Path(root) if root is not None else path.parent
    df = df.reset_index(drop=True).copy()
    df["file"] = [str((base / p).resolve()) for p in df["path"]]
    df["y"] = [class_names.index(label) for label in df["label"]]
    if "source" not in df.columns:
        df["source"] = "unknown"
    return df


def stratified_sample(df: pd.DataFrame, max_images: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_images`` rows of a manifest, spread evenly over its (source, label) groups
    (``df`` itself when it is no longer)."""
    if not max_images or len(df) <= max_images:
        return df
    groups = [g for _, g in df.groupby(["source", "label"], sort=True)]
    per = max(1, max_images // len(groups))
    # Not groupby().apply(): pandas 3 drops the grouping columns from its result.
    out = pd.concat([g.sample(min(len(g), per), random_state=seed) for g in groups])
    # More groups than images: one row from each of a seeded choice of groups.
    return out.sample(max_images, random_state=seed) if len(out) > max_images else out


def load_gray(file: str | Path) -> np.ndarray:
    """Reads a dataset image as 2-D uint8 (the shared datasets are clean JPEG/PNG)."""
    img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"cannot read image {file}")
    return img


def load_geometry(
    files: Sequence[str],
    config: PreprocessConfig,
    cache: bool = True,
    segmenter: Any = None,
) -> np.ndarray:
    """The images after the geometry step of preprocessing, uint8 ``(N, size, size)``; lung
    cropping segments with ``segmenter`` (default: the committed one)."""
    if config.lung_crop and segmenter is None:
        from cxrlib.infer.lungs import default_segmenter  # lazy: loads TensorFlow

        segmenter = default_segmenter()
    weights = segmenter.meta.get("weights_sha256", "") if config.lung_crop else ""
    geometry = _geometry
    if cache:
        memory = joblib.Memory(CACHE_DIR, verbose=0)
        geometry = memory.cache(_geometry, ignore=["segmenter", "cache"])
    return geometry(list(files), config, weights, segmenter, cache)


def _geometry(
    files: list[str],
    config: PreprocessConfig,
    segmenter_weights: str,
    segmenter: Any,
    cache: bool,
) -> np.ndarray:
    """:func:`load_geometry` uncached (``segmenter_weights`` names the segmenter in the key)."""
    boxes = lung_inputs(files, config, segmenter, cache=cache)

    def one(i: int) -> np.ndarray:
        return to_geometry(load_gray(files[i]), config, boxes[i])

    arr = np.zeros((len(files), config.size, config.size), np.uint8)
    with ThreadPoolExecutor(4) as pool:  # cv2 releases the GIL while decoding
        for i, geo in enumerate(pool.map(one, range(len(files)))):
            arr[i] = geo
    return arr


def lung_inputs(
    files: Sequence[str], config: PreprocessConfig, segmenter: Any, cache: bool = True
) -> list[Box | None]:
    """The crop box of each file (all None unless ``config`` crops to the lungs)."""
    if not config.lung_crop:
        return [None] * len(files)
    return lung_frames(files, config.lung_margin, segmenter, cache=cache)[0]


def lung_frames(
    files: Sequence[str], margin: float, segmenter: Any, cache: bool = True, chunk: int = 256
) -> tuple[list[Box | None], list[np.ndarray]]:
    """Lung crop boxes and stored-size lung masks of dataset images, cached per file."""
    key = repr((margin, segmenter.meta.get("weights_sha256", ""))).encode()
    store = CACHE_DIR / f"lungframes_{hashlib.sha256(key).hexdigest()[:12]}.joblib"
    known: dict[str, tuple[Box | None, np.ndarray]] = (
        joblib.load(store) if cache and store.exists() else {}
    )
    todo = [f for f in dict.fromkeys(files) if f not in known]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        for f, (box, mask) in zip(part, segmenter.frames([load_gray(f) for f in part], margin)):
            known[f] = (None if box is None else cast(Box, tuple(map(int, box))), small_mask(mask))
    if cache and todo:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        joblib.dump(known, store, compress=3)
    return [known[f][0] for f in files], [known[f][1] for f in files]


def sampling_weights(
    labels: Iterable[int],
    sources: Iterable[str],
    power: float = 0.5,
    floor: int = 1,
) -> np.ndarray:
    """Per-sample probabilities: every class the same mass; within a class, a source of n images
    mass n**power (1: class balance only; 0: sources equal). A source under ``floor`` images is
    weighted per image like one of ``floor``, so that a tiny source is not oversampled."""
    labels = np.asarray(list(labels))
    sources = np.asarray(list(sources))
    floor = max(1, int(floor))
    w = np.zeros(len(labels), np.float64)
    classes = np.unique(labels)
    for c in classes:
        in_c = labels == c
        groups = np.unique(sources[in_c])
        sizes = {g: float(np.sum(in_c & (sources == g))) for g in groups}
        masses = {g: n * max(n, floor) ** (power - 1.0) for g, n in sizes.items()}
        total = sum(masses.values())
        for g in groups:
            idx = in_c & (sources == g)
            w[idx] = masses[g] / total / idx.sum()
    return w / w.sum()


def file_view_logits(
    classifier: Classifier,
    files: Sequence[str],
    views: Sequence[View] = (),
    batch_size: int = 64,
) -> np.ndarray:
    """Logits ``(N, 1 + len(views), K)`` of image files and their test-time views, read in
    batches (the lung frames from the per-file cache)."""
    pre = classifier.preprocess
    segmenter = classifier.lung_segmenter() if pre.lung_crop else None
    crops = lung_inputs(files, pre, segmenter)
    out = []
    for i in range(0, len(files), batch_size):
        grays = [load_gray(f) for f in files[i : i + batch_size]]
        part = slice(i, i + batch_size)
        out.append(classifier.view_logits(grays, views, batch_size, crops[part]))
    k = len(classifier.class_names)
    return np.concatenate(out) if out else np.zeros((0, 1 + len(views), k), np.float32)

"""Manifests and image loading for training and evaluation.

A manifest is a CSV with at least ``path,label`` (optionally ``source``,
``split``, ...); paths are relative to a root folder (by default the
manifest's own folder).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from cxrlib.model import CLASS_NAMES
from cxrlib.preprocess import Box, PreprocessConfig, to_geometry

CACHE_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "cache"


class ManifestError(ValueError):
    """The manifest is missing columns or names unknown labels."""


def read_manifest(
    path: str | Path,
    root: str | Path | None = None,
    split: str | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> pd.DataFrame:
    """Reads a manifest CSV and resolves image paths.

    Args:
        path: The CSV file.
        root: Folder the ``path`` column is relative to; default the CSV's folder.
        split: Keep only rows whose ``split`` equals this (if the column exists).
        class_names: Allowed labels; ``y`` is the label's index in this order.

    Returns:
        DataFrame with the CSV's columns plus ``file`` (absolute path), ``y``
        (class index) and ``source`` (``"unknown"`` where absent).

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
    workers: int = 4,
    segmenter: Any = None,
) -> np.ndarray:
    """Loads images and applies the geometry step of preprocessing.

    Returns uint8 ``(N, size, size)``. Results are cached under
    ``artifacts/cache`` keyed by the file list and geometry settings, since
    decoding 10,000 JPEGs costs about half a minute (and lung cropping, which
    segments every image with ``segmenter`` (default: the committed one),
    a few minutes).
    """
    settings: tuple[Any, ...] = (config.size, config.geometry, config.border_crop)
    if config.lung_crop:
        if segmenter is None:
            from cxrlib.lungs import default_segmenter  # lazy: loads TensorFlow

            segmenter = default_segmenter()
        settings += ("lung", config.lung_margin, segmenter.meta.get("weights_sha256", ""))
    key = hashlib.sha256(("\n".join(files) + repr(settings)).encode()).hexdigest()[:20]
    cache_file = CACHE_DIR / f"geom_{key}.npy"
    if cache and cache_file.exists():
        return np.load(cache_file)

    boxes = (
        lung_boxes(files, config.lung_margin, segmenter, cache=cache)
        if config.lung_crop
        else [None] * len(files)
    )

    def one(i: int) -> np.ndarray:
        return to_geometry(load_gray(files[i]), config, boxes[i])

    arr = np.zeros((len(files), config.size, config.size), np.uint8)
    with ThreadPoolExecutor(workers) as pool:  # cv2 releases the GIL while decoding
        for i, geo in enumerate(pool.map(one, range(len(files)))):
            arr[i] = geo
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(cache_file, arr)
    return arr


def lung_boxes(
    files: Sequence[str], margin: float, segmenter: Any, cache: bool = True, chunk: int = 256
) -> list[Box | None]:
    """Lung-field crop boxes of dataset images (see :func:`cxrlib.lungs.crop_box`).

    Boxes are kept per file (and segmenter and margin) in ``artifacts/cache``,
    so the leave-one-source-out runs and repeated evaluations segment each
    image once.
    """
    tag = hashlib.sha256(
        repr((margin, segmenter.meta.get("weights_sha256", ""))).encode()
    ).hexdigest()[:12]
    store = CACHE_DIR / f"lungboxes_{tag}.json"
    known: dict[str, Any] = json.loads(store.read_text()) if cache and store.exists() else {}
    todo = [f for f in dict.fromkeys(files) if f not in known]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        found = segmenter.crop_boxes([load_gray(f) for f in part], margin)
        known.update({f: None if b is None else [int(v) for v in b] for f, b in zip(part, found)})
    if cache and todo:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(known))
    return [tuple(known[f]) if known[f] is not None else None for f in files]


def sampling_weights(
    labels: Iterable[int], sources: Iterable[str], power: float = 0.5
) -> np.ndarray:
    """Per-sample probabilities: every class gets equal mass; within a class,
    a (source, label) group of n images gets mass proportional to n**power.

    ``power=1`` is plain class balancing; ``power=0`` gives every source the
    same share of its class (large sources no longer dominate, which is one
    way to weaken source shortcuts).
    """
    labels = np.asarray(list(labels))
    sources = np.asarray(list(sources))
    w = np.zeros(len(labels), np.float64)
    classes = np.unique(labels)
    for c in classes:
        in_c = labels == c
        groups = np.unique(sources[in_c])
        masses = {g: float(np.sum(in_c & (sources == g))) ** power for g in groups}
        total = sum(masses.values())
        for g in groups:
            idx = in_c & (sources == g)
            w[idx] = masses[g] / total / idx.sum()
    return w / w.sum()

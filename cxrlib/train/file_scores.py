"""A classifier's logits and probabilities over image files, for calibration and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cxrlib.infer.classifier import Classifier
from cxrlib.infer.views import View
from cxrlib.train.data import load_gray, lung_inputs


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


def predict_files(
    classifier: Classifier,
    files: Sequence[str],
    batch_size: int = 64,
    views: Sequence[View] | None = None,
) -> np.ndarray:
    """Calibrated probabilities for image files: with ``views`` None the model's own prediction
    (the app's), with ``()`` the original image alone, else averaged over it and ``views``."""
    used = classifier.resolve_views(views)
    z = file_view_logits(classifier, files, used, batch_size)
    return classifier.combine_views(z, average=bool(used))[0]

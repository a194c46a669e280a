"""Post-training calibration: BatchNorm re-estimation and temperature scaling.

    python -m cxrlib.train.calibrate --model models/cxr_classifier.keras --data ../shared/cxr
    python -m cxrlib.train.calibrate --model models/cxr_classifier.keras --data ../shared/cxr --views

After a short training from scratch the BatchNorm moving statistics lag behind the weights and
describe augmented images; they are re-estimated on clean training images. ``--views`` fits
test-time averaging instead (JSON only). Neither reads the test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrlib.infer.classifier import Classifier, average_views, load_classifier, meta_path
from cxrlib.infer.preprocess import normalize_contrast
from cxrlib.infer.views import DEFAULT_VIEWS, View
from cxrlib.train.classifier import save_classifier
from cxrlib.train.data import file_view_logits, load_geometry, read_manifest
from cxrlib.train.scoring import compute_metrics, fit_temperature, macro_f1

logger = logging.getLogger(__name__)


def recalibrate_batchnorm(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> int:
    """Replaces the BatchNorm moving statistics by their plain average over ``images``
    ``(N, S, S, 1)``; returns the number of batches used."""
    layers = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    saved = [la.momentum for la in layers]
    x = np.asarray(images, np.float32)
    starts = range(0, len(x), batch_size)
    try:
        for k, start in enumerate(starts):
            for la in layers:
                la.momentum = k / (k + 1)  # a cumulative average: batch k weighs 1/(k+1)
            model(x[start : start + batch_size], training=True)
    finally:
        for la, m in zip(layers, saved, strict=True):
            la.momentum = m
    return len(starts)


def _val_scores(clf: Classifier, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    logits = np.concatenate([clf.logits(x[i : i + 128]) for i in range(0, len(x), 128)])
    return logits, macro_f1(y, logits.argmax(1))


def calibrate(
    model_path: str | Path,
    data: str | Path,
    n_images: int = 4000,
    command: str = "",
) -> dict[str, Any]:
    """Re-estimates BN statistics and the temperature; saves only if val macro-F1 holds."""
    t0 = time.time()
    clf = load_classifier(model_path)
    pre = clf.preprocess
    df = read_manifest(Path(data) / "manifest.csv", class_names=clf.class_names)
    tr, va = df[df["split"] == "train"], df[df["split"] == "val"]
    idx = np.random.default_rng(0).permutation(len(tr))[:n_images]

    def prepared(files: list[str]) -> np.ndarray:
        return np.stack([normalize_contrast(g, pre) for g in load_geometry(files, pre)])[..., None]

    x_tr = prepared(list(tr["file"].iloc[np.sort(idx)]))
    x_va = prepared(list(va["file"]))
    y_va = va["y"].to_numpy()
    _, f1_before = _val_scores(clf, x_va, y_va)
    recalibrate_batchnorm(clf.model, x_tr)
    new = Classifier(clf.model, clf.meta)
    logits, f1_after = _val_scores(new, x_va, y_va)
    temperature = fit_temperature(logits, y_va)
    report = {
        "command": command,
        "bn_images": int(len(x_tr)),
        "val_macro_f1_before": round(f1_before, 4),
        "val_macro_f1_after": round(f1_after, 4),
        "temperature_before": clf.temperature,
        "temperature_after": temperature,
        "kept": bool(f1_after >= f1_before),
        "seconds": round(time.time() - t0, 1),
    }
    logger.info(f"val macro-F1 {f1_before:.4f} -> {f1_after:.4f}; temperature {temperature:.3f}")
    if report["kept"]:
        meta = {k: v for k, v in clf.meta.items() if k != "weights_sha256"}
        meta["temperature"] = temperature
        meta["post_training"] = report
        # New BN statistics move every view's logits: a view temperature would be stale.
        if meta.pop("test_time_views", None):
            logger.info("test-time averaging removed; refit it with --views")
        save_classifier(clf.model, meta, model_path)
        logger.info(f"saved {model_path}")
    else:
        logger.info("kept the original model (validation did not improve)")
    return report


def fit_view_temperature(
    model_path: str | Path,
    data: str | Path,
    views: tuple[View, ...] = DEFAULT_VIEWS,
    command: str = "",
) -> dict[str, Any]:
    """Fits the temperature of the mean logits over ``views`` on the validation split and
    records it as ``test_time_views`` in the model's JSON, which every prediction follows."""
    t0 = time.time()
    model_path = Path(model_path)
    clf = load_classifier(model_path)
    df = read_manifest(Path(data) / "manifest.csv", class_names=clf.class_names)
    va = df[df["split"] == "val"]
    y = va["y"].to_numpy()
    z = file_view_logits(clf, list(va["file"]), views)
    temperature = fit_temperature(z.mean(axis=1), y)

    def scores(probs: np.ndarray) -> dict[str, float]:
        m = compute_metrics(y, probs, clf.class_names, n_boot=0, curves=False)
        return {k: m[k] for k in ("balanced_accuracy", "macro_f1", "ece", "brier")}

    record: dict[str, Any] = {
        "views": [v.name for v in views],
        "temperature": temperature,
        "fitted_on": "val",
        "n_val": int(len(y)),
        "val_one_view": scores(clf.combine_views(z, average=False)[0]),
        "val_averaged": scores(average_views(z, temperature)[0]),
        "command": command,
        "seconds": round(time.time() - t0, 1),
    }
    meta = dict(clf.meta)
    meta["test_time_views"] = record
    meta_path(model_path).write_text(json.dumps(meta, indent=2) + "\n")
    one, avg = record["val_one_view"], record["val_averaged"]
    logger.info(
        f"validation balanced accuracy {one['balanced_accuracy']:.4f} (one view) -> "
        f"{avg['balanced_accuracy']:.4f} (mean over {len(views) + 1}); ECE {one['ece']:.4f} -> "
        f"{avg['ece']:.4f}; temperature of the mean {temperature:.3f}"
    )
    logger.info(f"wrote {meta_path(model_path)}")
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line: BatchNorm re-estimation + temperature, or (``--views``) test-time averaging."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.train.calibrate",
        description="Re-estimate a trained classifier's BatchNorm statistics and refit its "
        "temperature on the validation split (kept only if validation macro-F1 holds); "
        "with --views, fit test-time averaging instead (JSON only).",
    )
    p.add_argument("--model", default="models/cxr_classifier.keras", help="the .keras to calibrate")
    p.add_argument("--data", default="../shared/cxr", help="folder with manifest.csv")
    p.add_argument(
        "--views",
        action="store_true",
        help="only fit test-time averaging over the default views (JSON only, weights kept)",
    )
    a = p.parse_args(argv)
    command = "python -m cxrlib.train.calibrate " + shlex.join(argv)
    run = fit_view_temperature if a.views else calibrate
    print(json.dumps(run(a.model, a.data, command=command)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

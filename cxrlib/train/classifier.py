"""Train the classifier from scratch (the command line is :mod:`cxrlib.train.cli`).

Each image is first cropped to its lung fields (the committed lung segmenter;
``--no-lung-crop`` keeps the whole image). Balanced sampling (every class the
same share of each batch; within a class, sources weighted by n**power),
augmentation on raw pixels, AdamW with warm-up and cosine decay, early stopping
on validation macro-F1 (best weights kept), then temperature scaling fitted on
the validation split. Writes ``<out>/<name>.keras`` and ``<out>/<name>.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from cxrlib.core.hashing import sha256_file
from cxrlib.infer.classifier import CLASS_NAMES, LOGITS_LAYER, PENULTIMATE_LAYER, meta_path
from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast
from cxrlib.train.architectures import DEFAULT_WIDTHS, build_classifier
from cxrlib.train.batches import AugmentedBatches
from cxrlib.train.callbacks import EpochMetrics
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import load_geometry, read_manifest, sampling_weights
from cxrlib.train.scoring import fit_temperature

logger = logging.getLogger(__name__)

#: Training images scored each epoch (a fixed random subset) beside the validation split.
TRAIN_EVAL_IMAGES = 1500


@dataclass
class _Data:
    """The splits of one run, loaded and prepared."""

    tr: pd.DataFrame
    va: pd.DataFrame
    x_tr_raw: np.ndarray  # train images in model geometry, before augmentation
    y_tr: np.ndarray
    x_va: np.ndarray  # validation inputs, prepared
    y_va: np.ndarray
    sub: np.ndarray  # the training images scored each epoch
    x_tr_eval: np.ndarray


def _prepared(images: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    return np.stack([normalize_contrast(im, pre) for im in images])[..., None].astype(np.float32)


def _splits(
    manifest: str | Path, root: str | Path | None, cfg: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest's train and val rows, without the excluded sources."""
    df = read_manifest(manifest, root=root)
    if "split" not in df.columns:
        raise ValueError("the training manifest needs a split column (train/val)")
    if cfg.exclude_sources:
        df = df[~df["source"].isin(cfg.exclude_sources)]
    return df[df["split"] == "train"], df[df["split"] == "val"]


def _load(
    manifest: str | Path,
    root: str | Path | None,
    cfg: TrainConfig,
    cache: bool,
) -> _Data:
    """Reads the splits and brings their images to model geometry."""
    tr, va = _splits(manifest, root, cfg)
    pre = cfg.preprocess
    logger.info(f"loading {len(tr)} train / {len(va)} val images at {pre.size} px ...")
    x_tr_raw = load_geometry(list(tr["file"]), pre, cache=cache)
    x_va = _prepared(load_geometry(list(va["file"]), pre, cache=cache), pre)
    rng = np.random.default_rng(cfg.seed)
    sub = rng.choice(len(tr), size=min(TRAIN_EVAL_IMAGES, len(tr)), replace=False)
    return _Data(
        tr=tr,
        va=va,
        x_tr_raw=x_tr_raw,
        y_tr=tr["y"].to_numpy(np.int64),
        x_va=x_va,
        y_va=va["y"].to_numpy(np.int64),
        sub=sub,
        x_tr_eval=_prepared(x_tr_raw[sub], pre),
    )


def _compiled(cfg: TrainConfig, steps: int) -> keras.Model:
    """The classifier, compiled with AdamW on a warm-up then cosine-decay schedule."""
    model = build_classifier(
        cfg.preprocess.size, cfg.arch, alpha=cfg.alpha, width=cfg.width, seed=cfg.seed
    )
    total = steps * cfg.epochs
    warm = min(steps, max(1, total // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr * 0.05, decay_steps=max(1, total - warm), warmup_target=cfg.lr, warmup_steps=warm
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _record(
    cfg: TrainConfig,
    data: _Data,
    manifest: Path,
    command: str | None,
    temperature: float,
    metrics_cb: EpochMetrics,
    model: keras.Model,
    t0: float,
) -> dict[str, Any]:
    """The model's JSON (before the weights hash is added)."""
    pre, tr = cfg.preprocess, data.tr
    return {
        "class_names": list(CLASS_NAMES),
        "input_size": pre.size,
        "preprocess": pre.model_dump(),
        "temperature": temperature,
        "penultimate_layer": PENULTIMATE_LAYER,
        "train_config": cfg.model_dump(mode="json"),
        "command": command or "",
        "seed": cfg.seed,
        "manifest": str(manifest.name),
        "manifest_sha256": sha256_file(manifest),
        "n_train": int(len(tr)),
        "n_val": int(len(data.va)),
        "train_counts": {
            f"{s}/{lab}": int(n) for (s, lab), n in tr.groupby(["source", "label"]).size().items()
        },
        "best_epoch": metrics_cb.best_epoch + 1,
        "epochs_run": len(metrics_cb.history["loss"]),
        "history": metrics_cb.history,
        "params": int(model.count_params()),
        "train_seconds": round(time.time() - t0, 1),
        "keras_version": keras.__version__,
        # The committed recipe trained through JAX kept more COVID signal outside the lungs
        # than through TensorFlow (models/experiments.md), so the path is part of the record.
        "keras_backend": keras.backend.backend(),
    }


def train(
    manifest: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    name: str = "cxr_classifier",
    root: str | Path | None = None,
    command: str | None = None,
    verbose: int = 1,
    cache: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Trains, calibrates and saves a classifier; returns (model, metadata)."""
    t0 = time.time()
    keras.utils.set_random_seed(cfg.seed)
    # The JSON records the width actually built, not "the default" of the day.
    if cfg.width is None and cfg.arch in DEFAULT_WIDTHS:
        cfg = cfg.model_copy(update={"width": DEFAULT_WIDTHS[cfg.arch]})
    data = _load(manifest, root, cfg, cache)
    steps = cfg.steps_per_epoch or max(1, len(data.tr) // cfg.batch_size)
    probs = sampling_weights(
        data.y_tr, data.tr["source"], power=cfg.sampling_power, floor=cfg.sampling_floor
    )
    batches = AugmentedBatches(data.x_tr_raw, data.y_tr, probs, cfg, steps)
    model = _compiled(cfg, steps)
    metrics_cb = EpochMetrics(
        data.x_va, data.y_va, data.x_tr_eval, data.y_tr[data.sub], cfg.patience
    )
    model.fit(batches, epochs=cfg.epochs, callbacks=[metrics_cb], verbose=verbose)
    if metrics_cb.best_weights is not None:
        model.set_weights(metrics_cb.best_weights)

    logits_model = keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output)
    val_logits = logits_model.predict(data.x_va, batch_size=128, verbose=0)
    temperature = fit_temperature(val_logits, data.y_va)
    logger.info(
        f"best epoch {metrics_cb.best_epoch + 1} (val macro-F1 {metrics_cb.best_f1:.4f}); "
        f"temperature {temperature:.3f}"
    )
    meta = _record(cfg, data, Path(manifest), command, temperature, metrics_cb, model, t0)
    if cfg.preprocess.uses_lungs:
        # benchmarks/gpu_train.py stands in for this module on a machine without TensorFlow.
        from cxrlib.infer.lungs import default_segmenter

        meta["lung_segmenter_sha256"] = default_segmenter().meta["weights_sha256"]
    path = save_classifier(model, meta, Path(out_dir) / f"{name}.keras")
    meta = json.loads(path.with_suffix(".json").read_text())
    logger.info(
        f"saved {path} ({path.stat().st_size / 1e6:.1f} MB) in {meta['train_seconds'] / 60:.1f} min"
    )
    return model, meta


def save_classifier(model: keras.Model, meta: dict[str, Any], path: str | Path) -> Path:
    """Saves ``model`` to ``path`` (.keras) and ``meta`` (+ weights hash) beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if getattr(model, "optimizer", None) is not None:
        # The same layers without the training state: the optimizer's moments were over
        # half the file (two thirds for a wide ResNet), and classifiers load with
        # compile=False, so nothing reads them.
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    model.save(path)
    meta = dict(meta)
    meta["weights_sha256"] = sha256_file(path)
    meta.setdefault("class_names", list(CLASS_NAMES))
    meta_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path

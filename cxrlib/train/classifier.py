"""Train the classifier from scratch (the command line is :mod:`cxrlib.train.cli`): balanced
batches augmented on raw pixels, AdamW, early stopping on validation macro-F1, then temperature
scaling on the validation split."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrlib.core.hashing import sha256_file
from cxrlib.infer.classifier import CLASS_NAMES, LOGITS_LAYER, PENULTIMATE_LAYER, meta_path
from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast
from cxrlib.train.architectures import DEFAULT_WIDTHS, build_classifier
from cxrlib.train.augment import augment
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import load_geometry, read_manifest, sampling_weights
from cxrlib.train.scoring import fit_temperature, macro_f1

logger = logging.getLogger(__name__)

#: Training images scored each epoch (a fixed random subset) beside the validation split.
TRAIN_EVAL_IMAGES = 1500


class AugmentedBatches(keras.utils.PyDataset):
    """Endless class-balanced, augmented batches from a uint8 image array."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        probs: np.ndarray,
        cfg: TrainConfig,
        steps: int,
    ) -> None:
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)
        self.images, self.labels, self.probs = images, labels, probs
        self.cfg, self.steps, self.epoch = cfg, steps, 0
        self.targets = np.eye(len(CLASS_NAMES), dtype=np.float32)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(B, size, size, 1)`` float32 and one-hot targets ``(B, n_classes)``."""
        # Seeded per (epoch, batch) so a run is reproducible whatever the thread order.
        rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
        idx = rng.choice(len(self.labels), size=self.cfg.batch_size, p=self.probs)
        pre, aug = self.cfg.preprocess, self.cfg.augment
        x = [normalize_contrast(augment(self.images[j], rng, aug), pre) for j in idx]
        return np.stack(x)[..., None].astype(np.float32), self.targets[self.labels[idx]]

    def on_epoch_end(self) -> None:
        self.epoch += 1


class EpochMetrics(keras.callbacks.Callback):
    """Per-epoch macro-F1 on validation and a fixed training subset; early stopping."""

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        x_tr: np.ndarray,
        y_tr: np.ndarray,
        patience: int,
    ) -> None:
        super().__init__()
        self.x_val, self.y_val, self.x_tr, self.y_tr = x_val, y_val, x_tr, y_tr
        self.patience = patience
        keys = ("loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1")
        self.history: dict[str, list[float]] = {k: [] for k in keys}
        self.best_f1, self.best_epoch, self.best_weights = -1.0, -1, None

    def _score(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        p = self.model.predict(x, batch_size=128, verbose=0)
        pred = p.argmax(1)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-7)))
        return loss, float(np.mean(pred == y)), macro_f1(y, pred)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        loss, acc = float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))
        _, _, tr_f1 = self._score(self.x_tr, self.y_tr)
        v_loss, v_acc, v_f1 = self._score(self.x_val, self.y_val)
        for key, value in zip(self.history, (loss, acc, tr_f1, v_loss, v_acc, v_f1), strict=True):
            self.history[key].append(value)
        mark = ""
        if v_f1 > self.best_f1:
            self.best_f1, self.best_epoch = v_f1, epoch
            self.best_weights = self.model.get_weights()
            mark = "  * best"
        logger.info(
            f"epoch {epoch + 1}: loss {loss:.4f} acc {acc:.4f} "
            f"train-F1 {tr_f1:.4f} | val loss {v_loss:.4f} acc {v_acc:.4f} F1 {v_f1:.4f}{mark}"
        )
        if epoch - self.best_epoch >= self.patience:
            logger.info(f"early stop: no val macro-F1 gain for {self.patience} epochs")
            self.model.stop_training = True


def _prepared(images: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    return np.stack([normalize_contrast(im, pre) for im in images])[..., None].astype(np.float32)


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
    # The JSON records the width actually built, not "the default".
    if cfg.width is None and cfg.arch in DEFAULT_WIDTHS:
        cfg = cfg.model_copy(update={"width": DEFAULT_WIDTHS[cfg.arch]})
    df = read_manifest(manifest, root=root)
    if "split" not in df.columns:
        raise ValueError("the training manifest needs a split column (train/val)")
    if cfg.exclude_sources:
        df = df[~df["source"].isin(cfg.exclude_sources)]
    tr, va = df[df["split"] == "train"], df[df["split"] == "val"]
    pre = cfg.preprocess
    logger.info(f"loading {len(tr)} train / {len(va)} val images at {pre.size} px ...")
    x_tr = load_geometry(list(tr["file"]), pre, cache=cache)
    x_va = _prepared(load_geometry(list(va["file"]), pre, cache=cache), pre)
    y_tr, y_va = tr["y"].to_numpy(np.int64), va["y"].to_numpy(np.int64)
    sub = np.random.default_rng(cfg.seed).choice(
        len(tr), size=min(TRAIN_EVAL_IMAGES, len(tr)), replace=False
    )
    steps = cfg.steps_per_epoch or max(1, len(tr) // cfg.batch_size)
    probs = sampling_weights(y_tr, tr["source"], power=cfg.sampling_power, floor=cfg.sampling_floor)
    batches = AugmentedBatches(x_tr, y_tr, probs, cfg, steps)
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
    scores = EpochMetrics(x_va, y_va, _prepared(x_tr[sub], pre), y_tr[sub], cfg.patience)
    model.fit(batches, epochs=cfg.epochs, callbacks=[scores], verbose=verbose)
    if scores.best_weights is not None:
        model.set_weights(scores.best_weights)

    logits_model = keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output)
    temperature = fit_temperature(logits_model.predict(x_va, batch_size=128, verbose=0), y_va)
    logger.info(
        f"best epoch {scores.best_epoch + 1} (val macro-F1 {scores.best_f1:.4f}); "
        f"temperature {temperature:.3f}"
    )
    meta: dict[str, Any] = {
        "class_names": list(CLASS_NAMES),
        "input_size": cfg.preprocess.size,
        "preprocess": cfg.preprocess.model_dump(),
        "temperature": temperature,
        "penultimate_layer": PENULTIMATE_LAYER,
        "train_config": cfg.model_dump(mode="json"),
        "command": command or "",
        "seed": cfg.seed,
        "manifest": Path(manifest).name,
        "manifest_sha256": sha256_file(manifest),
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "train_counts": {
            f"{s}/{lab}": int(n) for (s, lab), n in tr.groupby(["source", "label"]).size().items()
        },
        "best_epoch": scores.best_epoch + 1,
        "epochs_run": len(scores.history["loss"]),
        "history": scores.history,
        "params": int(model.count_params()),
        "train_seconds": round(time.time() - t0, 1),
        "keras_version": keras.__version__,
        # Training through JAX and through TensorFlow differed on the lungs-erased audit.
        "keras_backend": keras.backend.backend(),
    }
    if pre.lung_crop:
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
        # The same layers without the optimizer state, which nothing reads (classifiers
        # load with compile=False).
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    model.save(path)
    meta = dict(meta)
    meta["weights_sha256"] = sha256_file(path)
    meta.setdefault("class_names", list(CLASS_NAMES))
    meta_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path

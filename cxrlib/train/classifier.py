"""Train the classifier from scratch.

    python -m cxrlib.train --data ../shared/cxr --out models/

Each image is first cropped to its lung fields (the committed lung segmenter;
``--no-lung-crop`` keeps the whole image). Balanced sampling (every class the
same share of each batch; within a class,
sources weighted by n**power), augmentation on raw pixels, AdamW with warm-up
and cosine decay, early stopping on validation macro-F1 (best weights kept),
then temperature scaling fitted on the validation split. Writes
``<out>/<name>.keras`` and ``<out>/<name>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras  # noqa: E402  (after cxrlib.infer.classifier set the TF log level)
import numpy as np

from cxrlib.train.adversary import SOURCE_OUTPUT, source_codes, with_source_adversary
from cxrlib.train.augment import AugmentConfig, augment, lung_ablation
from cxrlib.train.data import load_geometry, lung_geometry_masks, read_manifest, sampling_weights
from cxrlib.infer.classifier import (
    CLASS_NAMES,
    DEFAULT_WIDTHS,
    build_classifier,
    save_classifier,
    sha256_file,
    softmax,
)
from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the model JSON)."""

    arch: str = "mobilenetv2"
    alpha: float = 0.5
    width: int | None = None  # first-stage filters of "resnet" / "small"; None = the arch's default
    epochs: int = 14
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    seed: int = 0
    sampling_power: float = 0.5
    sampling_floor: int = 1
    steps_per_epoch: int | None = None  # default: one pass over the training set
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    # Strength of the class-conditional source adversary (cxrlib.train.adversary); 0 = off.
    adversary: float = 0.0
    exclude_sources: tuple[str, ...] = ()
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("preprocess", "augment")}
        d["exclude_sources"] = list(self.exclude_sources)
        d["preprocess"] = self.preprocess.to_dict()
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A recorded ``train_config`` back as a config. A setting the record predates takes
        its default, which is what the model trained with before the setting existed;
        settings since retired are ignored."""
        known = {f.name for f in dataclasses.fields(cls)} - {
            "preprocess",
            "augment",
            "exclude_sources",
        }
        return cls(
            **{k: v for k, v in data.items() if k in known},
            exclude_sources=tuple(data.get("exclude_sources") or ()),
            preprocess=PreprocessConfig.from_dict(data.get("preprocess") or {}),
            augment=AugmentConfig.from_dict(data.get("augment") or {}),
        )


class AugmentedBatches(keras.utils.PyDataset):
    """Endless balanced, augmented batches from a uint8 image array."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        probs: np.ndarray,
        cfg: TrainConfig,
        steps: int,
        lungs: np.ndarray | None = None,
        n_classes: int = len(CLASS_NAMES),
        sources: np.ndarray | None = None,
        n_sources: int = 0,
    ) -> None:
        """``lungs``: boolean lung masks in input geometry, needed by the lung ablation
        augmentations (``cfg.augment.uses_lungs``). ``sources``: each image's source code
        (of ``n_sources``), needed by the source adversary (``cfg.adversary``)."""
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)
        if cfg.augment.uses_lungs and lungs is None:
            raise ValueError("the lung ablation augmentations need lung masks")
        if cfg.adversary and (sources is None or n_sources < 1):
            raise ValueError("the source adversary needs each image's source")
        if cfg.adversary and cfg.augment.mixup:
            raise ValueError("mixup and the source adversary cannot be combined")
        self.images, self.labels, self.probs, self.lungs = images, labels, probs, lungs
        self.sources = None if sources is None else np.eye(n_sources, dtype=np.float32)[sources]
        self.cfg, self.steps, self.epoch = cfg, steps, 0
        self.targets = np.eye(n_classes, dtype=np.float32)
        self.uniform = np.full(n_classes, 1.0 / n_classes, np.float32)  # lungs erased

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        """Images ``(B, size, size, 1)`` float32 and one-hot (or, for an image whose lungs
        were erased, uniform) targets ``(B, n_classes)``. With the source adversary, both
        are dicts: the image and its class target in, the class and source targets out."""
        # Seeded per (epoch, batch) so a run is reproducible whatever the thread order.
        rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
        idx = rng.choice(len(self.labels), size=self.cfg.batch_size, p=self.probs)
        pre, aug = self.cfg.preprocess, self.cfg.augment
        lungs, sources = self.lungs, self.sources  # present when needed (see __init__)
        x, t = [], []
        for j in idx:
            img, erased = self.images[j], False
            if aug.uses_lungs and lungs is not None:
                img, erased = lung_ablation(img, lungs[j], rng, aug)
            x.append(normalize_contrast(augment(img, rng, aug), pre))
            t.append(self.uniform if erased else self.targets[self.labels[j]])
        xs, ts = np.stack(x)[..., None].astype(np.float32), np.stack(t)
        if aug.mixup:
            xs, ts = mixup(xs, ts, rng, aug.mixup)
        if self.cfg.adversary and sources is not None:
            return {"image": xs, "given_class": ts}, {"probs": ts, SOURCE_OUTPUT: sources[idx]}
        return xs, ts

    def on_epoch_end(self) -> None:
        self.epoch += 1


def mixup(
    x: np.ndarray, t: np.ndarray, rng: np.random.Generator, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Blends each image and target with a random partner from the same batch.

    Args:
        x: Images ``(B, ...)``, float.
        t: Targets ``(B, n_classes)``, rows summing to 1.
        rng: Random generator.
        alpha: Beta(alpha, alpha) parameter of the blend weight.

    Returns:
        ``(lam * x + (1 - lam) * x[partner], lam * t + (1 - lam) * t[partner])``, with
        ``lam`` drawn per image and kept at >= 0.5, so each image stays mostly itself.
    """
    lam = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    partner = rng.permutation(len(x))
    lx = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    return lx * x + (1 - lx) * x[partner], lam[:, None] * t + (1 - lam[:, None]) * t[partner]


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the validation negative log-likelihood."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


class EpochMetrics(keras.callbacks.Callback):
    """Per-epoch macro-F1 on validation and a fixed training subset; early stopping."""

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        x_tr: np.ndarray,
        y_tr: np.ndarray,
        patience: int,
        log: Callable[[str], None] = print,
        scored: keras.Model | None = None,
    ) -> None:
        """``scored``: the classifier to score and keep, when training runs through a
        larger model that shares its layers (the source adversary's)."""
        super().__init__()
        self.x_val, self.y_val, self.x_tr, self.y_tr = x_val, y_val, x_tr, y_tr
        self.scored = scored
        self.patience, self.log = patience, log
        self.history: dict[str, list[float]] = {
            k: []
            for k in ("loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1")
        }
        self.best_f1, self.best_epoch, self.best_weights = -1.0, -1, None

    def _score(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        p = (self.scored or self.model).predict(x, batch_size=128, verbose=0)
        pred = p.argmax(1)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-7)))
        return loss, float(np.mean(pred == y)), macro_f1(y, pred, p.shape[1])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        _, _, tr_f1 = self._score(self.x_tr, self.y_tr)
        v_loss, v_acc, v_f1 = self._score(self.x_val, self.y_val)
        h = self.history
        h["loss"].append(float(logs.get("loss", np.nan)))
        # With the adversary, Keras names the classifier's accuracy after its output.
        h["accuracy"].append(float(logs.get("accuracy", logs.get("probs_accuracy", np.nan))))
        h["macro_f1"].append(tr_f1)
        h["val_loss"].append(v_loss)
        h["val_accuracy"].append(v_acc)
        h["val_macro_f1"].append(v_f1)
        mark = ""
        if v_f1 > self.best_f1:
            self.best_f1, self.best_epoch = v_f1, epoch
            self.best_weights = (self.scored or self.model).get_weights()
            mark = "  * best"
        self.log(
            f"epoch {epoch + 1}: loss {h['loss'][-1]:.4f} acc {h['accuracy'][-1]:.4f} "
            f"train-F1 {tr_f1:.4f} | val loss {v_loss:.4f} acc {v_acc:.4f} F1 {v_f1:.4f}{mark}"
        )
        if epoch - self.best_epoch >= self.patience:
            self.log(f"early stop: no val macro-F1 gain for {self.patience} epochs")
            self.model.stop_training = True


class WeightAverage(keras.callbacks.Callback):
    """Exponential moving average of all the model's weights (BatchNorm statistics too).

    The averaged weights are what each epoch is scored (and early-stopped) on:
    they are swapped in at the end of an epoch and the trained ones back in at
    the start of the next. Averaging smooths the epoch-to-epoch swings of
    validation scores that a high learning rate and noisy batches cause. The
    decay ramps up as ``(1 + n) / (10 + n)`` over the first updates, as in
    ``tf.train.ExponentialMovingAverage``, so early weights are not overweighted.
    Must come before :class:`EpochMetrics` in the callback list.
    """

    def __init__(self, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.average: list[np.ndarray] = []
        self._trained: list[np.ndarray] | None = None
        self._updates = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.average = [np.array(w, np.float32) for w in self.model.get_weights()]
        self._updates = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._updates += 1
        d = min(self.decay, (1 + self._updates) / (10 + self._updates))
        for avg, w in zip(self.average, self.model.get_weights(), strict=True):
            avg *= d
            avg += (1.0 - d) * w

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._trained = self.model.get_weights()
        self.model.set_weights(self.average)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._trained is not None:
            self.model.set_weights(self._trained)
            self._trained = None


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
    log: Callable[[str], None] = print,
) -> tuple[keras.Model, dict[str, Any]]:
    """Trains, calibrates and saves a classifier; returns (model, metadata)."""
    t0 = time.time()
    keras.utils.set_random_seed(cfg.seed)
    # The JSON records the width actually built, not "the default" of the day.
    if cfg.width is None and cfg.arch in DEFAULT_WIDTHS:
        cfg = dataclasses.replace(cfg, width=DEFAULT_WIDTHS[cfg.arch])
    df = read_manifest(manifest, root=root)
    if "split" not in df.columns:
        raise ValueError("the training manifest needs a split column (train/val)")
    if cfg.exclude_sources:
        df = df[~df["source"].isin(cfg.exclude_sources)]
    tr, va = df[df["split"] == "train"], df[df["split"] == "val"]
    pre = cfg.preprocess
    log(f"loading {len(tr)} train / {len(va)} val images at {pre.size} px ...")
    x_tr_raw = load_geometry(list(tr["file"]), pre, cache=cache)
    x_va = _prepared(load_geometry(list(va["file"]), pre, cache=cache), pre)
    y_tr, y_va = tr["y"].to_numpy(np.int64), va["y"].to_numpy(np.int64)
    probs = sampling_weights(y_tr, tr["source"], power=cfg.sampling_power, floor=cfg.sampling_floor)

    rng = np.random.default_rng(cfg.seed)
    sub = rng.choice(len(tr), size=min(1500, len(tr)), replace=False)
    x_tr_eval = _prepared(x_tr_raw[sub], pre)

    steps = cfg.steps_per_epoch or max(1, len(tr) // cfg.batch_size)
    lungs = None
    if cfg.augment.uses_lungs:
        from cxrlib.infer.lungs import default_segmenter

        lungs = lung_geometry_masks(list(tr["file"]), pre, default_segmenter(), cache=cache)
    # The adversary's classes; without it the batches need no sources.
    sources, source_names = source_codes(list(tr["source"])) if cfg.adversary else (None, [])
    batches = AugmentedBatches(
        x_tr_raw, y_tr, probs, cfg, steps, lungs=lungs, sources=sources, n_sources=len(source_names)
    )
    model = build_classifier(pre.size, cfg.arch, alpha=cfg.alpha, width=cfg.width, seed=cfg.seed)
    loss: Any = "categorical_crossentropy"
    metrics: Any = ["accuracy"]
    fitted = model
    if cfg.adversary:
        # Trained through a larger model; ``model`` shares its layers and is what is saved.
        fitted = with_source_adversary(model, len(source_names), cfg.adversary)
        loss = {"probs": loss, SOURCE_OUTPUT: "categorical_crossentropy"}
        metrics = {"probs": metrics}
    total = steps * cfg.epochs
    warm = min(steps, max(1, total // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.lr * 0.05, decay_steps=max(1, total - warm), warmup_target=cfg.lr, warmup_steps=warm
    )
    fitted.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=loss,  # class targets are one-hot, or uniform (lungs erased)
        metrics=metrics,
    )
    metrics_cb = EpochMetrics(x_va, y_va, x_tr_eval, y_tr[sub], cfg.patience, log=log, scored=model)
    callbacks = ([WeightAverage(cfg.ema)] if cfg.ema else []) + [metrics_cb]
    fitted.fit(batches, epochs=cfg.epochs, callbacks=callbacks, verbose=verbose)
    if metrics_cb.best_weights is not None:
        model.set_weights(metrics_cb.best_weights)

    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)
    val_logits = logits_model.predict(x_va, batch_size=128, verbose=0)
    temperature = fit_temperature(val_logits, y_va)
    log(
        f"best epoch {metrics_cb.best_epoch + 1} (val macro-F1 {metrics_cb.best_f1:.4f}); "
        f"temperature {temperature:.3f}"
    )

    manifest = Path(manifest)
    meta: dict[str, Any] = {
        "class_names": list(CLASS_NAMES),
        "input_size": pre.size,
        "preprocess": pre.to_dict(),
        "temperature": temperature,
        "penultimate_layer": "last_conv",
        "train_config": cfg.to_dict(),
        "command": command or "",
        "seed": cfg.seed,
        "manifest": str(manifest.name),
        "manifest_sha256": sha256_file(manifest),
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "train_counts": {
            f"{s}/{lab}": int(n) for (s, lab), n in tr.groupby(["source", "label"]).size().items()
        },
        **({"adversary_sources": source_names} if cfg.adversary else {}),
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
    if pre.uses_lungs or cfg.augment.uses_lungs:
        from cxrlib.infer.lungs import default_segmenter

        meta["lung_segmenter_sha256"] = default_segmenter().meta["weights_sha256"]
    path = save_classifier(model, meta, Path(out_dir) / f"{name}.keras")
    meta = json.loads(path.with_suffix(".json").read_text())
    log(
        f"saved {path} ({path.stat().st_size / 1e6:.1f} MB) in {meta['train_seconds'] / 60:.1f} min"
    )
    return model, meta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="../shared/cxr", help="folder with manifest.csv")
    p.add_argument(
        "--manifest",
        default=None,
        help="manifest CSV (default DATA/manifest.csv); its paths are relative to DATA",
    )
    p.add_argument("--out", default="models", help="output folder")
    p.add_argument("--name", default="cxr_classifier", help="output file stem")
    d = TrainConfig()
    p.add_argument("--arch", default=d.arch, choices=["mobilenetv2", "resnet", "small"])
    p.add_argument("--alpha", type=float, default=d.alpha, help="MobileNetV2 width multiplier")
    p.add_argument(
        "--width", type=int, default=d.width, help="first-stage filters of resnet / small"
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--ema",
        type=float,
        default=d.ema,
        help="score, early-stop and keep an exponential moving average of the weights "
        "with this decay (e.g. 0.998); 0 = off",
    )
    p.add_argument(
        "--adversary",
        type=float,
        default=d.adversary,
        help="strength of a class-conditional source adversary (cxrlib.train.adversary), e.g. 0.1; "
        "0 = off",
    )
    p.add_argument(
        "--sampling-power",
        type=float,
        default=d.sampling_power,
        help="within-class source weighting n**power (1 = class balance only)",
    )
    p.add_argument(
        "--sampling-floor",
        type=int,
        default=d.sampling_floor,
        help="(source, class) groups smaller than this are weighted per image like a group "
        "of this size, so tiny sources are not oversampled (1 = off)",
    )
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument(
        "--exclude-source",
        action="append",
        default=[],
        help="leave this source out of training (repeatable)",
    )
    dp = PreprocessConfig()
    p.add_argument("--size", type=int, default=dp.size)
    p.add_argument("--geometry", default=dp.geometry, choices=["resize", "pad"])
    p.add_argument("--contrast", default=dp.contrast, choices=["clahe", "equalize", "none"])
    p.add_argument("--border-crop", type=float, default=dp.border_crop)
    p.add_argument(
        "--lung-crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="crop every image to its lung fields (committed lung segmenter) before resizing "
        "(default: on, as the committed model; --no-lung-crop keeps the whole image)",
    )
    p.add_argument("--lung-margin", type=float, default=dp.lung_margin)
    p.add_argument(
        "--lung-mask",
        action="store_true",
        help="also fill everything outside the (dilated) lung mask with the lungs' mean",
    )
    p.add_argument("--mask-dilation", type=float, default=dp.mask_dilation)
    p.add_argument("--no-augment", action="store_true", help="disable all augmentation")
    p.add_argument("--no-text-augment", action="store_true", help="no synthetic letters/arrows")
    p.add_argument(
        "--augment",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one augmentation setting (cxrlib.train.augment.AugmentConfig), e.g. p_jpeg=0 or "
        "p_erase_lungs=0.15 (repeatable; applied after --no-augment / --no-text-augment)",
    )
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def parse_settings(pairs: list[str], cls: type) -> dict[str, float]:
    """``["p_jpeg=0", ...]`` -> ``{"p_jpeg": 0.0}``, checked against dataclass ``cls``'s fields.

    Raises:
        SystemExit: (argparse style) on an unknown name or a value that is not a number.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        try:
            if not sep or name not in known:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise SystemExit(
                f"--augment {pair!r}: expected NAME=NUMBER with NAME one of {sorted(known)}"
            ) from None
    return out


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    pre = PreprocessConfig(
        **{k: getattr(a, k) for k in ("size", "geometry", "contrast", "border_crop")},
        lung_crop=a.lung_crop,
        lung_margin=a.lung_margin,
        lung_mask=a.lung_mask,
        mask_dilation=a.mask_dilation,
    )
    if a.no_augment:
        aug = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    elif a.no_text_augment:
        aug = AugmentConfig(p_text=0.0)
    else:
        aug = AugmentConfig()
    aug = dataclasses.replace(aug, **parse_settings(a.augment, AugmentConfig))
    return TrainConfig(
        arch=a.arch,
        alpha=a.alpha,
        width=a.width,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        patience=a.patience,
        seed=a.seed,
        sampling_power=a.sampling_power,
        sampling_floor=a.sampling_floor,
        ema=a.ema,
        adversary=a.adversary,
        steps_per_epoch=a.steps_per_epoch,
        exclude_sources=tuple(a.exclude_source),
        preprocess=pre,
        augment=aug,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    manifest = a.manifest or str(Path(a.data) / "manifest.csv")
    command = "python -m cxrlib.train " + " ".join(shlex.quote(x) for x in argv)
    train(
        manifest,
        a.out,
        config_from_args(a),
        name=a.name,
        root=a.data,
        command=command,
        verbose=0 if a.quiet else 1,
        cache=not a.no_cache,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

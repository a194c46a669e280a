"""Train and evaluate the lung segmenter (the U-Net of :mod:`cxrlib.infer.lungs`).

    python -m cxrlib.train.segmenter train --data ../shared/lungs --out models/
    python -m cxrlib.train.segmenter evaluate --data ../shared/lungs --split test

One sigmoid channel per mask convention over a shared trunk; each training image
trains only the channel of its source's convention
(:data:`cxrlib.train.segmenter_data.SOURCE_CONVENTION`), and each source is
evaluated on its own channel. Writes ``lung_segmenter.keras`` and its ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from cxrlib.core import settings
from cxrlib.infer.lungs import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_SEGMENTER_PATH,
    LungSegmenter,
    load_segmenter,
)
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.architectures import build_unet
from cxrlib.train.segmenter_data import (
    SOURCE_CONVENTION,
    MaskBatches,
    Pair,
    load_pairs,
    training_arrays,
)
from cxrlib.train.segmenter_scores import evaluate, inference_ms, tune_thresholds

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


# --------------------------------------------------------------------------- losses


def _select(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Target mask and the prediction of the target's own convention channel."""
    target, channel = y_true[..., 0], y_true[..., 1]
    pred = y_pred[..., 0] * (1.0 - channel) + y_pred[..., 1] * channel
    return target, pred


def soft_dice(y_true: Any, y_pred: Any) -> Any:
    """Per-image soft Dice on the convention channel of each image."""
    target, pred = _select(y_true, y_pred)
    inter = ops.sum(target * pred, axis=(1, 2))
    total = ops.sum(target, axis=(1, 2)) + ops.sum(pred, axis=(1, 2))
    return (2.0 * inter + 1.0) / (total + 1.0)


def bce_dice_loss(y_true: Any, y_pred: Any) -> Any:
    """Per-image binary cross-entropy + (1 - soft Dice), on each image's channel."""
    target, pred = _select(y_true, y_pred)
    pred = ops.clip(pred, 1e-6, 1.0 - 1e-6)
    bce = -ops.mean(target * ops.log(pred) + (1.0 - target) * ops.log(1.0 - pred), axis=(1, 2))
    return bce + 1.0 - soft_dice(y_true, y_pred)


# --------------------------------------------------------------------------- training


class _ValDice(keras.callbacks.Callback):
    """Adds ``val_dice_img`` (post-processed Dice at image size) to the epoch logs."""

    def __init__(self, pairs: Sequence[Pair], meta: dict[str, Any], time_limit_s: float | None):
        super().__init__()
        self.pairs, self.meta = pairs, meta
        self.time_limit_s, self.start = time_limit_s, time.perf_counter()
        self.stopped_for_time = False
        self._segmenter: LungSegmenter | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self._segmenter is None:  # one traced forward pass; it reads the live weights
            self._segmenter = LungSegmenter(self.model, self.meta)
        seg = self._segmenter
        logs["val_dice_img"] = evaluate(seg, self.pairs)["dice"] if self.pairs else 0.0
        elapsed = time.perf_counter() - self.start
        logger.info(
            f"epoch {epoch + 1}: val Dice (image size) {logs['val_dice_img']:.4f}, "
            f"{elapsed:.0f} s elapsed"
        )
        if self.time_limit_s and elapsed > self.time_limit_s:
            self.stopped_for_time = True
            self.model.stop_training = True


def _meta(
    data_dir: str | os.PathLike[str],
    config: PreprocessConfig,
    splits: dict[str, list[Pair]],
    base_filters: int,
    depth: int,
    seed: int,
    command: str | None,
) -> dict[str, Any]:
    """The segmenter's JSON before training (thresholds still 0.5)."""
    return {
        "kind": "lung_segmenter",
        "size": config.size,
        "base_filters": base_filters,
        "depth": depth,
        "preprocess": config.model_dump(),
        "conventions": list(CONVENTIONS),
        "default_convention": DEFAULT_CONVENTION,
        "source_convention": SOURCE_CONVENTION,
        "thresholds": {c: 0.5 for c in CONVENTIONS},
        "postprocess": "threshold, keep 2 largest components (2nd if >= 10% of 1st), fill holes",
        "seed": seed,
        "command": command,
        "data": str(data_dir),
        "n_pairs": {s: len(p) for s, p in splits.items()},
    }


def _fit(
    model: keras.Model,
    batches: MaskBatches,
    val_cb: _ValDice,
    epochs: int,
    learning_rate: float,
    patience: int,
    verbose: int | str,
) -> tuple[dict[str, list[float]], float]:
    """Compiles and fits ``model``; returns the rounded history and the seconds it took."""
    steps = len(batches) * epochs
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02),
            weight_decay=1e-4,
        ),
        loss=bce_dice_loss,
        metrics=[keras.metrics.MeanMetricWrapper(soft_dice, name="dice")],
    )
    callbacks = [
        val_cb,
        keras.callbacks.EarlyStopping(
            monitor="val_dice_img", mode="max", patience=patience, restore_best_weights=True
        ),
    ]
    start = time.perf_counter()
    history = model.fit(batches, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    seconds = time.perf_counter() - start
    return {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}, seconds


def _scores(segmenter: LungSegmenter, splits: dict[str, list[Pair]]) -> dict[str, Any]:
    """Val-tuned thresholds (set on ``segmenter``) and the Dice records of the JSON."""
    out: dict[str, Any] = {}
    if splits["val"]:
        out["thresholds"] = tune_thresholds(segmenter, splits["val"])
        segmenter.thresholds = dict(out["thresholds"])
    scored = [s for s in ("val", "test") if splits[s]]
    out["dice"] = {s: evaluate(segmenter, splits[s]) for s in scored}
    out["dice_all_default_convention"] = {
        s: evaluate(segmenter, splits[s], [DEFAULT_CONVENTION] * len(splits[s])) for s in scored
    }
    return out


def train(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    epochs: int = 40,
    size: int = 128,
    base_filters: int = 16,
    depth: int = 4,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    patience: int = 10,
    seed: int = 0,
    limit: int | None = None,
    time_limit_s: float | None = None,
    command: str | None = None,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Trains the lung U-Net and writes ``lung_segmenter.keras`` + ``.json`` to ``out_dir``.

    Args:
        data_dir: Folder with ``manifest.csv`` (image, mask, source, split).
        out_dir: Where the model and its JSON go.
        epochs: Maximum epochs (early stopping on val Dice may end sooner).
        size: Model input side.
        base_filters: U-Net width at full resolution.
        depth: U-Net down-sampling steps.
        batch_size: Training batch size.
        learning_rate: Peak AdamW learning rate (cosine decay to 0).
        patience: Early-stopping patience in epochs.
        seed: Seed for weights, shuffling and augmentation.
        limit: Use at most this many pairs per split (quick tests).
        time_limit_s: Stop after the epoch that passes this many seconds.
        command: The command line, recorded in the JSON.
        verbose: Keras ``fit`` verbosity.

    Returns:
        The metadata written to the JSON.
    """
    keras.utils.set_random_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = PreprocessConfig(size=size, geometry="resize", contrast="clahe")
    splits = {s: load_pairs(data_dir, s)[:limit] for s in SPLITS}
    meta = _meta(data_dir, config, splits, base_filters, depth, seed, command)
    batches = MaskBatches(*training_arrays(splits["train"], config), config, batch_size, seed, True)
    model = build_unet(size=size, base_filters=base_filters, depth=depth)
    val_cb = _ValDice(splits["val"], meta, time_limit_s)
    hist, seconds = _fit(model, batches, val_cb, epochs, learning_rate, patience, verbose)
    best_epoch = int(np.argmax(hist["val_dice_img"])) + 1 if hist.get("val_dice_img") else 0

    # Save a clean, uncompiled copy (no optimizer state: smaller file, no custom loss).
    final = build_unet(size=size, base_filters=base_filters, depth=depth)
    final.set_weights(model.get_weights())
    segmenter = LungSegmenter(final, meta)
    scores = _scores(segmenter, splits)
    meta.update(
        {
            **({"thresholds": scores["thresholds"]} if "thresholds" in scores else {}),
            "epochs_requested": epochs,
            "epochs_run": len(hist.get("loss", [])),
            "best_epoch": best_epoch,
            "stopped_for_time": val_cb.stopped_for_time,
            "train_seconds": round(seconds, 1),
            "params": int(final.count_params()),
            "history": hist,
            "dice": scores["dice"],
            "dice_all_default_convention": scores["dice_all_default_convention"],
            "dice_note": (
                "Mean per-image Dice at each image's own size after post-processing; "
                "each source scored on its own convention channel (source_convention). "
                "dice_all_default_convention scores every image on the default channel."
            ),
        }
    )
    if splits["val"]:
        meta["inference_ms"] = inference_ms(segmenter, splits["val"][0].image)
    model_path = out_dir / "lung_segmenter.keras"
    final.save(model_path)
    meta["file_bytes"] = model_path.stat().st_size
    model_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------- command line


def _print_results(title: str, res: dict[str, Any]) -> None:
    print(f"{title}: Dice {res['dice']:.4f} (n={res['n']})")
    for src, r in res["per_source"].items():
        print(f"  {src:<20} Dice {r['dice']:.4f}  min {r['dice_min']:.4f}  n={r['n']}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.train.segmenter",
        description="Train the lung segmenter, or score one on a split (Dice per source).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the lung U-Net")
    t.add_argument("--data", required=True, help="folder with manifest.csv (../shared/lungs)")
    t.add_argument("--out", default=str(settings.ROOT / "models"), help="output folder")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--size", type=int, default=128)
    t.add_argument("--base-filters", type=int, default=16)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--patience", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="at most N pairs per split")
    t.add_argument("--time-limit-min", type=float, default=None)
    e = sub.add_parser("evaluate", help="Dice per source on a split")
    e.add_argument("--data", required=True, help="folder with manifest.csv (../shared/lungs)")
    e.add_argument("--split", default="test", choices=list(SPLITS))
    e.add_argument("--model", default=str(DEFAULT_SEGMENTER_PATH))
    e.add_argument(
        "--convention",
        default=None,
        choices=CONVENTIONS,
        help="score every image on this channel (default: each source's own)",
    )
    return parser


def _train_command(args: argparse.Namespace, raw: list[str]) -> None:
    meta = train(
        args.data,
        args.out,
        epochs=args.epochs,
        size=args.size,
        base_filters=args.base_filters,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        limit=args.limit,
        time_limit_s=args.time_limit_min * 60 if args.time_limit_min else None,
        command="python -m cxrlib.train.segmenter " + shlex.join(raw),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    print(
        f"trained {meta['epochs_run']} epochs in {meta['train_seconds']:.0f} s "
        f"(best {meta['best_epoch']}); thresholds {meta['thresholds']}"
    )
    for split, res in meta["dice"].items():
        _print_results(split, res)
    print(f"inference {meta.get('inference_ms')} ms/image; file {meta['file_bytes']} bytes")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``train`` / ``evaluate``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    if args.cmd == "train":
        _train_command(args, sys.argv[1:] if argv is None else list(argv))
        return 0
    segmenter = load_segmenter(args.model)
    pairs = load_pairs(args.data, args.split)
    convs = [args.convention] * len(pairs) if args.convention else None
    _print_results(args.split, evaluate(segmenter, pairs, convs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

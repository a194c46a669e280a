"""Train and evaluate the lung segmenter (the U-Net of :mod:`cxrlib.infer.lungs`).

    python -m cxrlib.train.segmenter train --data ../shared/lungs --out models/
    python -m cxrlib.train.segmenter evaluate --data ../shared/lungs --split test

Each source outlines the lungs in one convention (:data:`SOURCE_CONVENTION`), and trains and
is scored on that convention's output channel.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
from keras import ops
from PIL import Image

from cxrlib.core import settings
from cxrlib.infer.lungs import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_SEGMENTER_PATH,
    LungSegmenter,
    dice,
    load_segmenter,
    postprocess,
)
from cxrlib.infer.preprocess import (
    PreprocessConfig,
    heatmap_to_image,
    normalize_contrast,
    to_geometry,
)
from cxrlib.train.architectures import build_unet

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: The mask convention of each training source (the output channel it trains).
SOURCE_CONVENTION: dict[str, str] = {
    "generalblockchain": "visible",
    "openist_normal": "visible",
    "v7labs_ieee8023": "full",
}


@dataclass
class Pair:
    """One image/mask pair at its own size."""

    image: np.ndarray
    mask: np.ndarray
    source: str

    @property
    def convention(self) -> str:
        return SOURCE_CONVENTION.get(self.source, DEFAULT_CONVENTION)


def _read_gray(path: Path) -> np.ndarray:
    # PIL, not cv2.imread: libpng prints a warning per PNG with an RGB iCCP profile.
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), np.uint8)


def load_pairs(data_dir: str | os.PathLike[str], split: str) -> list[Pair]:
    """Reads one split of the manifest's pairs as uint8 image + bool mask."""
    data_dir = Path(data_dir)
    pairs = []
    with open(data_dir / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] != split:
                continue
            image, mask = _read_gray(data_dir / row["image"]), _read_gray(data_dir / row["mask"])
            pairs.append(Pair(image, mask > 127, row["source"]))
    return pairs


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, affine, gamma/contrast, blur/noise of a raw uint8 image and its float mask
    (a horizontal flip is safe: the mask is the union of both lungs)."""
    s = image.shape[0]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.uniform(-10, 10)
    sx, sy = rng.uniform(0.88, 1.12, size=2)
    tx, ty = rng.uniform(-0.06, 0.06, size=2) * s
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx, sy])
    c = np.array([s / 2, s / 2])
    m = np.hstack([rot, (c - rot @ c + [tx, ty])[:, None]]).astype(np.float32)
    image, mask = (
        cv2.warpAffine(
            np.ascontiguousarray(arr),
            m,
            (s, s),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        for arr in (image, mask)
    )
    x: np.ndarray = image.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.7, 1.4)
    x = (x - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.0))
    if rng.random() < 0.25:
        x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    image = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask


class MaskBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches of (prepared image, [mask, convention channel])."""

    def __init__(self, pairs: Sequence[Pair], config: PreprocessConfig, batch_size: int, seed: int):
        super().__init__()
        size = config.size
        self.images = np.stack([to_geometry(p.image, config) for p in pairs])
        # Float targets at model size, area-averaged at the edges.
        self.masks = np.stack(
            [
                cv2.resize(p.mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                for p in pairs
            ]
        )
        self.channels = np.array([CONVENTIONS.index(p.convention) for p in pairs], np.float32)
        self.config, self.batch_size, self.seed = config, batch_size, seed
        self.epoch = 0
        self._shuffle()

    def _shuffle(self) -> None:
        self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        xs, ys = [], []
        for i in idx:
            img, msk = augment(self.images[i], self.masks[i], rng)
            xs.append(normalize_contrast(img, self.config))
            ys.append(np.stack([msk, np.full_like(msk, self.channels[i])], axis=-1))
        x = np.stack(xs).astype(np.float32)[..., None]
        return x, np.stack(ys).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def evaluate(
    segmenter: LungSegmenter, pairs: Sequence[Pair], conventions: Sequence[str | None] | None = None
) -> dict[str, Any]:
    """Mean Dice at each image's own size, overall and per source, each image on its source's
    convention unless ``conventions`` (one per pair) says otherwise."""
    if conventions is None:
        conventions = [p.convention for p in pairs]
    masks = segmenter.segment_many([p.image for p in pairs], conventions)
    scores = [dice(m, p.mask) for m, p in zip(masks, pairs)]
    per_source: dict[str, dict[str, float]] = {}
    for src in sorted({p.source for p in pairs}):
        s = [d for d, p in zip(scores, pairs) if p.source == src]
        per_source[src] = {
            "dice": round(float(np.mean(s)), 4),
            "dice_min": round(float(np.min(s)), 4),
            "n": len(s),
        }
    return {
        "dice": round(float(np.mean(scores)), 4) if scores else float("nan"),
        "n": len(scores),
        "per_source": per_source,
    }


def tune_thresholds(segmenter: LungSegmenter, pairs: Sequence[Pair]) -> dict[str, float]:
    """Per convention, the threshold in 0.3..0.7 with the best mean Dice on ``pairs``."""
    out = {}
    for conv in segmenter.conventions:
        group = [p for p in pairs if p.convention == conv]
        if not group:
            out[conv] = 0.5
            continue
        ch = segmenter.channel(conv)
        probs = []
        for start in range(0, len(group), 32):
            chunk = group[start : start + 32]
            fw = segmenter.forward(np.stack([segmenter.prepare(p.image) for p in chunk]))
            probs += [
                heatmap_to_image(f[..., ch], p.image.shape, segmenter.preprocess)
                for f, p in zip(fw, chunk)
            ]
        best = max(
            np.round(np.arange(0.3, 0.71, 0.05), 2),
            key=lambda t: np.mean([dice(postprocess(q, t), p.mask) for q, p in zip(probs, group)]),
        )
        out[conv] = float(best)
    return out


def inference_ms(segmenter: LungSegmenter, gray: np.ndarray, repeats: int = 30) -> float:
    """Median milliseconds of one fresh (memo cleared) :meth:`LungSegmenter.segment` call."""
    segmenter.segment(gray)
    times = []
    for _ in range(repeats):
        segmenter.forget_images()
        t = time.perf_counter()
        segmenter.segment(gray)
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 1)


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


class _ValDice(keras.callbacks.Callback):
    """Adds ``val_dice_img`` (post-processed Dice at image size) to the epoch logs."""

    def __init__(self, pairs: Sequence[Pair], meta: dict[str, Any]):
        super().__init__()
        self.pairs, self.meta, self.start = pairs, meta, time.perf_counter()
        self._segmenter: LungSegmenter | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self._segmenter is None:  # one traced forward pass; it reads the live weights
            self._segmenter = LungSegmenter(self.model, self.meta)
        logs["val_dice_img"] = evaluate(self._segmenter, self.pairs)["dice"] if self.pairs else 0.0
        logger.info(
            f"epoch {epoch + 1}: val Dice (image size) {logs['val_dice_img']:.4f}, "
            f"{time.perf_counter() - self.start:.0f} s elapsed"
        )


def train(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    epochs: int = 40,
    size: int = 128,
    base_filters: int = 16,
    depth: int = 4,
    batch_size: int = 16,
    seed: int = 0,
    command: str | None = None,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Trains the lung U-Net, writes ``lung_segmenter.keras`` and its JSON to ``out_dir`` and
    returns that JSON's content."""
    keras.utils.set_random_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = PreprocessConfig(size=size, geometry="resize", contrast="clahe")
    splits = {s: load_pairs(data_dir, s) for s in SPLITS}
    meta: dict[str, Any] = {
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
    batches = MaskBatches(splits["train"], config, batch_size, seed)
    model = build_unet(size=size, base_filters=base_filters, depth=depth)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(2e-3, len(batches) * epochs, alpha=0.02),
            weight_decay=1e-4,
        ),
        loss=bce_dice_loss,
        metrics=[keras.metrics.MeanMetricWrapper(soft_dice, name="dice")],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_dice_img", mode="max", patience=10, restore_best_weights=True
    )
    start = time.perf_counter()
    fitted = model.fit(
        batches,
        epochs=epochs,
        callbacks=[_ValDice(splits["val"], meta), stop],
        verbose=verbose,
        shuffle=False,
    )
    seconds = time.perf_counter() - start
    hist = {k: [round(float(v), 5) for v in vals] for k, vals in fitted.history.items()}
    best_epoch = int(np.argmax(hist["val_dice_img"])) + 1 if hist.get("val_dice_img") else 0

    # Save a clean, uncompiled copy (no optimizer state: smaller file, no custom loss).
    final = build_unet(size=size, base_filters=base_filters, depth=depth)
    final.set_weights(model.get_weights())
    segmenter = LungSegmenter(final, meta)
    if splits["val"]:
        meta["thresholds"] = tune_thresholds(segmenter, splits["val"])
        segmenter.thresholds = dict(meta["thresholds"])
    scored = [s for s in ("val", "test") if splits[s]]
    meta.update(
        {
            "epochs_requested": epochs,
            "epochs_run": len(hist.get("loss", [])),
            "best_epoch": best_epoch,
            "train_seconds": round(seconds, 1),
            "params": int(final.count_params()),
            "history": hist,
            "dice": {s: evaluate(segmenter, splits[s]) for s in scored},
            "dice_all_default_convention": {
                s: evaluate(segmenter, splits[s], [DEFAULT_CONVENTION] * len(splits[s]))
                for s in scored
            },
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


def _print_results(title: str, res: dict[str, Any]) -> None:
    print(f"{title}: Dice {res['dice']:.4f} (n={res['n']})")
    for src, r in res["per_source"].items():
        print(f"  {src:<20} Dice {r['dice']:.4f}  min {r['dice_min']:.4f}  n={r['n']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``train`` / ``evaluate``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.train.segmenter",
        description="Train the lung segmenter, or score one on a split (Dice per source).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the lung U-Net")
    t.add_argument("--data", required=True, help="folder with manifest.csv (../shared/lungs)")
    t.add_argument("--out", default=str(settings.ROOT / "models"), help="output folder")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--seed", type=int, default=0)
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
    args = parser.parse_args(argv)
    if args.cmd == "evaluate":
        pairs = load_pairs(args.data, args.split)
        convs = [args.convention] * len(pairs) if args.convention else None
        _print_results(args.split, evaluate(load_segmenter(args.model), pairs, convs))
        return 0
    meta = train(
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        command="python -m cxrlib.train.segmenter "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    print(
        f"trained {meta['epochs_run']} epochs in {meta['train_seconds']:.0f} s "
        f"(best {meta['best_epoch']}); thresholds {meta['thresholds']}"
    )
    for split, res in meta["dice"].items():
        _print_results(split, res)
    print(f"inference {meta.get('inference_ms')} ms/image; file {meta['file_bytes']} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

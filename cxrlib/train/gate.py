"""Fit the input gate (:mod:`cxrlib.infer.gate`; docs/input-gate.md) on chest X-rays alone.

python -m cxrlib.train.gate fit --data ../shared/cxr --lungs ../shared/lungs --out models/ood.npz
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from cxrlib.core import settings
from cxrlib.infer import gate_features as gf
from cxrlib.infer.gate import COLOUR_LIMIT, DEFAULT_GATE_PATH, FORMAT_VERSION, OODGate

VAL_QUANTILE = 0.99
"""The lowest validation distance percentile tried as the threshold."""
VAL_TARGET = 0.992
"""Share of validation X-rays the score and the orientation check together must accept."""
ORIENT_QUANTILE = 0.002
"""Share of upright validation X-rays the orientation limit may flag."""


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    scale = np.maximum(s[:k] / np.sqrt(len(x)), 1e-6)
    return mean, vt[:k], scale


def _fit_orientation(sq: Sequence[np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression: upright X-ray vs each of the transforms applied to it."""
    x, y = [], []
    for s in sq:
        for k, name in enumerate(gf.ORIENTATIONS):
            t = s if name == "upright" else gf.transformed(s, name)
            x.append(np.concatenate([gf.thumb(t), gf.hog(t)]))
            y.append(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(C=0.1, max_iter=500, random_state=seed).fit(np.stack(x), y)
    return lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)


def _describe(squares: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thumbnails, gradient layouts and statistics of squares, as float64 rows."""
    thumbs = np.stack([gf.thumb(s) for s in squares]).astype(np.float64)
    hogs = np.stack([gf.hog(s) for s in squares]).astype(np.float64)
    stats = np.stack([gf.stats(s) for s in squares]).astype(np.float64)
    return thumbs, hogs, stats


def _fit_density(
    train: Sequence[np.ndarray], n_thumb: int, n_hog: int, n_orient: int, seed: int
) -> OODGate:
    """The PCA bases, the Gaussian and the orientation model (threshold still 1)."""
    sq_train = [gf.square(g) for g in train]
    thumbs, hogs, stats = _describe(sq_train)
    tm, tb, ts = _pca(thumbs, min(n_thumb, len(train) - 2))
    hm, hb, hs = _pca(hogs, min(n_hog, len(train) - 2))
    pick = np.random.default_rng(seed).permutation(len(sq_train))[:n_orient]
    coef, intercept = _fit_orientation([sq_train[i] for i in sorted(pick)], seed=seed)
    gate = OODGate(
        tm, tb, ts, hm, hb, hs, np.zeros(1), np.zeros((1, 1)), coef, intercept, 1.0, 0.0, {}
    )
    feats = gate.feature_vector(thumbs, hogs, stats)
    cov = np.cov(feats.T)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    gate.feat_mean = feats.mean(axis=0)
    gate.feat_prec = np.linalg.inv(cov)
    return gate


def _set_limits(gate: OODGate, val: Sequence[np.ndarray]) -> dict[str, Any]:
    """Sets the orientation limit and the threshold on ``val``; returns what they gave."""
    v_thumbs, v_hogs, v_stats = _describe([gf.square(g) for g in val])
    dist = gate.distance(gate.feature_vector(v_thumbs, v_hogs, v_stats))
    upright = gate.orientation_probs(v_thumbs, v_hogs)[:, 0]
    gate.orient_min = float(min(np.quantile(upright, ORIENT_QUANTILE, method="lower"), 0.5))
    # The smallest distance percentile (from VAL_QUANTILE up) at which the
    # score and the orientation check together accept VAL_TARGET of val.
    for q in np.append(np.arange(VAL_QUANTILE, 1.0, 0.0005), 1.0):
        thr = float(np.quantile(dist, q))
        ok = (dist <= thr) & (upright >= gate.orient_min)
        if ok.mean() >= VAL_TARGET:
            break
    gate.threshold = thr
    return {
        "val_quantile_used": round(float(q), 4),
        "val_accept_rate": round(float(ok.mean()), 4),
        "val_density_accept_rate": round(float(np.mean(dist <= thr)), 4),
        "val_orientation_flag_rate": round(float(np.mean(upright < gate.orient_min)), 4),
    }


def fit_gate(
    train: Sequence[np.ndarray],
    val: Sequence[np.ndarray],
    n_thumb: int = 32,
    n_hog: int = 16,
    n_orient: int = 2500,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> OODGate:
    """Fits a gate on grey chest X-rays: ``train`` for the features' principal components, the
    Gaussian and (``n_orient`` of them) the orientation model, ``val`` for the limits; ``meta``
    is provenance for the JSON."""
    if len(train) < 8 or len(val) < 4:
        raise ValueError("need at least 8 training and 4 validation images")
    gate = _fit_density(train, n_thumb, n_hog, n_orient, seed)
    gate.meta = dict(meta or {})
    rates = _set_limits(gate, val)
    gate.meta.update(
        n_train=len(train),
        n_val=len(val),
        n_orient=min(n_orient, len(train)),
        n_thumb=int(gate.thumb_basis.shape[0]),
        n_hog=int(gate.hog_basis.shape[0]),
        val_target=VAL_TARGET,
        orient_quantile=ORIENT_QUANTILE,
        threshold_distance=gate.threshold,
        **rates,
    )
    return gate


def save_gate(gate: OODGate, path: str | os.PathLike[str]) -> Path:
    """Writes the arrays to ``path`` (npz) and the rest beside it as JSON, for
    :func:`cxrlib.infer.gate.load_gate`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        k: np.asarray(v, np.float32) for k, v in vars(gate).items() if isinstance(v, np.ndarray)
    }
    arrays["feat_prec"] = np.asarray(gate.feat_prec, np.float64)
    scalars = {"threshold": float(gate.threshold), "orient_min": float(gate.orient_min)}
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays, scalars=np.array(list(scalars.values())))
    meta = dict(gate.meta, **scalars, format_version=FORMAT_VERSION)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def _read_rows(manifest: Path, split: str, column: str) -> list[Path]:
    with open(manifest, newline="") as fh:
        return [manifest.parent / r[column] for r in csv.DictReader(fh) if r["split"] == split]


def _read(paths: Iterable[Path]) -> list[np.ndarray]:
    """The readable images of ``paths``, grey."""
    grays = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths)
    return [g for g in grays if g is not None]


def fit_command(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """``fit``: reads the data, fits, saves; returns the saved metadata."""
    t0 = time.perf_counter()
    cxr = Path(args.data)
    train_paths = _read_rows(cxr / "manifest.csv", "train", "path")
    if 0 < args.n_train < len(train_paths):
        pick = np.random.default_rng(args.seed).choice(
            len(train_paths), args.n_train, replace=False
        )
        train_paths = [train_paths[i] for i in sorted(pick)]
    val_paths = _read_rows(cxr / "manifest.csv", "val", "path")
    fitted_on = {
        "train": [f"{args.data} train split ({len(train_paths)} sampled, seed {args.seed})"],
        "calibration": [f"{args.data} val split (all)"],
    }
    if args.lungs:
        lungs = Path(args.lungs)
        train_paths += _read_rows(lungs / "manifest.csv", "train", "image")
        val_paths += _read_rows(lungs / "manifest.csv", "val", "image")
        fitted_on["train"].append(f"{args.lungs} train split (all)")
        fitted_on["calibration"].append(f"{args.lungs} val split (all)")
    train, val = _read(train_paths), _read(val_paths)
    meta: dict[str, Any] = {
        "kind": "ood_gate",
        "fitted_on": fitted_on,
        "negatives_used": (
            "no non-X-ray images: the score is a one-class fit; the orientation model "
            "learns from the training X-rays turned 90/180/270 degrees and inverted"
        ),
        "seed": args.seed,
        "command": command,
        "fitted_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "features": (
            f"{gf.SQUARE}px square; {gf.THUMB}x{gf.THUMB} standardised thumbnail PCA; "
            f"HOG {gf.HOG_GRID}x{gf.HOG_GRID}x{gf.HOG_BINS} on {gf.HOG_SIZE}px PCA; "
            f"{gf.N_STATS} statistics"
        ),
        "score": "Mahalanobis distance / threshold (<= 1 accepts)",
        "orientation": "logistic regression upright/rot90/rot180/rot270/inverted; "
        "reject when P(upright) < orient_min",
        "colour_limit": COLOUR_LIMIT,
    }
    gate = fit_gate(train, val, n_thumb=args.n_thumb, n_hog=args.n_hog, seed=args.seed, meta=meta)
    gate.meta["fit_seconds"] = round(time.perf_counter() - t0, 1)
    path = save_gate(gate, args.out)
    return json.loads(path.with_suffix(".json").read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fit``; prints the main figures of the fit as JSON."""
    shared = settings.ROOT.parent / "shared"
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.train.gate",
        description="Fit the input gate on chest X-rays.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the gate on chest X-rays")
    f.add_argument("--data", default=str(shared / "cxr"), help="CXR folder with manifest.csv")
    f.add_argument("--lungs", default=str(shared / "lungs"), help="lung set (more X-rays)")
    f.add_argument("--out", default=str(DEFAULT_GATE_PATH), help="the .npz to write")
    f.add_argument("--n-train", type=int, default=5000, help="train images sampled (0 = all)")
    f.add_argument("--n-thumb", type=int, default=32, help="thumbnail principal components")
    f.add_argument("--n-hog", type=int, default=16, help="gradient-layout principal components")
    f.add_argument("--seed", type=int, default=0)
    argv = sys.argv[1:] if argv is None else list(argv)
    out = fit_command(p.parse_args(argv), "python -m cxrlib.train.gate " + shlex.join(argv))
    keys = ("threshold", "orient_min", "val_accept_rate", "n_train", "n_val", "fit_seconds")
    print(json.dumps({k: out[k] for k in keys}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

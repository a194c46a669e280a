"""Compare preprocessing variants with short, identical training runs.

    python -m benchmarks.preprocess_compare --data ../shared/cxr [--size 128] [--epochs 3]

Each variant trains the same small MobileNetV2 (same seed, same batches) for a
short schedule and is scored on the VALIDATION split (never test): macro-F1,
balanced accuracy, and accuracy on the images that were not already squashed
to 224 x 224 (where geometry matters most). Prints one JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from cxrlib.infer.classifier import Classifier
from cxrlib.infer.preprocess import PreprocessConfig, normalize_contrast
from cxrlib.train.classifier import train
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import load_geometry, read_manifest


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/cxr")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--alpha", type=float, default=0.35)
    a = p.parse_args()
    va = read_manifest(f"{a.data}/manifest.csv", split="val")
    native = ~((va["width"] == "224") & (va["height"] == "224")).to_numpy()
    for geometry in ("resize", "pad"):
        for contrast in ("none", "clahe"):
            pre = PreprocessConfig(size=a.size, geometry=geometry, contrast=contrast)
            cfg = TrainConfig(
                alpha=a.alpha,
                epochs=a.epochs,
                steps_per_epoch=a.steps,
                patience=a.epochs,
                preprocess=pre,
            )
            t0 = time.time()
            with tempfile.TemporaryDirectory() as out:
                model, meta = train(f"{a.data}/manifest.csv", out, cfg, verbose=0)
            clf = Classifier(model, meta)
            x = np.stack([normalize_contrast(g, pre) for g in load_geometry(list(va["file"]), pre)])
            pred = clf.probabilities(x).argmax(1)
            y = va["y"].to_numpy()
            bal = float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
            print(
                json.dumps(
                    {
                        "geometry": geometry,
                        "contrast": contrast,
                        "size": a.size,
                        "val_macro_f1": round(max(meta["history"]["val_macro_f1"]), 4),
                        "val_balanced_accuracy": round(bal, 4),
                        "val_acc_native_aspect": round(
                            float(np.mean(pred[native] == y[native])), 4
                        ),
                        "n_native": int(native.sum()),
                        "minutes": round((time.time() - t0) / 60, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()

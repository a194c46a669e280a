"""Training speed of the classifier architectures on this machine: one JSON line each.

Times ``train_on_batch`` (AdamW, batch 32, random pixels, after three warm-up
steps) for each architecture and input size of :func:`cxrlib.train.architectures.build_classifier`.
This is the model's cost alone: a real run also augments every image on the same
cores, so its images per second are lower.

Usage::

    python -m benchmarks.arch_speed
    python -m benchmarks.arch_speed --only mobilenetv2:0.5:160 small:32:160
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from cxrlib.train.architectures import build_classifier

# arch:setting:size, where setting is MobileNetV2's alpha or the small CNN's width.
DEFAULT = (
    "mobilenetv2:0.5:160",
    "mobilenetv2:0.75:160",
    "mobilenetv2:1.0:160",
)


def parse_spec(spec: str) -> dict:
    """``"mobilenetv2:0.5:160"`` -> build_classifier keyword arguments."""
    arch, setting, size = spec.split(":")
    kw: dict = {"arch": arch, "size": int(size)}
    if arch == "mobilenetv2":
        kw["alpha"] = float(setting)
    else:
        kw["width"] = int(setting)
    return kw


def images_per_second(kw: dict, batch: int = 32, steps: int = 12) -> tuple[float, int]:
    model = build_classifier(seed=0, **kw)
    model.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, kw["size"], kw["size"], 1)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, batch)]
    for _ in range(3):
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch * steps / (time.perf_counter() - t0), model.count_params()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=list(DEFAULT), metavar="ARCH:SETTING:SIZE")
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    for spec in a.only:
        ips, params = images_per_second(parse_spec(spec), a.batch)
        print(json.dumps({"spec": spec, "params": params, "img_per_s": round(ips, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Runs ``cxrlib.train.classifier`` on a lent GPU machine, with Keras on the JAX backend.

The device machine has JAX but no TensorFlow, and it cannot see ``../shared``. So this
script has two halves:

``pack`` (here, on the CPU machine) writes what training reads into a folder (default
``.dev/``, ignored by git): the manifest's columns, and the *geometry step* of the
preprocessing (lung crop, resize; :func:`cxrlib.train.data.load_geometry`) of every train and
val image as JPEG bytes, since the uint8 arrays (330 MB) do not fit the 64 MiB that may
travel. JPEG at quality 80 changes a pixel by about 1.5 grey levels on average; a run
of the committed recipe through this path is the control for that.

``run`` (there) unpacks, answers :func:`cxrlib.train.data.load_geometry` from the pack, and
calls :func:`cxrlib.train.cli.main` with the usual arguments once per ``--run``, writing
each model and its JSON to ``--out`` as soon as it is trained. The trained ``.keras``
files load under TensorFlow here; calibrate and evaluate them here as any other model.

    python -m benchmarks.gpu_train pack --manifest ../shared/cxr/manifest.csv
    KERAS_BACKEND=jax python -m benchmarks.gpu_train run --out $OUT \\
        --run "r1=--lung-crop --quiet" --run "r2=--lung-crop --arch resnet --width 64"

``run --parallel`` trains the runs at the same time instead, each in its own process
with its share of the augmenting threads and of the GPU's memory (a small model leaves
most of an H100 idle: three seeds of the committed recipe took 4.6 min together, one
alone 3.5 min), and prints each run's log when all have ended.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np

PACK_NAMES = ("train", "val")
# Applied after the geometry step, so a packed image serves any value of these.
AFTER_GEOMETRY = ("contrast", "clahe_clip", "clahe_grid")


def geometry_settings(preprocess: dict) -> dict:
    """The preprocessing settings that decide what a packed image is."""
    return {k: v for k, v in preprocess.items() if k not in AFTER_GEOMETRY}


def pack(
    manifest: Path,
    out: Path,
    quality: int = 80,
    train_args: Sequence[str] = ("--lung-crop",),
    root: Path | None = None,
    cache: bool = True,
) -> None:
    """Writes the manifest's columns and the train and val images' geometry step
    (for the preprocessing that ``train_args`` choose) into ``out``."""
    import cv2
    import pandas as pd

    from cxrlib.train.cli import config_from_args, parse_args
    from cxrlib.train.data import load_geometry, read_manifest

    cfg = config_from_args(parse_args(["--data", "unused", "--out", "unused", *train_args]))
    out.mkdir(parents=True, exist_ok=True)
    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    raw[["path", "label", "source", "patient_id", "split"]].to_csv(
        out / "manifest.csv", index=False
    )
    df = read_manifest(manifest, root=root)
    for split in PACK_NAMES:
        rows = df[df["split"] == split]
        images = load_geometry(list(rows["file"]), cfg.preprocess, cache=cache)
        bufs = [
            cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].ravel()
            for im in images
        ]
        np.savez(
            out / f"geo_{split}.npz",
            data=np.concatenate(bufs),
            offsets=np.cumsum([0] + [len(b) for b in bufs]),
            paths=rows["path"].to_numpy(str),
        )
        print(f"{split}: {len(rows)} images, {sum(len(b) for b in bufs) / 1e6:.1f} MB")
    settings = geometry_settings(cfg.preprocess.model_dump())
    (out / "geometry.json").write_text(json.dumps(settings, indent=2) + "\n")
    if cfg.preprocess.lung_crop:
        from cxrlib.infer.lungs import default_segmenter

        (out / "segmenter_sha256").write_text(default_segmenter().meta["weights_sha256"])


def unpack(folder: Path) -> dict[str, np.ndarray]:
    """Relative image path -> uint8 geometry image, for every packed image."""
    import cv2

    images: dict[str, np.ndarray] = {}
    for split in PACK_NAMES:
        z = np.load(folder / f"geo_{split}.npz")
        data, off = z["data"], z["offsets"]
        for i, rel in enumerate(z["paths"]):
            images[str(rel)] = cv2.imdecode(data[off[i] : off[i + 1]], cv2.IMREAD_GRAYSCALE)
    return images


def run(folder: Path, out: Path, runs: Sequence[str], workers: int = 12) -> None:
    """Trains once per ``"name=train arguments"`` in ``runs`` on the packed images."""
    import cxrlib.train.classifier as train_mod
    import cxrlib.train.cli as cli_mod

    t0 = time.time()
    images = unpack(folder)
    print(f"unpacked {len(images)} images in {time.time() - t0:.0f} s", flush=True)
    root = folder.resolve()
    packed_settings = json.loads((folder / "geometry.json").read_text())

    def packed_geometry(files, config, cache=True, workers=4, segmenter=None):
        # A run must not record preprocessing its images did not have.
        asked = geometry_settings(config.model_dump())
        if asked != packed_settings:
            raise ValueError(f"the pack holds images for {packed_settings}, not {asked}")
        return np.stack([images[os.path.relpath(Path(f).resolve(), root)] for f in files])

    init = train_mod.AugmentedBatches.__init__

    def more_workers(self, *a, **k):
        # Two augmenting threads keep a 2-core CPU busy; a GPU needs more of them.
        init(self, *a, **k)
        self._workers, self._max_queue_size = workers, 4 * workers

    stubs = {}
    sha_file = folder / "segmenter_sha256"
    if sha_file.exists():
        # train() records the lung segmenter's hash; the segmenter needs TensorFlow.
        meta = {"weights_sha256": sha_file.read_text().strip()}
        lungs = types.ModuleType("cxrlib.infer.lungs")
        lungs.default_segmenter = lambda: types.SimpleNamespace(meta=meta)
        stubs["cxrlib.infer.lungs"] = lungs
    with (
        mock.patch.object(train_mod, "load_geometry", packed_geometry),
        mock.patch.object(train_mod.AugmentedBatches, "__init__", more_workers),
        mock.patch.dict(sys.modules, stubs),
    ):
        for spec in runs:
            name, _, args = spec.partition("=")
            t = time.time()
            print(f"== {name}: {args}", flush=True)
            argv = ["--data", str(folder), "--out", str(out), "--name", name]
            cli_mod.main([*argv, *shlex.split(args)])
            print(f"== {name} done in {(time.time() - t) / 60:.1f} min", flush=True)


def parallel_commands(
    folder: Path, out: Path, runs: Sequence[str], workers: int
) -> list[tuple[list[str], dict[str, str]]]:
    """One ``run`` command line and its environment per run, sharing the CPU's
    augmenting threads and the GPU's memory between them."""
    share = max(1, workers // len(runs))
    env = {
        # JAX takes 75% of the GPU's memory per process unless told otherwise.
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 / len(runs):.2f}",
        "PYTHONUNBUFFERED": "1",
    }
    return [
        (
            [sys.executable, "-m", "benchmarks.gpu_train", "run", "--pack", str(folder)]
            + ["--out", str(out)]
            + ["--workers", str(share), "--run", spec],
            env,
        )
        for spec in runs
    ]


def run_parallel(folder: Path, out: Path, runs: Sequence[str], workers: int = 12) -> int:
    """Starts every run at once (:func:`parallel_commands`), waits for all, then prints
    their logs in order. Returns the number of runs that failed."""
    with tempfile.TemporaryDirectory() as tmp:
        logs = [Path(tmp) / f"{i}.log" for i in range(len(runs))]
        procs = []
        for (cmd, env), path in zip(parallel_commands(folder, out, runs, workers), logs):
            with path.open("wb") as log:  # the child keeps its own handle
                procs.append(
                    subprocess.Popen(
                        cmd,
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=Path(__file__).resolve().parent.parent,  # where -m finds benchmarks
                    )
                )
        failed = sum(proc.wait() != 0 for proc in procs)
        for path in logs:
            print(path.read_text(errors="replace"), flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("--manifest", type=Path, default=Path("../shared/cxr/manifest.csv"))
    pk.add_argument("--to", type=Path, default=Path(".dev"))
    pk.add_argument("--quality", type=int, default=80)
    pk.add_argument("train_args", nargs="*", help="preprocessing switches (default --lung-crop)")
    rn = sub.add_parser("run")
    rn.add_argument("--pack", type=Path, default=Path(".dev"))
    rn.add_argument("--out", type=Path, required=True)
    rn.add_argument("--run", action="append", required=True, help='"name=train arguments"')
    rn.add_argument("--workers", type=int, default=12)
    rn.add_argument("--parallel", action="store_true", help="train the runs at the same time")
    a = p.parse_args(argv)
    if a.cmd == "pack":
        pack(a.manifest, a.to, a.quality, a.train_args or ["--lung-crop"])
    elif a.parallel:
        return int(run_parallel(a.pack, a.out, a.run, a.workers) > 0)
    else:
        run(a.pack, a.out, a.run, a.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How well the OOD gate separates chest X-rays from other pictures: ONE JSON line.

Every image goes the app's way: encoded bytes -> :func:`cxrlib.io.decode.decode_image`
(pixels + ``meta["colourfulness"]``) -> :meth:`OODGate.assess`.

* ``cxr_test_accept_rate``: share of ALL ``shared/cxr`` test-split images accepted.
* ``lungs_test_accept_rate``: the same for the ``shared/lungs`` test split.
* ``negatives_reject_rate``: share of a locally made set of non-X-rays rejected
  (:func:`benchmarks.negatives.make_negatives`: bundled scikit-image / scikit-learn pictures
  and crops of them, faces, text pages, UI-like screenshots, shapes, noise,
  gradients, flat images, checkerboards, tiles; colour pictures are encoded as
  colour PNGs). ``negatives_reject_rate_gray_only``: the same images in grey
  without a colourfulness value, so the colour rule cannot help. Images the
  decoder refuses (under 128 px a side; ``negatives_refused_by_decoder``) are
  passed to the gate directly, so every rate measures the gate itself.
* ``rot90/rot180/rot270/inverted_reject_rate`` (and ``..._reason_rate``, the
  share rejected with the matching reason) on a sample of test X-rays turned or
  inverted; ``mirrored_accept_rate`` for left-right flips.
* ``ms_per_assess_median`` / ``_p95``: time of one ``assess`` call on the decoded
  test X-rays (warm, this machine).

Usage::

    .venv/bin/python -m benchmarks.ood_eval [--gate models/ood.npz] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.negatives import make_negatives
from cxrlib.core.errors import ImageError
from cxrlib.infer import gate as ood
from cxrlib.infer import gate_features as gf
from cxrlib.io.decode import decode_image


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _rows(manifest: Path, split: str, column: str) -> list[Path]:
    with open(manifest, newline="") as fh:
        return [manifest.parent / r[column] for r in csv.DictReader(fh) if r["split"] == split]


def orientation_check(gate: ood.OODGate, grays: list[np.ndarray]) -> dict[str, Any]:
    """Rejection and right-reason rates of turned/inverted X-rays; acceptance of mirrored ones."""
    out: dict[str, Any] = {"orientation_n": len(grays)}
    mirrored = [gate.assess(np.ascontiguousarray(g[:, ::-1])).is_cxr for g in grays]
    out["mirrored_accept_rate"] = round(float(np.mean(mirrored)), 4)
    for t in gf.TRANSFORMS:
        verdicts = [gate.assess(gf.transformed(g, t)) for g in grays]
        want = "inverted" if t == "inverted" else "rotated"
        out[f"{t}_reject_rate"] = round(float(np.mean([not v.is_cxr for v in verdicts])), 4)
        out[f"{t}_reason_rate"] = round(float(np.mean([v.kind == want for v in verdicts])), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gate", type=Path, default=ood.DEFAULT_GATE_PATH)
    shared = Path(os.environ.get("CXR_SHARED", ROOT.parent / "shared"))
    ap.add_argument("--data", type=Path, default=shared / "cxr")
    ap.add_argument("--lungs", type=Path, default=shared / "lungs")
    ap.add_argument("--seed", type=int, default=1, help="seed of the made negatives")
    args = ap.parse_args()

    gate = ood.load_gate(args.gate)
    out: dict[str, object] = {"gate": str(args.gate)}
    times: list[float] = []
    rejected_examples: list[str] = []

    def run(data: bytes, name: str, timed: bool = False) -> ood.OODResult:
        d = decode_image(data, name)
        t0 = time.perf_counter()
        r = gate.assess(d.pixels, d.meta.get("colourfulness"))
        if timed:
            times.append((time.perf_counter() - t0) * 1000)
        return r

    cxr_paths = _rows(args.data / "manifest.csv", "test", "path")
    cxr = [run(p.read_bytes(), p.name, timed=True) for p in cxr_paths]
    out["cxr_test_accept_rate"] = round(float(np.mean([r.is_cxr for r in cxr])), 4)
    out["cxr_test_n"] = len(cxr)
    rejected_examples = [
        f"{p.relative_to(args.data)} ({r.kind}, {r.score:.2f})"
        for p, r in zip(cxr_paths, cxr)
        if not r.is_cxr
    ]
    lung_paths = _rows(args.lungs / "manifest.csv", "test", "image")
    lungs = [run(p.read_bytes(), p.name) for p in lung_paths]
    out["lungs_test_accept_rate"] = round(float(np.mean([r.is_cxr for r in lungs])), 4)
    out["lungs_test_n"] = len(lungs)

    negs = make_negatives(args.seed)
    verdicts, refused = [], 0
    for n, im, chroma in negs:
        try:
            verdicts.append(run(_png(im), f"{n}.png"))
        except ImageError:
            # The decoder refuses it (e.g. under 128 px a side): judge the gate alone.
            refused += 1
            verdicts.append(gate.assess(im if im.ndim == 2 else _gray(im), chroma))
    out["negatives_reject_rate"] = round(float(np.mean([not r.is_cxr for r in verdicts])), 4)
    out["negatives_n"] = len(negs)
    out["negatives_refused_by_decoder"] = refused
    gray = [gate.assess(im if im.ndim == 2 else _gray(im)) for _, im, _ in negs]
    out["negatives_reject_rate_gray_only"] = round(float(np.mean([not r.is_cxr for r in gray])), 4)
    out["negatives_by_reason"] = dict(Counter(r.kind for r in verdicts))
    out["negatives_accepted"] = [n for (n, _, _), r in zip(negs, verdicts) if r.is_cxr]

    sample = [decode_image(p.read_bytes(), p.name).pixels for p in cxr_paths[::7]]
    out.update(orientation_check(gate, sample))

    out["ms_per_assess_median"] = round(float(np.median(times)), 2)
    out["ms_per_assess_p95"] = round(float(np.quantile(times, 0.95)), 2)
    out["cxr_test_rejected"] = rejected_examples
    print(json.dumps(out))
    return 0


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


if __name__ == "__main__":
    raise SystemExit(main())

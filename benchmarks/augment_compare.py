"""Each augmentation (and contrast normalisation) on its own, judged away from home.

    python -m benchmarks.augment_compare --data ../shared/cxr [--hold-out radiography]
        [--variants all,none,...] [--seeds 0] [--epochs 3 --steps 120]
        [--out FILE.jsonl]

Every variant trains the committed recipe (lung crop, MobileNetV2 alpha 0.5 at
160 px, the committed sampling) on the same short schedule as the
leave-one-source-out audit, with the ``--hold-out`` source(s) left out, and
changes one thing: which augmentations are on, or the contrast normalisation. It is
scored on:

- the held-out source(s), all splits: what carries to a hospital never seen;
- the validation split of the other sources (never test): balanced accuracy,
  and balanced accuracy and COVID AUC with the lungs erased (the audit's
  ablation, :func:`cxrlib.evaluate.audit.ablation`), i.e. how much it reads outside the lungs.

One JSON line per (variant, seed), appended to ``--out``; a (variant, seed)
already there is skipped, so an interrupted run resumes. The last line printed
is a JSON summary. Slow: each variant trains (about 4-5 min on 2 cores).
``--table`` trains nothing and prints ``--out`` as a Markdown table (a figure
per seed, "/"-separated, for variants run with several seeds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cxrlib.evaluate.audit import ablation
from cxrlib.evaluate.metrics import diagnosed_probabilities, held_out_scores
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.lungs import default_segmenter
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.augment import AugmentConfig
from cxrlib.train.classifier import train
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import load_gray, read_manifest

_OFF = dict.fromkeys(AugmentConfig.model_fields, 0.0)
_GEOMETRIC = {k: getattr(AugmentConfig(), k) for k in ("rotate_deg", "scale", "shift")}


def _only(**on: float) -> dict[str, float]:
    """Geometric jitter plus the named augmentations at their committed settings."""
    d = AugmentConfig()
    return {**_OFF, **_GEOMETRIC, **{k: getattr(d, k) if v is True else v for k, v in on.items()}}


VARIANTS: dict[str, tuple[dict[str, float], str]] = {
    # name: (augmentation settings, contrast normalisation)
    "all": ({}, "clahe"),
    "none": (_OFF, "clahe"),
    "geometric": (_only(), "clahe"),
    "geo+gamma": (_only(gamma=True, contrast=True), "clahe"),
    "geo+blur": (_only(p_blur=True), "clahe"),
    "geo+noise": (_only(p_noise=True), "clahe"),
    "geo+downscale": (_only(p_downscale=True), "clahe"),
    "geo+jpeg": (_only(p_jpeg=True), "clahe"),
    "geo+text": (_only(p_text=True), "clahe"),
    # The two best partial recipes together: no blur, noise, downscaling or JPEG.
    "light": (_only(gamma=True, contrast=True, p_text=True), "clahe"),
    "all:no-contrast": ({}, "none"),
    "all:equalize": ({}, "equalize"),
}


def _cell(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values) if values else "-"


def table(rows: list[dict]) -> str:
    """A Markdown table of benchmark rows: one line per (held-out sources, variant)."""
    head = (
        "| held out | variant | seeds | held-out bal. acc. | held-out per-class acc. | "
        "held-out AUC (one-vs-rest) | val bal. acc. | val lungs erased | "
        "val lungs-erased COVID AUC | val lungs only |\n|---|---|---|---:|---|---|---:|---:|---:|---:|"
    )
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault(("+".join(r["held_out"]), r["variant"]), []).append(r)
    lines = [head]
    for (held, variant), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        first = rs[0]["held_out_scores"]
        per_class = ", ".join(
            f"{c} " + "/".join(f"{r['held_out_scores']['per_class_accuracy'][c]:.2f}" for r in rs)
            for c in first["per_class_accuracy"]
        )
        auc = ", ".join(
            f"{c} " + "/".join(f"{r['held_out_scores']['auc'][c]:.2f}" for r in rs)
            for c, v in first["auc"].items()
            if v is not None
        )
        cols = [
            held,
            variant,
            ",".join(str(r["seed"]) for r in rs),
            _cell([r["held_out_scores"]["balanced_accuracy"] for r in rs]),
            per_class,
            auc,
            _cell([r["val_balanced_accuracy"] for r in rs]),
            _cell([r["val_lungs_erased_balanced_accuracy"] for r in rs]),
            _cell([r["val_lungs_erased_covid_auc"] for r in rs]),
            _cell([r["val_lungs_only_balanced_accuracy"] for r in rs]),
        ]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/cxr")
    p.add_argument("--hold-out", action="append", default=None, help="source(s) left out")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=120, help="batches of 32 per epoch")
    p.add_argument("--out", default="artifacts/augment_compare.jsonl")
    p.add_argument("--table", action="store_true", help="print --out as a table; train nothing")
    a = p.parse_args()
    if a.table:
        print(table([json.loads(line) for line in Path(a.out).read_text().splitlines()]))
        return
    held_out = tuple(a.hold_out or ["radiography"])
    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)}; choose from {list(VARIANTS)}")
    manifest = Path(a.data) / "manifest.csv"
    df = read_manifest(manifest, root=a.data)
    held = df[df["source"].isin(held_out)]
    val = df[(df["split"] == "val") & ~df["source"].isin(held_out)]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            if r["held_out"] == list(held_out):
                done.add((r["variant"], r["seed"], r["epochs"], r["steps"]))

    seg = default_segmenter()
    val_grays = [load_gray(f) for f in val["file"]]
    # The audit's convention: erase the whole lung, behind the heart and diaphragm too.
    val_masks = seg.segment_many(val_grays, ["full"] * len(val_grays))
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        for name in names:
            label = name
            if (label, seed, a.epochs, a.steps) in done:
                print(f"{label} seed {seed}: already in {out}, skipped")
                continue
            settings, contrast = VARIANTS[name]
            cfg = TrainConfig(
                epochs=a.epochs,
                steps_per_epoch=a.steps,
                patience=a.epochs,
                seed=seed,
                exclude_sources=held_out,
                preprocess=PreprocessConfig(lung_crop=True, contrast=contrast),
                augment=AugmentConfig(**settings),
            )
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                model, meta = train(manifest, tmp, cfg, root=a.data, verbose=0)
                clf = Classifier(model, meta, segmenter=seg)
                train_s = time.time() - t0
                cls = list(clf.class_names)
                held_probs = diagnosed_probabilities(clf, list(held["file"]))
                abl = ablation(clf, val_grays, val["y"].to_numpy(), val_masks)
            row = {
                "variant": label,
                "seed": seed,
                "epochs": a.epochs,
                "steps": a.steps,
                "held_out": list(held_out),
                "contrast": contrast,
                "augment": cfg.augment.model_dump(),
                "held_out_scores": held_out_scores(held["y"].to_numpy(), held_probs, cls),
                "val_balanced_accuracy": abl["original"]["balanced_accuracy"],
                "val_lungs_erased_balanced_accuracy": abl["lungs_erased"]["balanced_accuracy"],
                "val_lungs_erased_covid_auc": abl["lungs_erased"]["auc"].get("covid"),
                "val_lungs_only_balanced_accuracy": abl["lungs_only"]["balanced_accuracy"],
                "val_best_macro_f1": max(meta["history"]["val_macro_f1"]),
                "train_seconds": round(train_s, 1),
                "seconds": round(time.time() - t0, 1),
            }
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            h = row["held_out_scores"]
            print(
                f"{label:<16} seed {seed}: held-out bal. acc. {h['balanced_accuracy']:.3f} "
                f"{h['per_class_accuracy']} | val {row['val_balanced_accuracy']:.3f}, lungs erased "
                f"{row['val_lungs_erased_balanced_accuracy']:.3f} | {row['seconds']:.0f} s",
                flush=True,
            )
            rows.append(row)
    print(json.dumps({"held_out": list(held_out), "runs": len(rows), "out": str(out)}))


if __name__ == "__main__":
    main()

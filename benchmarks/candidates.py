"""Compares trained candidates on the validation split, from the files ``make candidate`` writes.

    python -m benchmarks.candidates [--reference DIR] NAME=DIR[,DIR...] [NAME=DIR[,DIR...] ...]

Each NAME is a recipe and its DIRs are its seeds, each holding ``val.json`` (``evaluate metrics
--split val``) and, where the audit ran, ``audit_val.json``. One markdown row per run, then per
recipe its seeds' mean and its seeds' probabilities averaged (scored again, as one model's would
be). The issue-32 figures: balanced accuracy, COVID sensitivity, adult pneumonias found and adult
normals cleared, ECE, how many adult pneumonias are called COVID, the AUC of COVID against an
adult pneumonia, and the lungs-erased and source-probe checks. ``--reference``: also the COVID
sensitivity each run and the reference reach at the same rate of adult pneumonias called COVID,
so that a model which calls every adult opacity COVID does not look the better COVID finder.
Reads, does not compute predictions. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrlib.core.metrics import ADULT_SOURCES
from cxrlib.train.scoring import compute_metrics

CLASSES = ("covid", "normal", "pneumonia")


def load_predictions(run: Path) -> dict[str, np.ndarray]:
    """A run's validation predictions as arrays: probs (N, 3), label indices, sources, paths."""
    rows = json.loads((run / "val.json").read_text())["predictions"]
    return {
        "probs": np.array([r["probs"] for r in rows], float),
        "y": np.array([CLASSES.index(r["label"]) for r in rows]),
        "source": np.array([r["source"] for r in rows]),
        "path": np.array([r["path"] for r in rows]),
    }


def _covid_and_adult_pneumonia(pred: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """p(COVID) of the COVID images and of the adult pneumonias."""
    adult_pneumonia = np.isin(pred["source"], ADULT_SOURCES) & (pred["y"] == 2)
    return pred["probs"][pred["y"] == 0, 0], pred["probs"][adult_pneumonia, 0]


def adult_pneumonias_called_covid(pred: dict[str, np.ndarray]) -> float:
    """Share of the adult pneumonias whose most likely class is COVID."""
    adult_pneumonia = np.isin(pred["source"], ADULT_SOURCES) & (pred["y"] == 2)
    return float(np.mean(pred["probs"][adult_pneumonia].argmax(1) == 0))


def covid_found_at_rate(pred: dict[str, np.ndarray], rate: float) -> float:
    """COVID sensitivity when p(COVID) is thresholded where ``rate`` of the adult pneumonias
    lie above it."""
    covid, adult = _covid_and_adult_pneumonia(pred)
    return float(np.mean(covid > np.quantile(adult, 1.0 - rate)))


def covid_against_adult_auc(pred: dict[str, np.ndarray]) -> float:
    """AUC of p(COVID) separating the COVID images from the adult pneumonias."""
    covid, adult = _covid_and_adult_pneumonia(pred)
    return float(
        roc_auc_score(np.r_[np.ones(len(covid)), np.zeros(len(adult))], np.r_[covid, adult])
    )


def figures(pred: dict[str, np.ndarray], audit: dict[str, Any] | None) -> dict[str, Any]:
    """The row of one run (or of averaged probabilities, without an audit)."""
    m = compute_metrics(pred["y"], pred["probs"], CLASSES, pred["source"], n_boot=0, curves=False)
    out = {
        "balanced_accuracy": m["balanced_accuracy"],
        "covid": m["per_class"]["covid"]["sensitivity"],
        "adult_pneumonia": m["adults"]["pneumonia"]["sensitivity"],
        "adult_normal": m["adults"]["normal"]["specificity"],
        "ece": m["ece"],
        "adult_pneumonia_called_covid": adult_pneumonias_called_covid(pred),
        "covid_vs_adult_auc": covid_against_adult_auc(pred),
    }
    if audit:
        erased = audit["ablation"]["lungs_erased"]
        out["lungs_erased"] = erased["balanced_accuracy"]
        out["lungs_erased_covid_auc"] = erased["auc"]["covid"]
        probe = audit.get("shortcuts", {}).get("source_probe", {})
        out["probe"] = tuple(probe[c]["balanced_accuracy"] for c in CLASSES) if probe else None
    return out


def averaged(preds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The seeds' probabilities averaged per image (the same images in the same order)."""
    for p in preds[1:]:
        if not np.array_equal(p["path"], preds[0]["path"]):
            raise ValueError("the runs were not scored on the same images")
    return {**preds[0], "probs": np.mean([p["probs"] for p in preds], axis=0)}


COLUMNS = (
    ("balanced_accuracy", "balanced"),
    ("covid", "COVID"),
    ("adult_pneumonia", "adult pneumonia found"),
    ("adult_normal", "adult normal cleared"),
    ("ece", "ECE"),
    ("adult_pneumonia_called_covid", "adult pneumonia called COVID"),
    ("covid_vs_adult_auc", "AUC COVID vs adult pneumonia"),
    ("covid_at_rate", "COVID found at that rate / reference"),
    ("lungs_erased", "lungs erased"),
    ("lungs_erased_covid_auc", "lungs erased COVID AUC"),
    ("probe", "source probe covid / normal / pneumonia"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return " / ".join(f"{v:.3f}" for v in value)
    return f"{value:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="+", metavar="NAME=DIR[,DIR...]")
    ap.add_argument("--reference", type=Path, help="a run to compare COVID with at equal rates")
    args = ap.parse_args(argv)
    reference = load_predictions(args.reference) if args.reference else None

    def row(pred: dict[str, np.ndarray], audit: dict[str, Any] | None) -> dict[str, Any]:
        f = figures(pred, audit)
        if reference is not None:
            rate = f["adult_pneumonia_called_covid"]
            f["covid_at_rate"] = (
                covid_found_at_rate(pred, rate),
                covid_found_at_rate(reference, rate),
            )
        return f

    print("| run | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    results: dict[str, Any] = {}
    for spec in args.recipes:
        name, _, dirs = spec.partition("=")
        runs = [Path(d) for d in dirs.split(",")]
        preds = [load_predictions(r) for r in runs]
        rows = {}
        for run, pred in zip(runs, preds, strict=True):
            audit_file = run / "audit_val.json"
            audit = json.loads(audit_file.read_text()) if audit_file.exists() else None
            rows[run.name] = row(pred, audit)
        if len(runs) > 1:
            rows["mean of the seeds"] = {
                key: float(np.mean([r[key] for r in rows.values()])) for key, _ in COLUMNS[:7]
            }
            rows["seeds averaged"] = row(averaged(preds), None)
        for label, f in rows.items():
            cells = " | ".join(_cell(f.get(key)) for key, _ in COLUMNS)
            print(f"| {name}: {label} | {cells} |")
        results[name] = rows
    print(json.dumps(results, default=list))


if __name__ == "__main__":
    main()

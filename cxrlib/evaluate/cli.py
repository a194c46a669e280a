"""Measure a classifier honestly on any manifest.

    python -m cxrlib.evaluate --manifest ../shared/cxr/manifest.csv --split test --json out.json

The manifest needs ``path,label`` (optionally ``source``, ``split``); labels
may be any subset of the model's classes. Prints a table and writes JSON with
accuracy, balanced accuracy, macro-F1, per-class sensitivity / specificity /
PPV / NPV / F1 / one-vs-rest AUC, the confusion matrix, calibration (ECE,
Brier, reliability bins), per-source accuracy, bootstrap 95% intervals, ROC
and PR curve points and per-image probabilities.

``--save-metrics`` evaluates the val and test splits of the shared manifest
and writes ``models/<name>.metrics.json`` for the app's Metrics page.

``--methods`` compares every heatmap method on a stratified sample (``--methods-images``)
and runs the model-randomisation check (:func:`cxrlib.evaluate.audit.compare_explanations`; with
``--record``, stored as ``explain_methods``).

``--external ../shared/lungs`` scores the lung set's collections that no training
image came from (:mod:`cxrlib.evaluate.external`; with ``--record``, stored as ``external``).

``--record-alternative NAME`` (with ``--split test --ablate``) stores a model that
was *not* committed, its internal score beside its lungs-erased score, in the
committed model's metrics file, so the Trust page can say why it was not chosen.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from cxrlib.train.data import load_gray, lung_inputs, read_manifest, stratified_sample
from cxrlib.infer.classifier import DEFAULT_MODEL_PATH, Classifier, load_classifier
from cxrlib.infer.views import DEFAULT_VIEWS, View

if TYPE_CHECKING:
    import pandas as pd


def _safe_div(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def _round(x: SupportsFloat | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


def expected_calibration_error(
    probs: np.ndarray, y: np.ndarray, n_bins: int = 15
) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins of the top-class probability."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece, bins = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            gap = abs(conf[m].mean() - correct[m].mean())
            ece += m.mean() * gap
            bins.append(
                {
                    "lo": round(float(lo), 4),
                    "hi": round(float(hi), 4),
                    "count": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 4),
                    "accuracy": round(float(correct[m].mean()), 4),
                }
            )
    return float(ece), bins


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, classes: Sequence[int]) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def _bootstrap_ci(
    y: np.ndarray, pred: np.ndarray, classes: Sequence[int], n_boot: int, seed: int
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    n = len(y)
    accs, bals = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        yb, pb = y[i], pred[i]
        accs[b] = np.mean(yb == pb)
        present = [c for c in classes if np.any(yb == c)]
        bals[b] = _balanced_accuracy(yb, pb, present)
    return {
        "accuracy": [
            round(float(np.percentile(accs, 2.5)), 4),
            round(float(np.percentile(accs, 97.5)), 4),
        ],
        "balanced_accuracy": [
            round(float(np.percentile(bals, 2.5)), 4),
            round(float(np.percentile(bals, 97.5)), 4),
        ],
    }


def _thin(xs: np.ndarray, ys: np.ndarray, max_points: int = 200) -> tuple[list[float], list[float]]:
    if len(xs) > max_points:
        idx = np.unique(np.linspace(0, len(xs) - 1, max_points).round().astype(int))
        xs, ys = xs[idx], ys[idx]
    return [round(float(v), 4) for v in xs], [round(float(v), 4) for v in ys]


def compute_metrics(
    y: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    sources: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    curves: bool = True,
) -> dict[str, Any]:
    """All the numbers for one set of predictions.

    Args:
        y: True class indices (N,).
        probs: Predicted probabilities (N, n_classes), rows summing to 1.
        class_names: Names of the model's classes, in output order.
        sources: Optional source name per image, for ``per_source``.
        n_boot: Bootstrap resamples for ``ci95`` (0 to skip).
        seed: Bootstrap seed.
        curves: Include ROC / PR points per class.

    Returns:
        A JSON-ready dict (see the module docstring). Metrics that are
        undefined (e.g. AUC of a class with no positives) are ``None``.
    """
    y = np.asarray(y, int)
    probs = np.asarray(probs, float)
    pred = probs.argmax(1)
    k = len(class_names)
    present = [c for c in range(k) if np.any(y == c)]
    cm = np.zeros((k, k), int)
    np.add.at(cm, (y, pred), 1)
    n = len(y)
    per_class: dict[str, Any] = {}
    f1s = []
    curve_pts: dict[str, Any] = {}
    for c in range(k):
        tp = cm[c, c]
        fn = cm[c].sum() - tp
        fp = cm[:, c].sum() - tp
        tn = n - tp - fn - fp
        f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
        if c not in present:
            continue
        f1s.append(f1 or 0.0)
        pos = y == c
        auc = float(roc_auc_score(pos, probs[:, c])) if 0 < pos.sum() < n else None
        per_class[class_names[c]] = {
            "support": int(pos.sum()),
            "sensitivity": _round(_safe_div(tp, tp + fn)),
            "specificity": _round(_safe_div(tn, tn + fp)),
            "ppv": _round(_safe_div(tp, tp + fp)),
            "npv": _round(_safe_div(tn, tn + fn)),
            "f1": _round(f1),
            "auc": _round(auc),
        }
        if curves and auc is not None:
            fpr, tpr, _ = roc_curve(pos, probs[:, c])
            prec, rec, _ = precision_recall_curve(pos, probs[:, c])
            fx, ty = _thin(fpr, tpr)
            rx, py = _thin(rec[::-1], prec[::-1])
            curve_pts[class_names[c]] = {
                "roc": {"fpr": fx, "tpr": ty},
                "pr": {"recall": rx, "precision": py},
            }
    ece, bins = expected_calibration_error(probs, y)
    onehot = np.eye(k)[y]
    out: dict[str, Any] = {
        "n": int(n),
        "accuracy": _round(np.mean(pred == y)),
        "balanced_accuracy": _round(_balanced_accuracy(y, pred, present)),
        "macro_f1": _round(np.mean(f1s)),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(class_names), "matrix": cm.tolist()},
        "ece": _round(ece),
        "brier": _round(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
        "reliability": bins,
    }
    if sources is not None:
        src = np.asarray(sources)
        out["per_source"] = {
            s: {
                "n": int(np.sum(src == s)),
                "accuracy": _round(np.mean(pred[src == s] == y[src == s])),
                "per_class_accuracy": {
                    class_names[c]: _round(np.mean(pred[(src == s) & (y == c)] == c))
                    for c in present
                    if np.any((src == s) & (y == c))
                },
            }
            for s in sorted(set(src.tolist()))
        }
    if n_boot:
        out["ci95"] = _bootstrap_ci(y, pred, present, n_boot, seed)
    if curves:
        out["curves"] = curve_pts
    return out


def file_view_logits(
    classifier: Classifier,
    files: Sequence[str],
    views: Sequence[View] = (),
    batch_size: int = 64,
) -> np.ndarray:
    """Logits ``(N, 1 + len(views), K)`` of image files and their test-time views.

    Files are read and prepared in batches; a lung-crop (or lung-mask) model's
    boxes and masks come from the per-file cache (:func:`cxrlib.train.data.lung_inputs`).
    """
    pre = classifier.preprocess
    segmenter = classifier.lung_segmenter() if pre.uses_lungs else None
    crops, masks = lung_inputs(files, pre, segmenter)
    out = []
    for i in range(0, len(files), batch_size):
        grays = [load_gray(f) for f in files[i : i + batch_size]]
        part = slice(i, i + batch_size)
        out.append(classifier.view_logits(grays, views, batch_size, crops[part], masks[part]))
    k = len(classifier.class_names)
    return np.concatenate(out) if out else np.zeros((0, 1 + len(views), k), np.float32)


def predict_files(
    classifier: Classifier,
    files: Sequence[str],
    batch_size: int = 64,
    views: Sequence[View] | None = None,
) -> np.ndarray:
    """Calibrated probabilities for image files (see :func:`file_view_logits`).

    ``views``: ``None`` gives the model's own prediction (the app's:
    :meth:`cxrlib.infer.classifier.Classifier.predict`); ``()`` scores the original image
    only; other views (:class:`cxrlib.infer.views.View`) average the logits over the
    original and them (:func:`cxrlib.infer.classifier.average_views`).
    """
    used = classifier.resolve_views(views)
    z = file_view_logits(classifier, files, used, batch_size)
    return classifier.combine_views(z, average=bool(used))[0]


def evaluate_manifest(
    classifier: Classifier,
    manifest: str | Path,
    root: str | Path | None = None,
    split: str | None = None,
    n_boot: int = 1000,
    with_predictions: bool = True,
    views: Sequence[View] | None = None,
) -> dict[str, Any]:
    """Evaluates ``classifier`` on a manifest; returns :func:`compute_metrics` plus timings.

    ``views``: as :func:`predict_files` (default: the model's own prediction). When
    the probabilities are averaged over views, their names are recorded under ``"views"``.
    """
    t0 = time.time()
    df = read_manifest(manifest, root=root, split=split, class_names=classifier.class_names)
    probs = predict_files(classifier, list(df["file"]), views=views)
    res = compute_metrics(
        df["y"].to_numpy(), probs, classifier.class_names, sources=list(df["source"]), n_boot=n_boot
    )
    if with_predictions:
        res["predictions"] = [
            {"path": p, "label": lab, "source": s, "probs": [round(float(v), 5) for v in pr]}
            for p, lab, s, pr in zip(df["path"], df["label"], df["source"], probs)
        ]
    used = classifier.resolve_views(views)
    if used:
        res["views"] = ["original"] + [v.name for v in used]
    res["seconds"] = round(time.time() - t0, 2)
    return res


def format_table(res: dict[str, Any], title: str = "") -> str:
    """A readable summary of :func:`compute_metrics` output."""
    lines = [title] if title else []
    ci = res.get("ci95", {})

    def with_ci(key: str) -> str:
        v = res[key]
        return f"{v:.4f}" + (f"  [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if key in ci else "")

    lines += [
        f"n = {res['n']}   accuracy {with_ci('accuracy')}   balanced accuracy {with_ci('balanced_accuracy')}",
        f"macro-F1 {res['macro_f1']:.4f}   ECE {res['ece']:.4f}   Brier {res['brier']:.4f}",
        "",
    ]
    hdr = (
        f"{'class':<11}{'support':>8}{'sens':>8}{'spec':>8}{'PPV':>8}{'NPV':>8}{'F1':>8}{'AUC':>8}"
    )
    lines.append(hdr)

    def fmt(v: float | None) -> str:
        return f"{v:>8.4f}" if v is not None else f"{'-':>8}"

    for name, m in res["per_class"].items():
        lines.append(
            f"{name:<11}{m['support']:>8}"
            + "".join(fmt(m[k]) for k in ("sensitivity", "specificity", "ppv", "npv", "f1", "auc"))
        )
    cm = res["confusion_matrix"]
    lines += [
        "",
        "confusion matrix (rows = true, columns = predicted)",
        " " * 11 + "".join(f"{lab:>11}" for lab in cm["labels"]),
    ]
    for lab, row in zip(cm["labels"], cm["matrix"]):
        lines.append(f"{lab:<11}" + "".join(f"{v:>11}" for v in row))
    if "per_source" in res:
        lines += ["", "per source"]
        for s, m in res["per_source"].items():
            pcs = ", ".join(f"{c} {v:.3f}" for c, v in m["per_class_accuracy"].items())
            lines.append(f"  {s:<13} n={m['n']:<6} accuracy {m['accuracy']:.4f}   ({pcs})")
    if "seconds" in res:
        lines.append(f"\n{res['seconds']:.1f} s")
    return "\n".join(lines)


def format_external(section: dict[str, Any], class_names: Sequence[str]) -> str:
    """A readable summary of :func:`cxrlib.evaluate.external.external_check` output."""
    lines = []
    for source, rec in section["collections"].items():
        dup = rec["duplicates"]
        lines.append(
            f"== {source} ({rec['name']}, all {rec['label']}): {rec['n']} images, "
            f"{rec['input_check_refused']} refused by the input check, {dup['found']} duplicates "
            f"of a training-source image (highest thumbnail correlation "
            f"{dup['highest_similarity']}; {dup['similarity_threshold']} counts) =="
        )
        lines.append(f"{'subset':<18}{'n':>5}" + "".join(f"{c:>12}" for c in class_names))
        for key, sub in rec["subsets"].items():
            shares = "".join(f"{sub['share'][c] or 0:>12.1%}" for c in class_names)
            lines.append(f"{key:<18}{sub['n']:>5}{shares}")
    return "\n".join(lines)


def read_metrics_file(model_path: str | Path, weights_sha256: str) -> dict[str, Any]:
    """``<model>.metrics.json`` if it exists and is for these weights, else {}."""
    path = Path(model_path).with_suffix(".metrics.json")
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    return old if old.get("weights_sha256") == weights_sha256 else {}


def update_metrics_file(
    model_path: str | Path, weights_sha256: str, sections: dict[str, Any]
) -> Path:
    """Merges ``sections`` into ``<model>.metrics.json`` (dropped if it was for other weights)."""
    path = Path(model_path).with_suffix(".metrics.json")
    out = read_metrics_file(model_path, weights_sha256)
    out.update({"model": Path(model_path).name, "weights_sha256": weights_sha256})
    out.update(sections)
    path.write_text(json.dumps(out) + "\n")
    return path


def alternative_record(
    res: dict[str, Any], meta: dict[str, Any], weights_sha256: str, command: str
) -> dict[str, Any]:
    """What the Trust page compares with the committed model: an alternative's internal
    figures and its lung ablation, from one ``evaluate --ablate`` result ``res``."""
    abl = res["ablation"]
    erased = abl["lungs_erased"]
    return {
        "preprocess": meta.get("preprocess") or {},
        "train_config": meta.get("train_config") or {},
        "params": meta.get("params"),
        "keras_backend": meta.get("keras_backend"),
        "weights_sha256": weights_sha256,
        "split": abl.get("split"),
        "n": res["n"],
        "views": len(res.get("views", ())),
        "balanced_accuracy": res["balanced_accuracy"],
        "ci95": (res.get("ci95") or {}).get("balanced_accuracy"),
        "covid_sensitivity": (res["per_class"].get("covid") or {}).get("sensitivity"),
        "ece": res.get("ece"),
        "lungs_erased": {
            "balanced_accuracy": erased.get("balanced_accuracy"),
            "covid_auc": (erased.get("auc") or {}).get("covid"),
        },
        "lungs_only": {"balanced_accuracy": abl["lungs_only"].get("balanced_accuracy")},
        "chance": abl.get("chance"),
        "command": command,
    }


def alternative_target(metrics_path: str | Path, weights_sha256: str) -> dict[str, Any]:
    """The committed metrics a model with these weights may be recorded into as an
    alternative; raises if the file is missing or belongs to these very weights."""
    path = Path(metrics_path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: record the committed model's metrics first "
            "(python -m cxrlib.evaluate --save-metrics)"
        )
    out = json.loads(path.read_text())
    if out.get("weights_sha256") == weights_sha256:
        raise ValueError(f"{path} is this model's own metrics file: it is no alternative to itself")
    return out


def record_alternative(metrics_path: str | Path, name: str, record: dict[str, Any]) -> Path:
    """Adds ``record`` as ``alternatives[name]`` of an existing metrics file."""
    out = alternative_target(metrics_path, record["weights_sha256"])
    out.setdefault("alternatives", {})[name] = record
    Path(metrics_path).write_text(json.dumps(out) + "\n")
    return Path(metrics_path)


def recorded_alternative(
    metrics_path: str | Path, name: str, weights_sha256: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics file and its alternative ``name``; raises ValueError unless that
    alternative was recorded for these weights."""
    out = alternative_target(metrics_path, weights_sha256)
    alt = (out.get("alternatives") or {}).get(name)
    if not isinstance(alt, dict) or alt.get("weights_sha256") != weights_sha256:
        raise ValueError(
            f"{metrics_path} has no alternative {name!r} for these weights: record it with "
            "--split test --ablate --record-alternative first"
        )
    return out, alt


def record_alternative_external(
    metrics_path: str | Path, name: str, weights_sha256: str, section: dict[str, Any]
) -> Path:
    """Adds an ``--external`` result (without its per-image predictions) to the alternative
    ``name`` of an existing metrics file, which must have been recorded for these weights."""
    out, alt = recorded_alternative(metrics_path, name, weights_sha256)
    alt["external"] = {
        **{k: v for k, v in section.items() if k != "collections"},
        "collections": {
            key: {k: v for k, v in rec.items() if k != "predictions"}
            for key, rec in section["collections"].items()
        },
    }
    Path(metrics_path).write_text(json.dumps(out) + "\n")
    return Path(metrics_path)


def save_model_metrics(
    model_path: str | Path,
    data: str | Path,
    n_boot: int = 1000,
    log: Callable[[str], None] = print,
) -> Path:
    """Evaluates val and test of the shared manifest; writes ``<model>.metrics.json``."""
    clf = load_classifier(model_path)
    manifest = Path(data) / "manifest.csv"
    splits = {}
    for split in ("val", "test"):
        res = evaluate_manifest(clf, manifest, split=split, n_boot=n_boot)
        log(format_table(res, title=f"== {split} =="))
        splits[split] = res
    path = update_metrics_file(
        model_path, clf.weights_sha256, {"manifest": manifest.name, "splits": splits}
    )
    log(f"wrote {path}")
    return path


def run_audits(
    classifier: Classifier,
    df: pd.DataFrame,
    ablate: bool = False,
    explain: bool = False,
    max_images: int | None = None,
    segmenter_path: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The shortcut audit on manifest rows ``df``: lungs-erased / lungs-only
    ablation and Grad-CAM lung focus + faithfulness (see :mod:`cxrlib.evaluate.audit`)."""
    from cxrlib.evaluate import audit
    from cxrlib.infer.lungs import DEFAULT_SEGMENTER_PATH, load_segmenter

    out: dict[str, Any] = {}
    if not (ablate or explain):
        return out
    seg = load_segmenter(segmenter_path or DEFAULT_SEGMENTER_PATH)
    sub = stratified_sample(df, max_images)
    grays = [load_gray(f) for f in sub["file"]]
    y = sub["y"].to_numpy()
    if ablate:
        t0 = time.time()
        # Erase the whole lung, including the part behind the heart and diaphragm.
        masks = seg.segment_many(grays, ["full"] * len(grays))
        out["ablation"] = audit.ablation(classifier, seg, grays, y, masks=masks)
        out["ablation"]["mask_convention"] = "full"
        out["ablation"]["seconds"] = round(time.time() - t0, 1)
        a = out["ablation"]
        log(
            "ablation (balanced accuracy): original {:.3f}  lungs erased {:.3f}  lungs only {:.3f}"
            "  (chance {:.3f})".format(
                a["original"]["balanced_accuracy"],
                a["lungs_erased"]["balanced_accuracy"],
                a["lungs_only"]["balanced_accuracy"],
                a["chance"],
            )
        )
        log(a["verdict"])
    if explain:
        from cxrlib.infer.explain import Explainer

        t0 = time.time()
        ex = audit.explanation_summary(
            classifier, Explainer(classifier), seg, grays, y, list(sub["source"])
        )
        ex["seconds"] = round(time.time() - t0, 1)
        out["explain"] = ex
        log(
            f"Grad-CAM lung focus: mean {ex['lung_focus']['mean']}, median "
            f"{ex['lung_focus']['median']} (n={ex['lung_focus']['n']}); a flat map over the "
            f"model's view: mean {ex['flat_map_focus']['mean']}"
        )
        for c, v in ex["lung_focus_per_class"].items():
            log(f"  {c:<10} mean {v['mean']}  median {v['median']}")
        for s, v in ex["lung_focus_per_source"].items():
            log(f"  {s:<12} mean {v['mean']}  median {v['median']}")
        f = ex["faithfulness"]
        log(
            f"faithfulness: confidence drop hottest 20% {f['drop_hot']}, random 20% "
            f"{f['drop_random']}, difference {f['score']}"
        )
    return out


def format_methods(section: dict[str, Any]) -> str:
    """The ``--methods`` result as a plain-text table."""
    agree = section["agreement"]
    lines = [
        f"== heatmap methods on {section['n']} images: hottest {section['percent']:g}% regions "
        f"overlap by {agree['mean']:.3f} on average (10th-90th percentile "
        f"{agree['p10']:.3f}-{agree['p90']:.3f}) ==",
        f"{'method':<12} {'lung focus':>10} {'vs random weights: rank corr.':>30} {'hot IoU':>8}",
    ]
    for m in section["methods"]:
        r = section["randomised"][m]
        cells = [section["lung_focus"][m], r["rank_correlation"], r["hot_iou"]]
        f = ["-" if v is None else f"{v:.3f}" for v in cells]
        spread = r.get("rank_correlation_range")
        if spread:
            f[1] += f" ({spread[0]:.2f} to {spread[1]:.2f})"
        lines.append(f"{m:<12} {f[0]:>10} {f[1]:>30} {f[2]:>8}")
    return "\n".join(lines)


def loso_config(classifier: Classifier, epochs: int, steps: int) -> Any:
    """The leave-one-source-out runs' :class:`cxrlib.train.classifier.TrainConfig`: the model's own
    recipe (architecture, sampling, preprocessing, augmentation, seed) on a short schedule."""
    from cxrlib.train.classifier import TrainConfig

    # Settings a model's JSON predates come back at their defaults, as it trained then.
    tc = TrainConfig.from_dict(classifier.meta.get("train_config") or {})
    return TrainConfig(
        arch=tc.arch,
        alpha=tc.alpha,
        width=tc.width,
        epochs=epochs,
        steps_per_epoch=steps,
        patience=epochs,
        seed=tc.seed,
        sampling_power=tc.sampling_power,
        sampling_floor=tc.sampling_floor,
        ema=tc.ema,
        adversary=tc.adversary,
        preprocess=classifier.preprocess,
        augment=tc.augment,
    )


def loso_section(classifier: Classifier, epochs: int, steps: int) -> str:
    """Where a leave-one-source-out result is kept in the metrics file.

    ``"loso_full"`` when each held-out model trains on the committed model's own schedule
    (whole epochs, at least as many as it ran); ``"loso"`` for a short schedule. The two are
    kept apart: the short one covers every source, the full one is the recipe itself.
    """
    meta = classifier.meta
    trained = meta.get("epochs_run") or (meta.get("train_config") or {}).get("epochs")
    return "loso_full" if steps == 0 and trained and epochs >= int(trained) else "loso"


def merge_loso(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A recorded leave-one-source-out section with a new run's sources added.

    When both ran the same schedule, the held-out sources of ``old`` stay beside those of
    ``new`` (a source in both takes the new result), and ``commands`` lists every run's
    command; otherwise ``new`` replaces ``old``.
    """
    if not old or old.get("schedule") != new.get("schedule"):
        return new
    commands = list(old.get("commands") or ([old["command"]] if old.get("command") else []))
    if new.get("command"):
        commands.append(new["command"])
    return {
        **new,
        "sources": {**(old.get("sources") or {}), **(new.get("sources") or {})},
        "commands": commands,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    p.add_argument("--manifest", help="CSV with at least path,label (default: DATA/manifest.csv)")
    p.add_argument(
        "--root", default=None, help="folder the paths are relative to (default: the CSV's)"
    )
    p.add_argument("--split", default=None, help="keep rows with this split value")
    p.add_argument("--json", default=None, help="write the full result here")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for ci95")
    p.add_argument("--data", default="../shared/cxr", help="shared CXR folder")
    p.add_argument(
        "--save-metrics",
        action="store_true",
        help="evaluate val+test of DATA and write models/<name>.metrics.json",
    )
    p.add_argument(
        "--ablate",
        action="store_true",
        help="shortcut audit: scores with the lungs erased and with only the lungs kept",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="Grad-CAM lung focus per class and source, and faithfulness",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="audit at most this many images (stratified by source and label)",
    )
    p.add_argument(
        "--methods",
        action="store_true",
        help="every heatmap method on the same images: their agreement, and how much each "
        "map changes when the network's weights are re-drawn at random",
    )
    p.add_argument(
        "--methods-images",
        type=int,
        default=200,
        help="images for --methods (stratified by source and label; the model and three "
        "random copies x five methods each, about 3 s per image on 2 cores)",
    )
    p.add_argument(
        "--segmenter", default=None, help="lung segmenter (default models/lung_segmenter.keras)"
    )
    p.add_argument(
        "--loso",
        default=None,
        metavar="SOURCES",
        help="leave-one-source-out: comma-separated sources to hold out in turn",
    )
    p.add_argument("--loso-epochs", type=int, default=4)
    p.add_argument(
        "--loso-steps",
        type=int,
        default=150,
        help="steps per epoch of each LOSO run; 0 for whole epochs (with --loso-epochs at "
        "least the committed model's, --record stores it as the full recipe's, 'loso_full')",
    )
    views = p.add_mutually_exclusive_group()
    views.add_argument(
        "--views",
        action="store_true",
        help="average each image's logits over the original and the app's 8 test-time views "
        "(cxrlib.infer.views.DEFAULT_VIEWS) even if the model's JSON does not ask for it; "
        "default: as the model's JSON says (its test_time_views); with --loso, each "
        "held-out source is then also scored so",
    )
    views.add_argument(
        "--single-view",
        action="store_true",
        help="score the original image only, even if the model averages test-time views",
    )
    p.add_argument(
        "--external",
        default=None,
        metavar="LUNGS_DIR",
        help="score the collections of the lung set (../shared/lungs) that no training image "
        "came from (cxrlib.evaluate.external: OpenIST's normal adults), checked for duplicates of "
        "DATA's images, instead of a manifest",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="also store audit / LOSO / external results in models/<name>.metrics.json",
    )
    p.add_argument(
        "--record-alternative",
        default=None,
        metavar="NAME",
        help="store this (not committed) model's scores and lung ablation as NAME in the "
        "committed model's metrics file, for the Trust page's comparison (needs --ablate)",
    )
    p.add_argument(
        "--record-into",
        default=str(Path(DEFAULT_MODEL_PATH).with_suffix(".metrics.json")),
        help="the metrics file --record-alternative writes to",
    )
    a = p.parse_args(argv)
    if a.record_alternative and not (a.ablate or a.external):
        p.error(
            "--record-alternative needs --ablate (the comparison is the lungs-erased score) "
            "or --external (added to an alternative recorded so)"
        )
    if a.record_alternative and (a.save_metrics or a.loso or (a.ablate and a.external)):
        p.error(
            "--record-alternative records one thing at a time: --ablate on one manifest, or "
            "--external; leave out --save-metrics and --loso"
        )
    if a.record_alternative and not Path(a.record_into).exists():
        # Checked before a long evaluation, not after it.
        p.error(f"{a.record_into} does not exist: record the committed model's metrics first")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    command = "python -m cxrlib.evaluate " + " ".join(shlex.quote(x) for x in argv)
    if a.save_metrics:
        save_model_metrics(a.model, a.data, n_boot=a.bootstrap)
    manifest = a.manifest or str(Path(a.data) / "manifest.csv")
    views = DEFAULT_VIEWS if a.views else (() if a.single_view else None)
    clf = None
    res: dict[str, Any] = {}
    if not a.save_metrics and not a.loso and not a.external and not a.methods:
        clf = load_classifier(a.model)
        if a.record_alternative:
            # Refused before minutes of scoring, not after them.
            try:
                alternative_target(a.record_into, clf.weights_sha256)
            except ValueError as e:
                print(f"not recorded: {e}", file=sys.stderr)
                return 2
        res = evaluate_manifest(
            clf, manifest, root=a.root, split=a.split, n_boot=a.bootstrap, views=views
        )
        title = f"{manifest}" + (f" [{a.split}]" if a.split else "")
        n_views = len(res.get("views", ()))
        print(format_table(res, title=title + (f" (mean over {n_views} views)" if n_views else "")))
    sections: dict[str, Any] = {}
    if a.ablate or a.explain:
        clf = clf or load_classifier(a.model)
        df = read_manifest(manifest, root=a.root, split=a.split, class_names=clf.class_names)
        audits = run_audits(
            clf,
            df,
            ablate=a.ablate,
            explain=a.explain,
            max_images=a.max_images,
            segmenter_path=a.segmenter,
        )
        for key, val in audits.items():
            val["split"] = a.split
            val["command"] = command
            sections[key] = val
    if a.methods:
        from cxrlib.evaluate.audit import compare_explanations
        from cxrlib.infer.lungs import DEFAULT_SEGMENTER_PATH, load_segmenter

        clf = clf or load_classifier(a.model)
        df = read_manifest(manifest, root=a.root, split=a.split, class_names=clf.class_names)
        sub = stratified_sample(df, a.methods_images)
        t0 = time.time()
        section = compare_explanations(
            clf,
            load_segmenter(a.segmenter or DEFAULT_SEGMENTER_PATH),
            [load_gray(f) for f in sub["file"]],
            sub["y"].to_numpy(),
        )
        section.update(split=a.split, command=command, seconds=round(time.time() - t0, 1))
        sections["explain_methods"] = section
        print(format_methods(section))
    if a.loso:
        from cxrlib.evaluate.audit import leave_one_source_out

        clf = clf or load_classifier(a.model)
        cfg = loso_config(clf, a.loso_epochs, a.loso_steps)
        # The held-out sources are also scored as the model predicts (a fresh
        # short-schedule model has no fitted view temperature; accuracy and AUC
        # do not depend on it).
        key = loso_section(clf, a.loso_epochs, a.loso_steps)
        sections[key] = leave_one_source_out(
            manifest, cfg, a.loso.split(","), root=a.root, views=clf.resolve_views(views)
        )
        sections[key]["command"] = command
    if a.external:
        from cxrlib.evaluate.external import external_check

        clf = clf or load_classifier(a.model)
        if a.record_alternative:
            try:
                recorded_alternative(a.record_into, a.record_alternative, clf.weights_sha256)
            except ValueError as e:
                print(f"not recorded: {e}", file=sys.stderr)
                return 2
        training = read_manifest(manifest, root=a.root, class_names=clf.class_names)
        sections["external"] = external_check(clf, a.external, list(training["file"]), views)
        sections["external"]["command"] = command
        print(format_external(sections["external"], clf.class_names))
    res.update(sections)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    if a.record and sections:
        clf = clf or load_classifier(a.model)
        recorded = read_metrics_file(a.model, clf.weights_sha256)
        for key in ("loso", "loso_full"):
            if key in sections:
                # One source at a time adds a row, rather than replacing the table.
                sections[key] = merge_loso(recorded.get(key), sections[key])
        print(f"wrote {update_metrics_file(a.model, clf.weights_sha256, sections)}")
    if a.record_alternative and a.external:
        assert clf is not None
        path = record_alternative_external(
            a.record_into, a.record_alternative, clf.weights_sha256, sections["external"]
        )
        print(f"wrote {path}")
    elif a.record_alternative:
        assert clf is not None
        record = alternative_record(res, clf.meta, clf.weights_sha256, command)
        print(f"wrote {record_alternative(a.record_into, a.record_alternative, record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

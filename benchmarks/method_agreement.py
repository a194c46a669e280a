"""Do the heatmap methods agree? Prints ONE JSON line over a stratified sample of a split.

For each image: the predicted class (as the app predicts it), every method's heatmap of
that class (:data:`cxrlib.appstate.METHOD_LABELS`, the Diagnose page's "Compare all
methods"), each map's lung focus, and the intersection over union of every pair of
methods' hottest ``--percent`` % regions (:func:`cxrlib.focus.hot_region_agreement`).

* ``agreement_mean`` / ``_median``: the per-image mean over all pairs (what the
  Diagnose page shows for one image), over the sample.
* ``pairwise_iou``: the mean IoU of each pair of methods.
* ``agreement_cams``: the same mean over the four class-activation maps only.
* ``lung_focus``: each method's mean lung focus.
* ``agreement_per_class``: by true label.

Usage::

    .venv/bin/python benchmarks/method_agreement.py [--split test] [--max-images 400]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlib.appstate import METHOD_LABELS  # noqa: E402
from cxrlib.data import load_gray, read_manifest, stratified_sample  # noqa: E402
from cxrlib.focus import hot_region_agreement, lung_focus  # noqa: E402

CAMS = ("gradcam", "gradcampp", "layercam", "scorecam")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/cxr_classifier.keras")
    p.add_argument("--data", default="../shared/cxr")
    p.add_argument("--split", default="test")
    p.add_argument("--max-images", type=int, default=400, help="spread over (source, label)")
    p.add_argument("--percent", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    from cxrlib.explain import Explainer
    from cxrlib.lungs import default_segmenter
    from cxrlib.model import load_classifier

    clf = load_classifier(a.model)
    explainer = Explainer(clf)
    segmenter = default_segmenter()
    df = read_manifest(Path(a.data) / "manifest.csv", split=a.split, class_names=clf.class_names)
    sample = stratified_sample(df, a.max_images, seed=a.seed)
    methods = list(METHOD_LABELS)
    pairs = list(itertools.combinations(methods, 2))
    per_image, pair_iou, cams, focus = [], {p: [] for p in pairs}, [], {m: [] for m in methods}
    t0 = time.perf_counter()
    for file in sample["file"]:
        gray = load_gray(file)
        k = int(clf.predict([gray])[0].argmax())
        maps = {m: explainer.explain(gray, m, k) for m in methods}
        mask = segmenter.segment(gray)
        for m in methods:
            focus[m].append(lung_focus(maps[m], mask))
        per_image.append(hot_region_agreement(list(maps.values()), a.percent))
        cams.append(hot_region_agreement([maps[m] for m in CAMS], a.percent))
        for x, y in pairs:
            pair_iou[(x, y)].append(hot_region_agreement([maps[x], maps[y]], a.percent))
    agreement = np.asarray(per_image)
    labels = sample["label"].to_numpy()
    out = {
        "model": a.model,
        "split": a.split,
        "n": len(sample),
        "percent": a.percent,
        "agreement_mean": round(float(agreement.mean()), 3),
        "agreement_median": round(float(np.median(agreement)), 3),
        "agreement_p10_p90": [round(float(q), 3) for q in np.percentile(agreement, [10, 90])],
        "agreement_cams": round(float(np.mean(cams)), 3),
        "pairwise_iou": {f"{x}~{y}": round(float(np.mean(v)), 3) for (x, y), v in pair_iou.items()},
        "lung_focus": {m: round(float(np.mean(v)), 3) for m, v in focus.items()},
        "agreement_per_class": {
            c: round(float(agreement[labels == c].mean()), 3) for c in sorted(set(labels))
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Latency of the app's steps on one real chest X-ray: prints ONE JSON line.

One process, warm runs (after two warm-ups), medians in milliseconds:

* ``forward_ms``: the compiled forward pass of one prepared image.
* ``predict_ms``: upload bytes -> the model's calibrated probabilities (decode + prepare +
  forward; for a model with test-time views, the original and its views in one batch).
* ``<method>_ms`` for every method of :data:`cxrlib.core.methods.METHODS` (``gradcam_ms``
  ... ``occlusion_ms``): :meth:`Explainer.explain` on the decoded image (prepare + heatmap +
  mapping back onto the image + normalisation).
* ``tfkv_gradcam_ms``: plain tf-keras-vis Grad-CAM (visualiser built once) on the
  prepared input, for comparison with the fast path.
* forward, predict, the fast CAMs and tf-keras-vis Grad-CAM are timed in
  turn within each round, so that load bursts on a shared machine hit all of
  them alike and the ``*_x_forward`` ratios stay fair.
* ``segment_ms``: lung mask of the decoded image, segmented afresh each run (null
  without a segmenter).
* ``overlay_ms``: :func:`cxrlib.infer.overlay.overlay` at 1024 x 1024 with a lung outline
  (``overlay_cpu_ms``: the same, CPU time of the calling thread).
* ``diagnose_ms``: bytes -> probabilities + test-time ranges + Grad-CAM + lung mask
  + lung focus + overlay (the app's whole first result), the image's segmentation
  remembered (as when a display setting changes).
* ``diagnose_new_ms``: the same for an image never seen before: segmentation memos
  cleared each run, so a lung-crop model's crop box and the lung-focus mask are
  segmented (one U-Net pass gives both).

Usage::

    python -m benchmarks.latency                      # models/cxr_classifier.keras
    python -m benchmarks.latency --model /tmp/m.keras --segmenter /tmp/s.keras
    python -m benchmarks.latency --build-temp /tmp/cxr_tmp   # untrained stand-ins, timing only
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent

import cv2
import numpy as np


def median_ms(
    fn: Callable[[], object],
    runs: int,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median time of ``fn`` over ``runs`` calls after ``warmup`` calls, in ms.

    ``clock`` is wall time by default; ``time.thread_time`` gives the calling
    thread's CPU time (immune to other processes on a shared machine).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return round(1000 * statistics.median(times), 2)


def interleaved_ms(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict:
    """Medians (ms) of several functions timed in turn within each round.

    On a shared, busy machine this keeps the ratios fair: a burst of load
    slows every function of that round, not just one of them.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}


def pick_image(cxr_dir: Path) -> Path:
    """The first test-split image at least 384 px wide (exercises the resize)."""
    with open(cxr_dir / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("split") == "test" and int(row.get("width") or 0) >= 384:
                return cxr_dir / row["path"]
    raise SystemExit(f"no suitable image in {cxr_dir}")


def build_temp(folder: Path) -> tuple[Path, Path]:
    """Saves an untrained default classifier and segmenter (timing stand-ins only)."""
    from cxrlib.train.architectures import build_classifier, build_unet
    from cxrlib.train.classifier import save_classifier

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "cxr_classifier.keras"
    if not model_path.exists():
        save_classifier(
            build_classifier(160, "mobilenetv2", seed=0),
            {"preprocess": {"size": 160, "contrast": "clahe"}, "temperature": 1.0},
            model_path,
        )
    seg_path = folder / "lung_segmenter.keras"
    if not seg_path.exists():
        build_unet(128).save(seg_path)
        seg_path.with_suffix(".json").write_text(
            json.dumps({"preprocess": {"size": 128, "contrast": "clahe"}}) + "\n"
        )
    return model_path, seg_path


def decoder() -> tuple[Callable[[bytes, str], np.ndarray], str]:
    try:
        from cxrlib.io.decode import read_image

        return read_image, "cxrlib.io.decode.read_image"
    except ImportError:  # not written yet: plain OpenCV
        return (
            lambda data, _name: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE),
            "cv2.imdecode",
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "cxr_classifier.keras")
    ap.add_argument("--segmenter", type=Path, default=ROOT / "models" / "lung_segmenter.keras")
    ap.add_argument("--build-temp", type=Path, help="build untrained stand-in models here")
    ap.add_argument("--image", type=Path, help="default: a test image from ../shared/cxr")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument(
        "--slow-runs", type=int, default=20, help="runs for the methods off the fast path"
    )
    args = ap.parse_args(argv)
    if args.runs < 20 or args.slow_runs < 20:
        ap.error("use at least 20 runs")

    from cxrlib.core.methods import METHODS
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.overlay import overlay
    from cxrlib.infer.pipeline import diagnose

    untrained = False
    if args.build_temp:
        model_path, seg_path = build_temp(args.build_temp)
        untrained = True
    else:
        model_path, seg_path = args.model, args.segmenter
    segmenter = None
    if seg_path.exists():
        from cxrlib.infer.lungs import load_segmenter

        segmenter = load_segmenter(seg_path)
    # As the app does: the classifier crops with the same segmenter that gives lung focus.
    clf = load_classifier(model_path, segmenter=segmenter)
    cxr_dir = Path(os.environ.get("CXR_SHARED", ROOT.parent / "shared")) / "cxr"
    image_path = args.image or pick_image(cxr_dir)
    data = image_path.read_bytes()
    read, decoder_name = decoder()
    gray = read(data, image_path.name)
    x = clf.prepare(gray)[None]
    explainer = Explainer(clf)
    runs, slow = args.runs, args.slow_runs
    out: dict[str, object] = {}

    target = int(np.argmax(clf.logits(x)[0]))
    out.update(
        interleaved_ms(
            {
                "forward_ms": lambda: clf.logits(x),
                "predict_ms": lambda: clf.predict([read(data, image_path.name)]),
                **{
                    f"{m}_ms": functools.partial(explainer.explain, gray, m)
                    for m in explainer.fast_methods
                },
                "tfkv_gradcam_ms": lambda: explainer.reference(
                    x[0], "gradcam", target, expand_cam=True
                ),
            },
            runs,
        )
    )
    for m in METHODS:
        if m not in explainer.fast_methods:
            out[f"{m}_ms"] = median_ms(
                functools.partial(explainer.explain, gray, m), slow, warmup=1
            )

    def segment_afresh() -> None:
        segmenter.forget_images()
        segmenter.segment(gray)

    out["segment_ms"] = median_ms(segment_afresh, runs) if segmenter is not None else None

    big = cv2.resize(gray, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    big_map = cv2.resize(explainer.explain(gray, "gradcam"), (1024, 1024))
    big_mask = np.zeros((1024, 1024), bool)
    big_mask[200:850, 120:470] = True
    big_mask[200:850, 560:900] = True
    out["overlay_ms"] = median_ms(
        lambda: overlay(big, big_map, 0.4, "jet", lung_mask=big_mask), runs
    )
    out["overlay_cpu_ms"] = median_ms(
        lambda: overlay(big, big_map, 0.4, "jet", lung_mask=big_mask), runs, clock=time.thread_time
    )

    def whole() -> None:
        g = read(data, image_path.name)
        d = diagnose(clf, g, explainer, segmenter, "gradcam")
        overlay(g, d.heatmap, 0.4, "jet", lung_mask=d.lung_mask)

    out["diagnose_ms"] = median_ms(whole, runs)

    def whole_new() -> None:
        if clf.segmenter is not None:  # the segmenter keeps the masks; the classifier none
            clf.segmenter.forget_images()
        if segmenter is not None:
            segmenter.forget_images()
        whole()

    out["diagnose_new_ms"] = median_ms(whole_new, runs)

    fwd = float(out["forward_ms"])
    out["gradcam_x_forward"] = round(float(out["gradcam_ms"]) / fwd, 2)
    out["gradcampp_x_forward"] = round(float(out["gradcampp_ms"]) / fwd, 2)
    out["tfkv_gradcam_x_forward"] = round(float(out["tfkv_gradcam_ms"]) / fwd, 2)
    d = diagnose(clf, gray, explainer, segmenter)
    out.update(
        model=str(model_path),
        model_untrained=untrained,
        model_input=int(clf.preprocess.size),
        predicted_over_views=1 + len(clf.views),
        segmenter=str(seg_path) if segmenter is not None else None,
        image=str(image_path.relative_to(cxr_dir))
        if image_path.is_relative_to(cxr_dir)
        else str(image_path),
        image_shape=list(gray.shape),
        decoder=decoder_name,
        lung_focus=None if d.lung_focus is None else round(d.lung_focus, 3),
        runs=runs,
        slow_runs=slow,
        cpu_count=os.cpu_count(),
        malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        load_avg_1m=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The app's pipeline: one grayscale X-ray -> probabilities, spread, heatmap, lung focus.

Pure and cache-friendly: the same image, model, method and class always give
the same :class:`Diagnosis` (the test-time views are fixed, SmoothGrad is
seeded), and the result is a picklable dataclass of NumPy arrays and plain
values, so the app can cache it under :func:`cxrlib.core.hashing.sha256_bytes` of
the upload. Overlay rendering is separate (:mod:`cxrlib.infer.overlay`): changing the
opacity or colour map needs no model call. The out-of-distribution gate
(:func:`cxrlib.infer.gate.assess`) is the app's job, before this runs.

Speed: for the Grad-CAM family the original image and its test-time views go
through ONE compiled forward pass that returns every view's logits and the
original's CAM (see :meth:`cxrlib.infer.explain.Explainer.fast_cams`). The lung-focus
verdict and its thresholds are in :mod:`cxrlib.infer.verdict`.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from cxrlib.core.methods import check_method
from cxrlib.core.timings import timed
from cxrlib.infer.classifier import Classifier
from cxrlib.infer.diagnosis import Diagnosis
from cxrlib.infer.explain import Explainer, get_explainer
from cxrlib.infer.focus import lung_focus as _lung_focus
from cxrlib.infer.focus import model_view_focus
from cxrlib.infer.preprocess import Box, to_geometry
from cxrlib.infer.verdict import focus_verdict
from cxrlib.infer.views import DEFAULT_VIEWS, View, view_batch


class Segmenter(Protocol):
    """What :func:`diagnose` needs of :class:`cxrlib.infer.lungs.LungSegmenter`."""

    def segment(self, gray: np.ndarray) -> np.ndarray: ...


def _lung_mask(segmenter: Segmenter, gray: np.ndarray) -> np.ndarray:
    mask = np.asarray(segmenter.segment(gray)).astype(bool)
    if mask.shape != gray.shape[:2]:
        mask = cv2.resize(
            mask.view(np.uint8), (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    return mask


def _explain_views(
    classifier: Classifier,
    explainer: Explainer,
    batch: np.ndarray,
    method: str,
    class_index: int | None,
) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
    """The views' probabilities and the original's raw map of the class shown.

    Returns:
        ``(probabilities, per-view probabilities, predicted, explained class, raw map)``.
    """
    if method in explainer.fast_methods:
        res = explainer.fast_cams(batch, class_index)
        logits, raw, target = res.logits, res.cam(method)[0], int(res.targets[0])
        probs, probs_all = classifier.combine_views(logits)
        predicted = int(np.argmax(probs))
        if class_index is None and target != predicted:
            # The views' average can disagree with the original alone: explain what is shown.
            res = explainer.fast_cams(batch[:1], predicted)
            raw, target = res.cam(method)[0], predicted
        return probs, probs_all, predicted, target, raw
    probs, probs_all = classifier.combine_views(classifier.logits(batch))
    predicted = int(np.argmax(probs))
    target = predicted if class_index is None else int(class_index)
    raw, _ = explainer.raw(batch[0], method, target)
    return probs, probs_all, predicted, target, raw


def _lung_check(
    heatmap: np.ndarray,
    mask: np.ndarray | None,
    frame: tuple[Box | None, np.ndarray | None],
    dilation: float,
) -> tuple[float | None, float | None, str, str]:
    """Lung focus, lung area, focus level and verdict of one heatmap.

    ``frame``: the classifier's crop box and lung mask of the image (``dilation``: its
    mask dilation). A model that sees part of the image gets "the region the model
    sees": the verdict also gives the lungs' share of that part.
    """
    focus = area = share = None
    if mask is not None:
        area = float(mask.mean())
        focus = _lung_focus(heatmap, mask)
        if frame[0] is not None or frame[1] is not None:
            share = model_view_focus(mask, frame, dilation)
    level, verdict = focus_verdict(
        focus, area, heatmap_empty=not heatmap.max() > 0, view_share=share
    )
    return focus, area, level, verdict


def diagnose(
    classifier: Classifier,
    gray: np.ndarray,
    explainer: Explainer | None = None,
    segmenter: Segmenter | None = None,
    method: str = "gradcam",
    class_index: int | None = None,
    views: tuple[View, ...] | None = None,
) -> Diagnosis:
    """Runs the whole pipeline on one grayscale image.

    Args:
        classifier: The classifier.
        gray: 2-D uint8 image (decoded upload).
        explainer: The classifier's :class:`~cxrlib.infer.explain.Explainer`
            (``None``: the cached one of ``classifier``).
        segmenter: A lung segmenter with ``.segment(gray) -> bool mask``, or None.
        method: Explanation method (a key of :data:`cxrlib.core.methods.METHODS`).
        class_index: Class to explain; ``None`` = the predicted class.
        views: Test-time views for the probability ranges (batched with the
            original); ``None``: the model's own (:attr:`Classifier.views`), or
            :data:`DEFAULT_VIEWS` for a model that does not average. A model that
            averages averages over the views given here.

    Returns:
        A :class:`Diagnosis`.
    """
    check_method(method)
    explainer = get_explainer(classifier) if explainer is None else explainer
    if explainer.classifier is not classifier:
        raise ValueError("the explainer belongs to a different classifier")
    names = classifier.class_names
    if class_index is not None and not 0 <= int(class_index) < len(names):
        raise ValueError(f"class_index {class_index} out of range 0..{len(names) - 1}")
    views = (classifier.views or DEFAULT_VIEWS) if views is None else tuple(views)
    cfg = classifier.preprocess
    # The stages in order, each handed what the earlier ones found: lungs, views and
    # classifier (one pass with the heatmap's features), heatmap, focus, verdict.
    with timed("segment"):
        crop, lung_mask = classifier.lung_frames([gray])[0]
        mask = None if segmenter is None else _lung_mask(segmenter, gray)
    with timed("views"):
        batch = view_batch(to_geometry(gray, cfg, crop, lung_mask), cfg, views)
        probs, probs_all, predicted, target, raw = _explain_views(
            classifier, explainer, batch, method, class_index
        )
    with timed("heatmap"):
        heatmap = explainer.to_image(raw, gray.shape, crop)
        focus, area, level, verdict = _lung_check(
            heatmap, mask, (crop, lung_mask), cfg.mask_dilation
        )
    return Diagnosis(
        class_names=tuple(names),
        probabilities=probs,
        predicted_index=predicted,
        predicted_name=names[predicted],
        uncertainty=np.stack([probs_all.min(axis=0), probs_all.max(axis=0)], axis=1),
        view_probabilities=probs_all,
        view_names=("original",) + tuple(v.name for v in views),
        target_index=target,
        target_name=names[target],
        method=method,
        heatmap=heatmap,
        lung_mask=mask,
        lung_focus=focus,
        lung_area=area,
        focus_level=level,
        focus_verdict=verdict,
        model_crop=crop,
        averaged=bool(classifier.views),
    )

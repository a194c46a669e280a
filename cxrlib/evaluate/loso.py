"""Leave one source out: retrain with one hospital held out, and test on all of it.

What the model does on a hospital it has never seen, run by
``python -m cxrlib.evaluate loso nih,radiography``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlib.evaluate.metrics import headline_scores, held_out_scores
from cxrlib.infer.classifier import Classifier
from cxrlib.train import file_scores
from cxrlib.train.classifier import train
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import read_manifest

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd


def loso_config(classifier: Classifier, epochs: int, steps: int) -> TrainConfig:
    """The leave-one-source-out runs' :class:`cxrlib.train.config.TrainConfig`: the model's own
    recipe (architecture, sampling, preprocessing, augmentation, seed) on a short schedule."""
    # Settings a model's JSON predates come back at their defaults, as it trained then.
    tc = TrainConfig.model_validate(classifier.meta.get("train_config") or {})
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


def _held_out_run(
    manifest: str | Path,
    df: pd.DataFrame,
    cfg: TrainConfig,
    source: str,
    root: str | Path | None,
    views: Sequence[Any],
) -> dict[str, Any]:
    """Trains without ``source`` and scores all of it (and the internal test split, of
    the manifest rows ``df``)."""
    run_cfg = cfg.model_copy(update={"exclude_sources": (source,)})
    logger.info(f"leave-one-source-out: training without {source} ...")
    with tempfile.TemporaryDirectory() as tmp:
        model, meta = train(manifest, tmp, run_cfg, root=root, verbose=0)
        clf = Classifier(model, meta)
        held = df[df["source"] == source]
        z = file_scores.file_view_logits(clf, list(held["file"]), views)
        probs = clf.combine_views(z, average=False)[0]
        probs_views = clf.combine_views(z, average=True)[0] if views else None
        test = df[(df["split"] == "test") & (df["source"] != source)]
        # A manifest without a test split (a small check run) has no internal figure.
        probs_test = (
            file_scores.predict_files(clf, list(test["file"]), views=()) if len(test) else None
        )
    res = held_out_scores(held["y"].to_numpy(), probs, clf.class_names)
    if probs_views is not None:
        res["with_views"] = held_out_scores(held["y"].to_numpy(), probs_views, clf.class_names)
        logger.info(
            f"  {source} with {len(views)} views: accuracy {res['with_views']['accuracy']:.3f}"
        )
    res["internal_test_balanced_accuracy"] = (
        None
        if probs_test is None
        else headline_scores(test["y"].to_numpy(), probs_test, clf.class_names)["balanced_accuracy"]
    )
    return res


def leave_one_source_out(
    manifest: str | Path,
    cfg: TrainConfig,
    sources: Sequence[str],
    root: str | Path | None = None,
    views: Sequence[Any] = (),
) -> dict[str, Any]:
    """For each source: train without it (``cfg``, usually a short schedule), test on all of it.

    Args:
        manifest: The training manifest (needs ``split`` and ``source``).
        cfg: A :class:`cxrlib.train.config.TrainConfig`; ``exclude_sources`` is set per run.
        sources: The sources to hold out, one at a time.
        root: Folder the manifest's paths are relative to.
        views: Test-time views (:class:`cxrlib.infer.views.View`): each held-out source is also
            scored with the logits averaged over the original and them, under
            ``"with_views"`` (from the same single read of its images).

    Returns:
        ``{source: {"n", "accuracy", "balanced_accuracy", "sensitivity": {...},
        "per_class_accuracy": {...}, "internal_test_balanced_accuracy"}}`` plus the
        schedule used.
    """
    df = read_manifest(manifest, root=root)
    out: dict[str, Any] = {"schedule": cfg.model_dump(mode="json"), "sources": {}}
    for s in sources:
        res = _held_out_run(manifest, df, cfg, s, root, views)
        out["sources"][s] = res
        logger.info(
            f"  {s}: n={res['n']} accuracy {res['accuracy']:.3f} {res['per_class_accuracy']}"
        )
    return out

"""Leave one source out: retrain with one hospital held out, and test on all of it."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrlib.evaluate.metrics import diagnosed_probabilities, headline_scores, held_out_scores
from cxrlib.infer.classifier import Classifier
from cxrlib.train import data
from cxrlib.train.classifier import train
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import read_manifest

logger = logging.getLogger(__name__)

#: What a leave-one-source-out run takes from the model's own recipe.
_RECIPE = ("arch", "alpha", "width", "seed", "sampling_power", "sampling_floor", "augment")


def loso_config(classifier: Classifier, epochs: int, steps: int) -> TrainConfig:
    """The model's own recipe on the schedule of the leave-one-source-out runs (settings its
    JSON predates at their defaults, as it trained then)."""
    tc = TrainConfig.model_validate(classifier.meta.get("train_config") or {})
    return TrainConfig(
        **{name: getattr(tc, name) for name in _RECIPE},
        epochs=epochs,
        steps_per_epoch=steps,
        patience=epochs,
        preprocess=classifier.preprocess,
    )


def loso_section(classifier: Classifier, epochs: int, steps: int) -> str:
    """The metrics file's section for a leave-one-source-out result: ``"loso_full"`` on the
    model's own schedule (whole epochs, at least as many as it ran), else ``"loso"``."""
    meta = classifier.meta
    trained = meta.get("epochs_run") or (meta.get("train_config") or {}).get("epochs")
    return "loso_full" if steps == 0 and trained and epochs >= int(trained) else "loso"


def leave_one_source_out(
    manifest: str | Path,
    cfg: TrainConfig,
    sources: Sequence[str],
    root: str | Path | None = None,
    views: Sequence[Any] = (),
) -> dict[str, Any]:
    """For each of ``sources``: train without it, and score all of it (also averaged over
    ``views``) and the manifest's test split of the other sources."""
    df = read_manifest(manifest, root=root)
    out: dict[str, Any] = {"schedule": cfg.model_dump(mode="json"), "sources": {}}
    for source in sources:
        run_cfg = cfg.model_copy(update={"exclude_sources": (source,)})
        logger.info(f"leave-one-source-out: training without {source} ...")
        with tempfile.TemporaryDirectory() as tmp:
            clf = Classifier(*train(manifest, tmp, run_cfg, root=root, verbose=0))
            held = df[df["source"] == source]
            z = data.file_view_logits(clf, list(held["file"]), views)
            test = df[(df["split"] == "test") & (df["source"] != source)]
            # A manifest without a test split (a small check run) has no internal figure.
            internal = None
            if len(test):
                probs = diagnosed_probabilities(clf, list(test["file"]), views=())
                scores = headline_scores(test["y"].to_numpy(), probs, clf.class_names)
                internal = scores["balanced_accuracy"]
        y, names = held["y"].to_numpy(), clf.class_names
        res = held_out_scores(y, clf.combine_views(z, average=False)[0], names)
        if views:
            res["with_views"] = held_out_scores(y, clf.combine_views(z, average=True)[0], names)
            logger.info(
                f"  {source} with {len(views)} views: accuracy {res['with_views']['accuracy']:.3f}"
            )
        res["internal_test_balanced_accuracy"] = internal
        out["sources"][source] = res
        logger.info(
            f"  {source}: n={res['n']} accuracy {res['accuracy']:.3f} {res['per_class_accuracy']}"
        )
    return out

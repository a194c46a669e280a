"""cxrlib.evaluate.loso: the leave-one-source-out recipe, where it is kept, and its runs."""

from __future__ import annotations

from cxrlib.evaluate.loso import leave_one_source_out
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.config import TrainConfig


def test_leave_one_source_out_reruns_the_models_own_recipe(tiny_model_path):
    import dataclasses

    from cxrlib.evaluate.loso import loso_config
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.train.augment import AugmentConfig

    clf = load_classifier(tiny_model_path)
    tc = clf.meta["train_config"]
    cfg = loso_config(clf, epochs=2, steps=7)
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.patience) == (2, 7, 2)  # short schedule
    assert cfg.arch == tc["arch"] and cfg.seed == tc["seed"]
    assert cfg.width == tc.get("width")
    # A recipe of another width is rerun at its own width.
    wider = dataclasses.replace(clf, meta={**clf.meta, "train_config": {**tc, "width": 24}})
    assert (loso_config(wider, 2, 7).arch, loso_config(wider, 2, 7).width) == ("small", 24)
    assert cfg.preprocess == clf.preprocess
    assert cfg.augment == AugmentConfig.model_validate(tc["augment"])
    # A recipe with other augmentation is rerun with that augmentation, not the defaults.
    other = dataclasses.replace(
        clf,
        meta={**clf.meta, "train_config": {**tc, "augment": {"p_jpeg": 0, "p_blur": 0.1}}},
    )
    assert loso_config(other, 2, 7).augment == AugmentConfig(p_jpeg=0.0, p_blur=0.1)


def test_a_loso_run_on_the_full_schedule_is_kept_apart_from_the_short_one(tiny_model_path):
    import dataclasses

    from cxrlib.evaluate.loso import loso_section
    from cxrlib.infer.classifier import load_classifier

    clf = load_classifier(tiny_model_path)
    ran = dataclasses.replace(clf, meta={**clf.meta, "epochs_run": 14})
    assert loso_section(ran, epochs=3, steps=120) == "loso"  # the short schedule
    assert loso_section(ran, epochs=14, steps=120) == "loso"  # shortened epochs
    assert loso_section(ran, epochs=3, steps=0) == "loso"  # whole epochs, too few
    assert loso_section(ran, epochs=14, steps=0) == "loso_full"
    # Without a record of the epochs run, the recipe's own epochs decide.
    tc = {**clf.meta["train_config"], "epochs": 6}
    older = {k: v for k, v in clf.meta.items() if k != "epochs_run"}
    recipe = dataclasses.replace(clf, meta={**older, "train_config": tc})
    assert loso_section(recipe, epochs=5, steps=0) == "loso"
    assert loso_section(recipe, epochs=6, steps=0) == "loso_full"


def test_leave_one_source_out_scores_only_the_held_out_source(tiny_manifest, cxr_dir, monkeypatch):
    import pandas as pd

    import cxrlib.train.data
    from cxrlib.infer.views import DEFAULT_VIEWS

    cfg = TrainConfig(
        arch="small",
        epochs=1,
        steps_per_epoch=1,
        batch_size=4,
        preprocess=PreprocessConfig(size=64),
    )
    read = []  # (files, views) of every batch of images the audit reads and scores
    real = cxrlib.train.data.file_view_logits

    def spy(clf, files, views=(), *args, **kwargs):
        read.append((tuple(files), tuple(views)))
        return real(clf, files, views, *args, **kwargs)

    monkeypatch.setattr(cxrlib.train.data, "file_view_logits", spy)
    views = DEFAULT_VIEWS[:2]
    res = leave_one_source_out(tiny_manifest, cfg, ["cxnet"], root=cxr_dir, views=views)
    m = pd.read_csv(tiny_manifest)
    n_held = int((m.source == "cxnet").sum())
    held = res["sources"]["cxnet"]
    assert held["n"] == n_held
    assert set(held["per_class_accuracy"]) == set(m[m.source == "cxnet"].label)
    assert held["support"] == m[m.source == "cxnet"].label.value_counts().to_dict()
    assert 0.0 <= held["accuracy"] <= 1.0
    assert res["schedule"]["epochs"] == 1
    # The held-out source is read once, with the views, and only it gets them.
    held_files = [f for f, _ in read if any("/cxnet/" in x for x in f)]
    assert len(held_files) == 1 and len(held_files[0]) == n_held
    assert [v for _, v in read if v] == [views]
    assert not any("/cxnet/" in x for f, v in read if not v for x in f)
    assert held["with_views"]["n"] == n_held
    # The tiny manifest has no test split: no internal figure, rather than a mean of nothing.
    assert "test" not in set(m.split) and held["internal_test_balanced_accuracy"] is None

"""cxrlib.evaluate.cli: metrics checked against numbers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlib.evaluate.cli import compute_metrics, expected_calibration_error, format_table, main

CLASSES = ("covid", "normal", "pneumonia")


def _probs(pred: list[int], conf: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), 3), (1 - conf) / 2)
    p[np.arange(len(pred)), pred] = conf
    return p


def test_hand_computed_confusion_and_rates():
    # true:  c c c n n n p p   (c=0, n=1, p=2)
    # pred:  c c n n n c p n
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = [0, 0, 1, 1, 1, 0, 2, 1]
    res = compute_metrics(y, _probs(pred), CLASSES, n_boot=0, curves=False)
    assert res["confusion_matrix"]["matrix"] == [[2, 1, 0], [1, 2, 0], [0, 1, 1]]
    assert res["n"] == 8
    assert res["accuracy"] == pytest.approx(5 / 8, abs=1e-4)
    # per-class recall 2/3, 2/3, 1/2 -> balanced accuracy 11/18
    assert res["balanced_accuracy"] == pytest.approx(11 / 18, abs=1e-4)
    covid = res["per_class"]["covid"]
    # covid: TP 2, FN 1, FP 1, TN 4
    assert covid["sensitivity"] == pytest.approx(2 / 3, abs=1e-4)
    assert covid["specificity"] == pytest.approx(4 / 5, abs=1e-4)
    assert covid["ppv"] == pytest.approx(2 / 3, abs=1e-4)
    assert covid["npv"] == pytest.approx(4 / 5, abs=1e-4)
    assert covid["f1"] == pytest.approx(2 / 3, abs=1e-4)
    pneu = res["per_class"]["pneumonia"]
    # pneumonia: TP 1, FN 1, FP 0, TN 6
    assert pneu["ppv"] == pytest.approx(1.0)
    assert pneu["npv"] == pytest.approx(6 / 7, abs=1e-4)
    # F1s: covid 2/3, normal 2*2/(4+2+1)=4/7, pneumonia 2/3
    assert res["macro_f1"] == pytest.approx((2 / 3 + 4 / 7 + 2 / 3) / 3, abs=1e-4)


def test_brier_and_ece_by_hand():
    y = np.array([0, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
    res = compute_metrics(y, p, CLASSES, n_boot=0, curves=False)
    brier = ((0.1**2 + 0.05**2 + 0.05**2) + (0.6**2 + 0.7**2 + 0.1**2)) / 2
    assert res["brier"] == pytest.approx(brier, abs=1e-4)
    # two bins: conf 0.9 correct (gap 0.1), conf 0.6 wrong (gap 0.6) -> ECE 0.35
    ece, bins = expected_calibration_error(p, y)
    assert ece == pytest.approx(0.35)
    assert sum(b["count"] for b in bins) == 2


def test_subset_of_classes_and_undefined_values():
    # Only normal and pneumonia present: covid gets no per-class entry,
    # balanced accuracy averages over the two present classes.
    y = np.array([1, 1, 2, 2])
    p = _probs([1, 0, 2, 2])
    res = compute_metrics(y, p, CLASSES, n_boot=0)
    assert set(res["per_class"]) == {"normal", "pneumonia"}
    assert res["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    # A single-class manifest has no defined AUC or specificity.
    one = compute_metrics(np.array([2, 2]), _probs([2, 1]), CLASSES, n_boot=0)
    assert one["per_class"]["pneumonia"]["auc"] is None
    assert one["per_class"]["pneumonia"]["specificity"] is None


def test_auc_and_curves_perfect_ranking():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.7, 0.2, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.6, 0.2],
            [0.1, 0.1, 0.8],
            [0.3, 0.1, 0.6],
        ]
    )
    res = compute_metrics(y, p, CLASSES, n_boot=50)
    assert all(m["auc"] == 1.0 for m in res["per_class"].values())
    roc = res["curves"]["covid"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    lo, hi = res["ci95"]["accuracy"]
    assert lo <= res["accuracy"] <= hi


def test_per_source_accuracy():
    y = np.array([0, 0, 1, 1])
    res = compute_metrics(y, _probs([0, 1, 1, 1]), CLASSES, sources=["a", "a", "b", "b"], n_boot=0)
    assert res["per_source"]["a"] == {"n": 2, "accuracy": 0.5, "per_class_accuracy": {"covid": 0.5}}
    assert res["per_source"]["b"]["accuracy"] == 1.0
    assert "per source" in format_table(res)


def _run_cli(tmp_path, model, cxr_dir, per_class: int, *extra: str):
    """Runs the CLI on the first ``per_class`` test images of each class; (rows, result)."""
    import pandas as pd

    m = pd.read_csv(cxr_dir / "manifest.csv")
    rows = pd.concat([m[(m.split == "test") & (m.label == c)].head(per_class) for c in CLASSES])
    csv = tmp_path / "m.csv"
    rows[["path", "label", "source", "split"]].to_csv(csv, index=False)
    out = tmp_path / "res.json"
    args = ["--model", str(model), "--manifest", str(csv), "--root", str(cxr_dir)]
    assert main([*args, "--json", str(out), "--bootstrap", "20", *extra]) == 0
    return rows, json.loads(out.read_text())


def test_cli_on_tiny_manifest_matches_direct_prediction(tmp_path, tiny_model_path, cxr_dir):
    from cxrlib.infer.classifier import load_classifier

    rows, res = _run_cli(tmp_path, tiny_model_path, cxr_dir, 3)
    assert res["n"] == 9 and len(res["predictions"]) == 9
    # The CLI's per-image probabilities are the classifier's own.
    from cxrlib.train.data import load_gray

    clf = load_classifier(tiny_model_path)
    direct = clf.predict([load_gray(cxr_dir / p) for p in rows["path"]])
    got = np.array([r["probs"] for r in res["predictions"]])
    np.testing.assert_allclose(got, direct, atol=1e-4)
    cm = np.array(res["confusion_matrix"]["matrix"])
    assert cm.sum() == 9 and cm.sum(axis=1).tolist() == [3, 3, 3]
    assert res["accuracy"] == pytest.approx(
        np.mean(direct.argmax(1) == np.repeat([0, 1, 2], 3)), abs=1e-4
    )


def test_cli_records_the_views_it_averaged(tmp_path, tiny_model_path, cxr_dir):
    from cxrlib.infer.diagnose import DEFAULT_VIEWS

    _, res = _run_cli(tmp_path, tiny_model_path, cxr_dir, 1, "--views")
    assert res["n"] == 3 and res["views"] == ["original"] + [v.name for v in DEFAULT_VIEWS]


def test_cli_methods_compares_every_method_on_a_stratified_sample(
    tmp_path, tiny_model_path, cxr_dir, capsys
):
    from cxrlib.infer.explain import METHODS

    _, res = _run_cli(tmp_path, tiny_model_path, cxr_dir, 2, "--methods", "--methods-images", "3")
    section = res["explain_methods"]
    assert section["n"] == 3 and section["methods"] == list(METHODS)
    assert "--methods" in section["command"] and section["split"] is None
    assert "n" not in res  # the standalone audit does not score the manifest again
    assert "heatmap methods on 3 images" in capsys.readouterr().out


def test_view_average_is_the_apps_prediction(tmp_path):
    import cv2
    from blobs import blob_image, blob_model

    from cxrlib.infer.diagnose import DEFAULT_VIEWS, diagnose
    from cxrlib.evaluate.cli import predict_files
    from cxrlib.infer.classifier import Classifier, softmax

    # A purpose-trained model (class 1 = a bright blob) whose outputs the views do move.
    meta = {"preprocess": {"size": 64, "contrast": "none"}, "temperature": 2.0}
    clf = Classifier(blob_model(), meta)
    names = [v.name for v in DEFAULT_VIEWS]
    averaging = Classifier(
        clf.model, {**meta, "test_time_views": {"views": names, "temperature": 1.5}}
    )
    rng = np.random.default_rng(3)
    grays = [blob_image(rng, (8, 8)), blob_image(rng, (56, 30)), blob_image(rng, None)]
    files = []
    for k, g in enumerate(grays):
        files.append(str(tmp_path / f"{k}.png"))
        cv2.imwrite(files[-1], g)
    # The app's per-view logits (up to a constant per image), from its own diagnosis.
    z = np.stack([np.log(diagnose(clf, g).view_probabilities) * 2.0 for g in grays])
    # A model that averages: its own prediction, the app's, at its own temperature.
    own = predict_files(averaging, files)
    np.testing.assert_allclose(own, softmax(z.mean(axis=1) / 1.5), atol=1e-4)
    np.testing.assert_allclose(
        own, np.stack([diagnose(averaging, g).probabilities for g in grays]), atol=1e-5
    )
    np.testing.assert_allclose(
        predict_files(averaging, files, views=()), softmax(z[:, 0] / 2.0), atol=1e-4
    )
    # Views asked of a model without them: the same average at the model's temperature.
    got = predict_files(clf, files, views=DEFAULT_VIEWS)
    np.testing.assert_allclose(got, softmax(z.mean(axis=1) / 2.0), atol=1e-4)
    single = predict_files(clf, files)
    np.testing.assert_allclose(single, clf.predict(grays), atol=1e-5)
    assert np.abs(got - single).max() > 1e-3  # the average is not the single view


def test_cli_follows_the_models_views_unless_told(tmp_path, tiny_model_path, cxr_dir):
    import json
    import shutil

    from cxrlib.infer.diagnose import DEFAULT_VIEWS
    from cxrlib.infer.classifier import load_classifier, softmax

    model = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, model)
    meta = json.loads(tiny_model_path.with_suffix(".json").read_text())
    names = [v.name for v in DEFAULT_VIEWS[:3]]
    meta["test_time_views"] = {"views": names, "temperature": 0.5}
    model.with_suffix(".json").write_text(json.dumps(meta))
    rows, own = _run_cli(tmp_path, model, cxr_dir, 1)
    _, single = _run_cli(tmp_path, model, cxr_dir, 1, "--single-view")
    assert own["views"] == ["original"] + names and "views" not in single
    clf = load_classifier(model)
    from cxrlib.train.data import load_gray

    grays = [load_gray(cxr_dir / p) for p in rows["path"]]
    got = np.array([r["probs"] for r in own["predictions"]])
    np.testing.assert_allclose(got, clf.predict(grays), atol=1e-4)
    one = np.array([r["probs"] for r in single["predictions"]])
    z = clf.view_logits(grays)[:, 0]  # no views asked: the original only
    np.testing.assert_allclose(one, softmax(z / clf.temperature), atol=1e-4)
    assert np.abs(got - one).max() > 1e-4


def test_leave_one_source_out_reruns_the_models_own_recipe(tiny_model_path):
    import dataclasses

    from cxrlib.train.augment import AugmentConfig
    from cxrlib.evaluate.cli import loso_config
    from cxrlib.infer.classifier import load_classifier

    clf = load_classifier(tiny_model_path)
    tc = clf.meta["train_config"]
    cfg = loso_config(clf, epochs=2, steps=7)
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.patience) == (2, 7, 2)  # short schedule
    assert cfg.arch == tc["arch"] and cfg.seed == tc["seed"]
    assert cfg.width == tc.get("width")
    # A ResNet recipe is rerun at its own width.
    resnet = dataclasses.replace(
        clf, meta={**clf.meta, "train_config": {**tc, "arch": "resnet", "width": 24}}
    )
    assert (loso_config(resnet, 2, 7).arch, loso_config(resnet, 2, 7).width) == ("resnet", 24)
    assert cfg.preprocess == clf.preprocess
    assert cfg.augment == AugmentConfig.from_dict(tc["augment"])
    # A recipe with other augmentation is rerun with that augmentation, not the defaults.
    other = dataclasses.replace(
        clf,
        meta={**clf.meta, "train_config": {**tc, "augment": {"p_jpeg": 0, "p_erase_lungs": 0.1}}},
    )
    assert loso_config(other, 2, 7).augment == AugmentConfig(p_jpeg=0.0, p_erase_lungs=0.1)


def test_a_loso_run_on_the_full_schedule_is_kept_apart_from_the_short_one(tiny_model_path):
    import dataclasses

    from cxrlib.evaluate.cli import loso_section
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


def test_a_recorded_loso_run_adds_its_sources_to_the_same_schedule():
    from cxrlib.evaluate.cli import merge_loso

    full = {"epochs": 14, "steps_per_epoch": 0}
    old = {"schedule": full, "sources": {"nih": {"accuracy": 0.35}}, "command": "run nih"}
    new = {"schedule": full, "sources": {"kermany": {"accuracy": 0.5}}, "command": "run kermany"}
    merged = merge_loso(old, new)
    assert merged["sources"] == {"nih": {"accuracy": 0.35}, "kermany": {"accuracy": 0.5}}
    assert merged["commands"] == ["run nih", "run kermany"] and merged["command"] == "run kermany"
    # A source run again takes the new result; the commands keep growing.
    again = merge_loso(merged, {**new, "sources": {"nih": {"accuracy": 0.4}}, "command": "again"})
    assert again["sources"]["nih"] == {"accuracy": 0.4} and "kermany" in again["sources"]
    assert again["commands"] == ["run nih", "run kermany", "again"]
    # Another schedule is another experiment: it replaces the section.
    short = {**new, "schedule": {"epochs": 3, "steps_per_epoch": 120}}
    assert merge_loso(old, short) == short
    assert merge_loso(None, new) == new


def test_cli_records_an_alternative_beside_the_committed_metrics(
    tmp_path, tiny_model_path, cxr_dir
):
    from cxrlib.infer.classifier import load_classifier

    metrics = tmp_path / "committed.metrics.json"
    metrics.write_text(json.dumps({"weights_sha256": "committed", "splits": {"test": {"n": 1}}}))
    _, res = _run_cli(
        tmp_path, tiny_model_path, cxr_dir, 1, "--split", "test", "--ablate",
        "--record-alternative", "tiny whole image", "--record-into", str(metrics),
    )  # fmt: skip
    out = json.loads(metrics.read_text())
    # The committed model's own figures stay; the alternative sits beside them.
    assert out["weights_sha256"] == "committed" and out["splits"] == {"test": {"n": 1}}
    alt = out["alternatives"]["tiny whole image"]
    assert alt["weights_sha256"] == load_classifier(tiny_model_path).weights_sha256
    assert alt["split"] == "test" and alt["n"] == res["n"] == 3
    assert alt["balanced_accuracy"] == res["balanced_accuracy"]
    assert alt["covid_sensitivity"] == res["per_class"]["covid"]["sensitivity"]
    erased = res["ablation"]["lungs_erased"]
    assert alt["lungs_erased"] == {
        "balanced_accuracy": erased["balanced_accuracy"],
        "covid_auc": erased["auc"]["covid"],
    }
    assert alt["preprocess"]["size"] == 64 and alt["train_config"]["arch"] == "small"
    assert alt["keras_backend"] == "tensorflow"  # trained by the fixture, here
    assert "--record-alternative" in alt["command"]
    # The committed model is no alternative to itself.
    metrics.write_text(json.dumps({"weights_sha256": alt["weights_sha256"]}))
    args = ["--model", str(tiny_model_path), "--manifest", str(tmp_path / "m.csv")]
    args += ["--root", str(cxr_dir), "--ablate", "--bootstrap", "0"]
    assert main([*args, "--record-alternative", "self", "--record-into", str(metrics)]) == 2
    assert "alternatives" not in json.loads(metrics.read_text())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--record-alternative", "x"], "needs --ablate"),
        (["--record-alternative", "x", "--ablate", "--external", "d"], "one thing at a time"),
        (["--record-alternative", "x", "--ablate", "--record-into", "/nonexistent/m.json"], "does not exist"),
    ],
)  # fmt: skip
def test_cli_refuses_an_alternative_it_cannot_record(extra, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--manifest", "unused.csv", *extra])
    assert e.value.code == 2 and message in capsys.readouterr().err


def _tiny_lung_set(tmp_path, cxr_dir, n: int):
    """A lung-set folder whose manifest lists ``n`` real chest X-rays as OpenIST's,
    all in the segmenter's training split."""
    import cv2
    import pandas as pd

    from cxrlib.train.data import load_gray

    m = pd.read_csv(cxr_dir / "manifest.csv")
    lungs = tmp_path / "lungs"
    (lungs / "images").mkdir(parents=True)
    rows = []
    for i, p in enumerate(m[m.split == "test"].path.head(n)):
        cv2.imwrite(str(lungs / "images" / f"{i}.png"), load_gray(cxr_dir / p))
        rows.append({"image": f"images/{i}.png", "source": "openist_normal", "split": "train"})
    pd.DataFrame(rows).to_csv(lungs / "manifest.csv", index=False)
    return lungs


def test_cli_records_the_external_check_beside_the_committed_metrics(
    tmp_path, tiny_model_path, cxr_dir, capsys
):
    """``--external`` scores the lung set's outside collection and ``--record`` keeps it."""
    import shutil

    import pandas as pd

    lungs = _tiny_lung_set(tmp_path, cxr_dir, 3)
    model = tmp_path / "model.keras"
    for suffix in (".keras", ".json"):
        shutil.copyfile(tiny_model_path.with_suffix(suffix), model.with_suffix(suffix))
    # Its "training data": a manifest that holds the second external image itself.
    m = pd.read_csv(cxr_dir / "manifest.csv")
    train = m[m.split == "train"].head(2)[["path", "label"]]
    train.loc[len(train)] = [str(lungs / "images" / "1.png"), "normal"]
    train.to_csv(tmp_path / "train.csv", index=False)
    args = [
        "--model",
        str(model),
        "--manifest",
        str(tmp_path / "train.csv"),
        "--root",
        str(cxr_dir),
    ]
    assert main([*args, "--external", str(lungs), "--record"]) == 0
    out = capsys.readouterr().out
    assert "openist_normal (OpenIST, all normal): 3 images" in out
    assert "1 duplicates of a training-source image" in out
    saved = json.loads(model.with_suffix(".metrics.json").read_text())
    rec = saved["external"]["collections"]["openist_normal"]
    assert rec["n"] == 3 and sum(rec["subsets"]["all"]["called"].values()) == 3
    assert rec["subsets"]["segmenter_unseen"]["n"] == 0  # all three in the segmenter's training
    assert len(rec["predictions"]) == 3
    assert "--external" in saved["external"]["command"]
    assert "splits" not in saved  # the manifest itself was not scored


def test_cli_adds_the_external_check_to_a_recorded_alternative(
    tmp_path, tiny_model_path, cxr_dir, capsys
):
    from cxrlib.infer.classifier import load_classifier

    lungs = _tiny_lung_set(tmp_path, cxr_dir, 2)
    sha = load_classifier(tiny_model_path).weights_sha256
    metrics = tmp_path / "committed.metrics.json"
    before = {
        "weights_sha256": "committed",
        "alternatives": {"tiny": {"weights_sha256": sha, "n": 9}},
    }
    metrics.write_text(json.dumps(before))
    import pandas as pd

    pd.read_csv(cxr_dir / "manifest.csv").head(3).to_csv(tmp_path / "m.csv", index=False)
    args = ["--model", str(tiny_model_path), "--manifest", str(tmp_path / "m.csv")]
    args += ["--root", str(cxr_dir), "--external", str(lungs), "--record-into", str(metrics)]
    # An alternative not recorded for these weights is refused before any scoring.
    assert main([*args, "--record-alternative", "other"]) == 2
    assert "no alternative 'other'" in capsys.readouterr().err
    assert json.loads(metrics.read_text()) == before
    assert main([*args, "--record-alternative", "tiny"]) == 0
    alt = json.loads(metrics.read_text())["alternatives"]["tiny"]
    assert alt["n"] == 9  # what was recorded stays
    rec = alt["external"]["collections"]["openist_normal"]
    assert rec["subsets"]["all"]["n"] == 2 and "predictions" not in rec
    assert "--record-alternative tiny" in alt["external"]["command"]

"""python -m cxrlib.evaluate end to end on tiny manifests: what each subcommand prints,
writes and records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlib.evaluate.cli import main

CLASSES = ("covid", "normal", "pneumonia")


def _run_cli(tmp_path, model, cxr_dir, per_class: int, *extra: str, sub: str = "metrics"):
    """Runs subcommand ``sub`` on the first ``per_class`` test images of each class;
    (rows, result)."""
    import pandas as pd

    m = pd.read_csv(cxr_dir / "manifest.csv")
    rows = pd.concat([m[(m.split == "test") & (m.label == c)].head(per_class) for c in CLASSES])
    csv = tmp_path / "m.csv"
    rows[["path", "label", "source", "split"]].to_csv(csv, index=False)
    out = tmp_path / "res.json"
    args = ["--model", str(model), "--manifest", str(csv), "--root", str(cxr_dir)]
    boot = ["--bootstrap", "20"] if sub in ("metrics", "audit") else []
    assert main([sub, *args, "--json", str(out), *boot, *extra]) == 0
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
    from cxrlib.infer.views import DEFAULT_VIEWS

    _, res = _run_cli(tmp_path, tiny_model_path, cxr_dir, 1, "--views")
    assert res["n"] == 3 and res["views"] == ["original"] + [v.name for v in DEFAULT_VIEWS]


def test_cli_methods_compares_every_method_on_a_stratified_sample(
    tmp_path, tiny_model_path, cxr_dir, capsys
):
    from cxrlib.core.methods import METHODS

    _, res = _run_cli(tmp_path, tiny_model_path, cxr_dir, 2, "--images", "3", sub="methods")
    section = res["explain_methods"]
    assert section["n"] == 3 and section["methods"] == list(METHODS)
    assert section["command"].startswith("python -m cxrlib.evaluate methods ")
    assert "--images 3" in section["command"] and section["split"] is None
    assert "n" not in res  # the standalone audit does not score the manifest again
    assert "heatmap methods on 3 images" in capsys.readouterr().out


def test_cli_follows_the_models_views_unless_told(tmp_path, tiny_model_path, cxr_dir):
    import json
    import shutil

    from cxrlib.infer.classifier import load_classifier, softmax
    from cxrlib.infer.views import DEFAULT_VIEWS

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


def test_cli_records_an_alternative_beside_the_committed_metrics(
    tmp_path, tiny_model_path, cxr_dir
):
    from cxrlib.infer.classifier import load_classifier

    metrics = tmp_path / "committed.metrics.json"
    metrics.write_text(json.dumps({"weights_sha256": "committed", "splits": {"test": {"n": 1}}}))
    _, res = _run_cli(
        tmp_path, tiny_model_path, cxr_dir, 1, "--split", "test", "--ablate",
        "--record-alternative", "tiny whole image", "--record-into", str(metrics), sub="audit",
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
    assert alt["command"].startswith("python -m cxrlib.evaluate audit ")
    assert "--record-alternative" in alt["command"]
    # The committed model is no alternative to itself.
    metrics.write_text(json.dumps({"weights_sha256": alt["weights_sha256"]}))
    args = ["--model", str(tiny_model_path), "--manifest", str(tmp_path / "m.csv")]
    args += ["--root", str(cxr_dir), "--ablate", "--bootstrap", "0"]
    assert (
        main(["audit", *args, "--record-alternative", "self", "--record-into", str(metrics)]) == 2
    )
    assert "alternatives" not in json.loads(metrics.read_text())


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
    assert main(["external", *args, str(lungs), "--record"]) == 0
    out = capsys.readouterr().out
    assert "openist_normal (OpenIST, all normal): 3 images" in out
    assert "1 duplicates of a training-source image" in out
    saved = json.loads(model.with_suffix(".metrics.json").read_text())
    rec = saved["external"]["collections"]["openist_normal"]
    assert rec["n"] == 3 and sum(rec["subsets"]["all"]["called"].values()) == 3
    assert rec["subsets"]["segmenter_unseen"]["n"] == 0  # all three in the segmenter's training
    assert len(rec["predictions"]) == 3
    assert saved["external"]["command"].startswith("python -m cxrlib.evaluate external ")
    assert f"external --model {model}" in saved["external"]["command"]
    assert f"{lungs} --record" in saved["external"]["command"]
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
        "alternatives": {
            "tiny": {
                "weights_sha256": sha,
                "n": 9,
                "balanced_accuracy": 0.5,
                "lungs_erased": {"balanced_accuracy": 0.4},
            }
        },
    }
    metrics.write_text(json.dumps(before))
    import pandas as pd

    pd.read_csv(cxr_dir / "manifest.csv").head(3).to_csv(tmp_path / "m.csv", index=False)
    args = ["--model", str(tiny_model_path), "--manifest", str(tmp_path / "m.csv")]
    args = ["external", *args, "--root", str(cxr_dir), str(lungs)]
    args += ["--record-into", str(metrics)]
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

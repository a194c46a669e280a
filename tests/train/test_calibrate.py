"""cxrlib.train.calibrate: BatchNorm statistics become the plain average over the given images."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cxrlib.infer.classifier import load_classifier
from cxrlib.train.architectures import build_classifier
from cxrlib.train.calibrate import calibrate, recalibrate_batchnorm


def test_moving_mean_equals_mean_of_first_conv_activations():
    model = build_classifier(size=32, arch="small", seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (48, 32, 32, 1)).astype(np.float32)
    conv = keras.Model(model.inputs, model.get_layer("b0_conv").output)
    acts = conv.predict(images, verbose=0)
    n = recalibrate_batchnorm(model, images, batch_size=16)
    assert n == 3
    bn = model.get_layer("b0_bn")
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), acts.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4
    )
    # Equal batches: the average of batch variances (Keras uses the biased batch variance).
    batch_vars = [acts[i : i + 16].var(axis=(0, 1, 2)) for i in range(0, 48, 16)]
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), np.mean(batch_vars, 0), rtol=1e-3, atol=1e-4
    )
    assert bn.momentum == 0.95  # restored


def _copy_model_and_data(tiny_model_path, tiny_manifest, cxr_dir, tmp_path):
    """A writable copy of the tiny model and a data folder with the tiny manifest."""
    import shutil

    model = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to(cxr_dir / "images")
    shutil.copy(tiny_manifest, data / "manifest.csv")
    return model, data


def test_calibrate_saves_only_when_validation_holds(
    tiny_model_path, tiny_manifest, cxr_dir, tmp_path
):
    model, data = _copy_model_and_data(tiny_model_path, tiny_manifest, cxr_dir, tmp_path)
    before = model.read_bytes()
    # Test-time averaging fitted to these weights' logits.
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["test_time_views"] = {"views": ["darker"], "temperature": 1.1}
    model.with_suffix(".json").write_text(json.dumps(meta))
    rep = calibrate(model, data, n_images=12, command="test")
    assert rep["bn_images"] == 12 and rep["temperature_after"] > 0
    meta = json.loads(model.with_suffix(".json").read_text())
    if rep["kept"]:
        assert (
            meta["post_training"]["val_macro_f1_after"]
            >= meta["post_training"]["val_macro_f1_before"]
        )
        assert meta["temperature"] == rep["temperature_after"]
        # New BN statistics move the logits: the view temperature would be stale.
        assert "test_time_views" not in meta
        load_classifier(model)  # the new weights hash matches the new file
    else:
        assert model.read_bytes() == before and "post_training" not in meta
        assert meta["test_time_views"]["temperature"] == 1.1


def test_view_temperature_is_fitted_on_val_and_only_the_json_changes(
    tiny_model_path, tiny_manifest, cxr_dir, tmp_path, monkeypatch
):
    import pandas as pd

    import cxrlib.train.calibrate
    from cxrlib.infer.views import DEFAULT_VIEWS
    from cxrlib.train.calibrate import fit_view_temperature
    from cxrlib.train.scoring import fit_temperature

    model, data = _copy_model_and_data(tiny_model_path, tiny_manifest, cxr_dir, tmp_path)
    weights = model.read_bytes()
    read = []
    real = cxrlib.train.calibrate.file_view_logits

    def spy(clf, files, views=(), *args, **kwargs):
        read.append(list(files))
        out = real(clf, files, views, *args, **kwargs)
        read.append(out)
        return out

    monkeypatch.setattr(cxrlib.train.calibrate, "file_view_logits", spy)
    views = DEFAULT_VIEWS[:4]
    rec = fit_view_temperature(model, data, views, command="test")
    files, z = read
    m = pd.read_csv(data / "manifest.csv")
    val = m[m.split == "val"]
    assert [f.split("/images/")[-1] for f in files] == [p.split("images/")[-1] for p in val.path]
    assert z.shape == (len(val), 1 + len(views), 3)
    y = val.label.map({"covid": 0, "normal": 1, "pneumonia": 2}).to_numpy()
    assert rec["temperature"] == pytest.approx(fit_temperature(z.mean(axis=1), y), rel=1e-6)
    assert rec["views"] == [v.name for v in views] and rec["n_val"] == len(val)
    assert model.read_bytes() == weights  # the weights and their hash are untouched
    clf = load_classifier(model)
    assert clf.views == views and clf.view_temperature == rec["temperature"]
    assert clf.meta["test_time_views"]["command"] == "test"

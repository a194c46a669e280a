"""cxrlib.calibrate: BatchNorm statistics become the plain average over the given images."""

from __future__ import annotations

import json

import keras
import numpy as np

from cxrlib.calibrate import calibrate, recalibrate_batchnorm
from cxrlib.model import build_classifier, load_classifier


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


def test_calibrate_saves_only_when_validation_holds(
    tiny_model_path, tiny_manifest, cxr_dir, tmp_path
):
    import shutil

    model = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    before = model.read_bytes()
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to(cxr_dir / "images")
    shutil.copy(tiny_manifest, data / "manifest.csv")
    rep = calibrate(model, data, n_images=12, command="test", log=lambda *_: None)
    assert rep["bn_images"] == 12 and rep["temperature_after"] > 0
    meta = json.loads(model.with_suffix(".json").read_text())
    if rep["kept"]:
        assert (
            meta["post_training"]["val_macro_f1_after"]
            >= meta["post_training"]["val_macro_f1_before"]
        )
        assert meta["temperature"] == rep["temperature_after"]
        load_classifier(model)  # the new weights hash matches the new file
    else:
        assert model.read_bytes() == before and "post_training" not in meta

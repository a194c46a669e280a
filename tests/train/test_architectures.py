"""cxrlib.train.architectures: the flat classifier and the lung U-Net; saving a trained classifier."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cxrlib.infer.classifier import CLASS_NAMES, load_classifier
from cxrlib.infer.lungs import CONVENTIONS
from cxrlib.train.architectures import ARCHITECTURES, build_classifier, build_unet
from cxrlib.train.classifier import save_classifier


@pytest.mark.parametrize("arch,size,grid", [("small", 64, 8), ("mobilenetv2", 96, 6)])
def test_flat_model_with_named_layers(arch, size, grid):
    m = build_classifier(size=size, arch=arch, alpha=0.35)
    assert m.input_shape == (None, size, size, 1)
    assert m.output_shape == (None, len(CLASS_NAMES))
    assert m.get_layer("last_conv").output.shape[1:3] == (grid, grid)
    # Flat: no layer is itself a model (tf-keras-vis cannot see into nested ones).
    assert not any(hasattr(layer, "layers") for layer in m.layers)
    bns = [la for la in m.layers if la.__class__.__name__ == "BatchNormalization"]
    assert bns and all(la.momentum == 0.95 for la in bns)


def test_every_architecture_builds_and_an_unknown_one_is_refused():
    for arch in ARCHITECTURES:
        assert build_classifier(size=32, arch=arch, alpha=0.35).output_shape == (None, 3)
    with pytest.raises(ValueError, match="unknown arch"):
        build_classifier(size=32, arch="vgg")


def test_saved_classifier_leaves_the_training_state_behind(tmp_path):
    import zipfile

    m = build_classifier(64, "small", seed=3)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(2).integers(0, 255, (4, 64, 64, 1)).astype(np.float32)
    m.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    m.save(tmp_path / "with_optimizer.keras")
    path = save_classifier(m, {"preprocess": {"size": 64}}, tmp_path / "clf.keras")
    with zipfile.ZipFile(path) as z:
        assert not json.loads(z.read("config.json")).get("compile_config")
    assert path.stat().st_size < (tmp_path / "with_optimizer.keras").stat().st_size
    clf = load_classifier(path)
    assert [la.name for la in clf.model.layers] == [la.name for la in m.layers]
    np.testing.assert_allclose(clf.model.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)


def test_unet_builds_and_round_trips(tmp_path: Path) -> None:
    model = build_unet(size=32, base_filters=4, depth=3)
    assert model.input_shape == (None, 32, 32, 1)
    assert model.output_shape == (None, 32, 32, len(CONVENTIONS))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert np.all((y >= 0) & (y <= 1))
    path = tmp_path / "unet.keras"
    model.save(path)
    again = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(again(x, training=False).numpy(), y, atol=1e-6)


def test_unet_rejects_indivisible_size() -> None:
    with pytest.raises(ValueError):
        build_unet(size=100, depth=4)

"""cxrlib.model: building, saving, loading and calling the classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlib.model import (
    CLASS_NAMES,
    Classifier,
    ModelError,
    build_classifier,
    load_classifier,
    save_classifier,
)


@pytest.mark.parametrize(
    "arch,size,grid", [("small", 64, 8), ("mobilenetv2", 96, 6), ("resnet", 96, 6)]
)
def test_flat_model_with_named_layers(arch, size, grid):
    m = build_classifier(size=size, arch=arch, alpha=0.35)
    assert m.input_shape == (None, size, size, 1)
    assert m.output_shape == (None, len(CLASS_NAMES))
    assert m.get_layer("last_conv").output.shape[1:3] == (grid, grid)
    # Flat: no layer is itself a model (tf-keras-vis cannot see into nested ones).
    assert not any(hasattr(layer, "layers") for layer in m.layers)
    bns = [la for la in m.layers if la.__class__.__name__ == "BatchNormalization"]
    assert bns and all(la.momentum == 0.95 for la in bns)


def test_save_load_round_trip_and_calibrated_probabilities(tmp_path):
    m = build_classifier(size=64, arch="small", seed=1)
    meta = {"preprocess": {"size": 64, "contrast": "none"}, "temperature": 2.0}
    path = save_classifier(m, meta, tmp_path / "clf.keras")
    clf = load_classifier(path)
    saved = json.loads(path.with_suffix(".json").read_text())
    assert len(saved["weights_sha256"]) == 64 and clf.weights_sha256 == saved["weights_sha256"]
    x = np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(np.uint8)
    np.testing.assert_allclose(clf.logits(x), Classifier(m, meta).logits(x), atol=1e-5)
    p1 = clf.probabilities(x, calibrated=False)
    np.testing.assert_allclose(p1, m.predict(x[..., None].astype("float32"), verbose=0), atol=1e-5)
    p2 = clf.probabilities(x)
    # Temperature 2 flattens the distribution but keeps the ranking.
    assert np.all(p2.max(1) <= p1.max(1) + 1e-6)
    assert np.array_equal(p2.argmax(1), p1.argmax(1))
    probs = clf.predict([np.zeros((300, 250), np.uint8), np.full((100, 400), 90, np.uint8)])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_tampered_or_missing_model_raises(tmp_path):
    with pytest.raises(ModelError):
        load_classifier(tmp_path / "absent.keras")
    path = save_classifier(
        build_classifier(64, "small"), {"preprocess": {"size": 64}}, tmp_path / "m.keras"
    )
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["weights_sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="hash"):
        load_classifier(path)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        load_classifier(tmp_path / "junk.keras")


def test_input_size_must_match_json():
    with pytest.raises(ModelError):
        Classifier(build_classifier(64, "small"), {"preprocess": {"size": 96}})

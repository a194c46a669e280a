"""cxrlib.train.adversary: the gradient reversal, the training model, and training through it."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cxrlib.infer.classifier import load_classifier
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.adversary import (
    SOURCE_OUTPUT,
    GradientReversal,
    source_codes,
    with_source_adversary,
)
from cxrlib.train.architectures import build_classifier
from cxrlib.train.augment import AugmentConfig
from cxrlib.train.batches import AugmentedBatches
from cxrlib.train.cli import config_from_args, main, parse_args
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import sampling_weights


@pytest.mark.parametrize("strength", [0.1, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_flips_the_gradient(strength) -> None:
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 6)), tf.float32)
    w = tf.constant(np.random.default_rng(1).normal(size=(4, 6)), tf.float32)
    layer = GradientReversal(strength)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * w)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -strength * w.numpy(), atol=1e-5)
    assert GradientReversal.from_config(layer.get_config()).strength == strength


def test_the_training_model_shares_the_classifier_and_adds_only_the_adversary() -> None:
    clf = build_classifier(32, "small", width=4, seed=0)
    fitted = with_source_adversary(clf, n_sources=5, strength=0.3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype(np.float32)
    given = np.eye(3, dtype=np.float32)[[0, 2]]
    probs, source = fitted.predict([x, given], verbose=0)
    assert probs.shape == (2, 3) and source.shape == (2, 5)
    np.testing.assert_allclose(source.sum(1), 1, atol=1e-5)
    # The class output is the classifier's own: same layers, same answer.
    np.testing.assert_allclose(probs, clf.predict(x, verbose=0), atol=1e-5)
    shared = {id(layer) for layer in clf.layers}
    added = [layer.name for layer in fitted.layers if id(layer) not in shared]
    assert sorted(added) == sorted(
        ["given_class", "reverse_gradient", "adversary_in", "adversary_hidden", SOURCE_OUTPUT]
    )
    # The saved classifier stays flat and knows nothing of the adversary.
    assert SOURCE_OUTPUT not in {layer.name for layer in clf.layers}


def test_source_codes_are_stable_and_sorted() -> None:
    codes, names = source_codes(["nih", "kermany", "nih", "cxnet"])
    assert names == ["cxnet", "kermany", "nih"]
    assert codes.tolist() == [2, 1, 2, 0]


def test_batches_for_the_adversary_carry_each_image_source() -> None:
    # Each image's pixels say which source it is from, so the pairing can be checked.
    sources = np.array([0, 1, 2, 0, 1, 2] * 4)
    images = (sources[:, None, None] * 100 + np.zeros((24, 16, 16))).astype(np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2] * 4)
    off = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig)}
    cfg = TrainConfig(
        batch_size=64,
        adversary=0.2,
        augment=AugmentConfig(**off),
        preprocess=PreprocessConfig(size=16, contrast="none"),
    )
    probs = sampling_weights(labels, [str(s) for s in sources])
    x, y = AugmentedBatches(images, labels, probs, cfg, 1, sources=sources, n_sources=3)[0]
    assert set(x) == {"image", "given_class"} and set(y) == {"probs", SOURCE_OUTPUT}
    np.testing.assert_array_equal(x["given_class"], y["probs"])
    drawn = y[SOURCE_OUTPUT].argmax(1)
    np.testing.assert_array_equal(x["image"][:, 0, 0, 0] / 100, drawn)
    assert len(set(drawn.tolist())) == 3
    with pytest.raises(ValueError, match="source"):
        AugmentedBatches(images, labels, probs, cfg, 1)
    mixed = dataclasses.replace(cfg, augment=AugmentConfig(**{**off, "mixup": 0.2}))
    with pytest.raises(ValueError, match="mixup"):
        AugmentedBatches(images, labels, probs, mixed, 1, sources=sources, n_sources=3)


def test_training_with_the_adversary_moves_the_trunk_and_saves_a_plain_classifier(
    tiny_manifest, cxr_dir, tmp_path
) -> None:
    from cxrlib.evaluate.loso import loso_config

    assert config_from_args(parse_args([])).adversary == 0.0
    args = ["--data", str(cxr_dir), "--manifest", str(tiny_manifest), "--no-cache", "--quiet"]
    args += ["--arch", "small", "--size", "64", "--epochs", "1", "--steps-per-epoch", "2"]
    args += ["--batch-size", "6", "--no-lung-crop", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "adv"), "--adversary", "0.5"]) == 0
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    adv = load_classifier(tmp_path / "adv" / "cxr_classifier.keras")
    plain = load_classifier(tmp_path / "plain" / "cxr_classifier.keras")
    assert adv.meta["train_config"]["adversary"] == 0.5
    assert adv.meta["adversary_sources"] == sorted(set(adv.meta["adversary_sources"]))
    assert len(adv.meta["adversary_sources"]) >= 2
    assert "adversary_sources" not in plain.meta
    # The history keeps the classifier's own training accuracy, not the adversary's.
    assert 0 <= adv.meta["history"]["accuracy"][0] <= 1
    # Same seed, same batches: only the adversary's reversed gradient tells the trunks apart.
    assert [layer.name for layer in adv.model.layers] == [
        layer.name for layer in plain.model.layers
    ]
    trunk = adv.model.get_layer("b0_conv").get_weights()[0]
    assert not np.allclose(trunk, plain.model.get_layer("b0_conv").get_weights()[0])
    assert np.isfinite(adv.predict([np.full((300, 200), 128, np.uint8)])).all()
    assert loso_config(adv, 2, 7).adversary == 0.5
    assert loso_config(plain, 2, 7).adversary == 0.0
    assert isinstance(adv.model, keras.Model)

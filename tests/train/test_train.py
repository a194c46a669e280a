"""cxrlib.train.classifier and its command line: the real training function on a handful of images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrlib.infer.classifier import load_classifier
from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.augment import AugmentConfig
from cxrlib.train.classifier import AugmentedBatches
from cxrlib.train.cli import main
from cxrlib.train.config import TrainConfig
from cxrlib.train.data import sampling_weights
from cxrlib.train.scoring import fit_temperature, macro_f1


def test_one_step_training_writes_model_and_metadata(tiny_model_path, tiny_manifest):
    meta = json.loads(tiny_model_path.with_suffix(".json").read_text())
    assert meta["class_names"] == ["covid", "normal", "pneumonia"]
    assert meta["input_size"] == 64 and meta["preprocess"]["size"] == 64
    assert meta["seed"] == 0 and meta["temperature"] > 0
    assert len(meta["manifest_sha256"]) == 64
    # Which backend trained it is recorded: the GPU path's JAX runs differ on the ablation.
    import keras

    assert meta["keras_backend"] == keras.backend.backend() == "tensorflow"
    for key in ("loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1"):
        assert len(meta["history"][key]) == 1
    clf = load_classifier(tiny_model_path)  # also checks the weights hash
    probs = clf.predict([np.full((300, 200), 128, np.uint8)])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1, atol=1e-5)
    # No width was asked for: the JSON records the one built, not null.
    assert meta["train_config"]["arch"] == "small"
    assert meta["train_config"]["width"] == clf.model.get_layer("b0_conv").filters == 16


def test_cli_trains_a_small_cnn_excluding_a_source(tiny_manifest, cxr_dir, tmp_path):
    rc = main(
        [
            "--data",
            str(cxr_dir),
            "--manifest",
            str(tiny_manifest),
            "--out",
            str(tmp_path),
            "--arch",
            "small",
            "--width",
            "8",
            "--size",
            "64",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--batch-size",
            "4",
            "--exclude-source",
            "kermany",
            "--no-cache",
            "--quiet",
        ]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "cxr_classifier.json").read_text())
    assert meta["train_config"]["exclude_sources"] == ["kermany"]
    assert (meta["train_config"]["arch"], meta["train_config"]["width"]) == ("small", 8)
    model = load_classifier(tmp_path / "cxr_classifier.keras").model
    assert model.get_layer("b2_conv").filters == 32  # width 8, doubled per block
    assert not any(k.startswith("kermany/") for k in meta["train_counts"])
    assert meta["command"].startswith("python -m cxrlib.train ")
    # The CLI's default is the committed recipe: lung-field crops from the committed segmenter.
    assert meta["preprocess"]["lung_crop"] is True and len(meta["lung_segmenter_sha256"]) == 64


def test_batches_are_balanced_reproducible_and_prepared():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (30, 32, 32), dtype=np.uint8)
    labels = np.array([0] * 20 + [1] * 5 + [2] * 5)
    probs = sampling_weights(labels, ["a"] * 30)
    cfg = TrainConfig(batch_size=600, preprocess=PreprocessConfig(size=32))
    x, y = AugmentedBatches(images, labels, probs, cfg, steps=2)[0]
    assert x.shape == (600, 32, 32, 1) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 255
    assert y.shape == (600, 3) and np.all(y.sum(1) == 1) and np.all(y.max(1) == 1)  # one-hot
    shares = y.mean(0)
    assert np.all(np.abs(shares - 1 / 3) < 0.07), shares  # class-balanced despite 20/5/5
    x2, y2 = AugmentedBatches(images, labels, probs, cfg, steps=2)[0]
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(x, x2)


def test_sampling_weights_balance_sources_within_a_class():
    labels = [0] * 90 + [0] * 10 + [1] * 50
    sources = ["big"] * 90 + ["small"] * 10 + ["x"] * 50
    w = sampling_weights(labels, sources, power=0.0)
    assert w[:100].sum() == pytest.approx(0.5) and w[100:].sum() == pytest.approx(0.5)
    assert w[:90].sum() == pytest.approx(w[90:100].sum())  # power 0: sources equal
    w1 = sampling_weights(labels, sources, power=1.0)
    assert w1[:90].sum() == pytest.approx(0.45)  # power 1: proportional to size


def test_sampling_floor_keeps_tiny_groups_from_being_oversampled():
    labels = [0] * 100 + [0] * 100 + [0] * 2
    sources = ["a"] * 100 + ["b"] * 100 + ["tiny"] * 2
    no_floor = sampling_weights(labels, sources, power=0.0)
    assert no_floor[200:].sum() == pytest.approx(1 / 3)  # two images drawn like a hospital
    w = sampling_weights(labels, sources, power=0.0, floor=50)
    # The tiny group counts per image as a 50-image group would: 2/50 of a full share.
    assert w[200:].sum() == pytest.approx(0.04 / 2.04)
    assert w[:100].sum() == pytest.approx(w[100:200].sum())
    # Groups at or above the floor are untouched.
    assert np.allclose(
        sampling_weights(labels[:200], sources[:200], power=0.25, floor=50),
        sampling_weights(labels[:200], sources[:200], power=0.25),
    )


def test_macro_f1_and_temperature():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert macro_f1(y, y) == 1.0
    # class 0: TP 1 FP 1 FN 1 -> 0.5; class 1: TP 2 FP 1 -> 0.8; class 2: TP 1 FN 1 -> 2/3
    assert macro_f1(y, np.array([0, 1, 1, 1, 2, 0])) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A class only predicted counts, with F1 0; one neither true nor predicted does not.
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 2, 1])) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # Over-confident logits that are often wrong want a temperature above 1.
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 3, 500)
    logits = rng.normal(0, 1, (500, 3))
    logits[np.arange(500), yy] += 1.0
    assert fit_temperature(logits * 8, yy) > 2.0


def _module_path(module: str) -> Path:
    import cxrlib

    base = Path(cxrlib.__file__).parent.joinpath(*module.split(".")[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _top_level_imports(module: str) -> set[str]:
    """What ``module`` imports when it loads (``from package import submodule`` names both)."""
    import ast

    found = set()
    for node in ast.parse(_module_path(module).read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name.startswith("cxrlib.") and _module_path(name).exists():
                    found.add(name)
    return found


def test_training_loads_without_tensorflow():
    """``KERAS_BACKEND=jax python -m cxrlib.train`` must run where TensorFlow is not
    installed (a lent GPU machine; benchmarks/gpu_train.py): no module that any
    training module imports may import TensorFlow when it loads, only inside what
    needs it."""
    import cxrlib.train

    train_dir = Path(cxrlib.train.__file__).parent
    todo = [f"cxrlib.train.{p.stem}" for p in sorted(train_dir.glob("*.py"))]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        seen.add(module)
        imports = _top_level_imports(module)
        assert not any(m.split(".")[0] == "tensorflow" for m in imports), module
        todo += [m for m in imports if m.startswith("cxrlib.") and m not in seen]
    assert {
        "cxrlib.train.cli",
        "cxrlib.train.segmenter",
        "cxrlib.train.gate",
        "cxrlib.infer.classifier",
        "cxrlib.infer.lungs",
        "cxrlib.infer.runtime",
        "cxrlib.train.data",
        "cxrlib.train.augment",
        "cxrlib.infer.preprocess",
    } <= seen


def test_train_config_reads_back_fills_what_a_record_lacks_and_refuses_the_unknown():
    from pydantic import ValidationError

    cfg = TrainConfig(
        seed=3,
        sampling_floor=50,
        exclude_sources=("nih",),
        augment=AugmentConfig(p_jpeg=0.0),
        preprocess=PreprocessConfig(size=96, lung_margin=0.12),
    )
    record = json.loads(json.dumps(cfg.model_dump(mode="json")))
    assert TrainConfig.model_validate(record) == cfg
    # A record without the sampling floor and with only one augmentation setting: the
    # missing ones come back at their defaults.
    old = {k: v for k, v in record.items() if k != "sampling_floor"}
    old["augment"] = {"p_jpeg": 0.0}
    back = TrainConfig.model_validate(old)
    assert (back.sampling_floor, back.seed) == (1, 3)
    assert back.augment == AugmentConfig(p_jpeg=0.0)
    assert back.exclude_sources == ("nih",) and back.preprocess.lung_margin == 0.12
    # A setting training does not know (a retired option) is refused, not ignored.
    for retired in ({**record, "ema": 0.998}, {**record, "augment": {"mixup": 0.2}}):
        with pytest.raises(ValidationError):
            TrainConfig.model_validate(retired)
    with pytest.raises(ValidationError):
        TrainConfig(arch="resnet")

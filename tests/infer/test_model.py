"""cxrlib.infer.classifier: loading and calling the classifier (built and saved by cxrlib.train)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlib.core.errors import ModelError
from cxrlib.infer.classifier import CLASS_NAMES, Classifier, load_classifier, softmax
from cxrlib.train.architectures import build_classifier
from cxrlib.train.classifier import save_classifier


def test_save_load_round_trip_and_calibrated_probabilities(tmp_path):
    m = build_classifier(size=64, arch="small", seed=1)
    meta = {"preprocess": {"size": 64, "contrast": "none"}, "temperature": 2.0}
    path = save_classifier(m, meta, tmp_path / "clf.keras")
    clf = load_classifier(path)
    saved = json.loads(path.with_suffix(".json").read_text())
    assert len(saved["weights_sha256"]) == 64 and clf.weights_sha256 == saved["weights_sha256"]
    x = np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(np.uint8)
    np.testing.assert_allclose(clf.logits(x), Classifier(m, meta).logits(x), atol=1e-5)
    p1 = softmax(clf.logits(x))  # uncalibrated
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


def _averaging_meta(views: list[str], temperature: float) -> dict:
    return {
        "preprocess": {"size": 64, "contrast": "none"},
        "temperature": 2.0,
        "test_time_views": {"views": views, "temperature": temperature},
    }


def test_test_time_views_average_the_logits_at_their_own_temperature():
    from cxrlib.infer.classifier import average_views, softmax
    from cxrlib.infer.preprocess import PreprocessConfig, to_geometry
    from cxrlib.infer.views import view_batch, views_by_name

    m = build_classifier(size=64, arch="small", seed=3)
    names = ["shift right", "zoom in", "darker"]
    clf = Classifier(m, _averaging_meta(names, 1.5))
    single = Classifier(m, {"preprocess": {"size": 64, "contrast": "none"}, "temperature": 2.0})
    assert [v.name for v in clf.views] == names and clf.view_temperature == 1.5
    assert single.views == () and single.view_temperature == 2.0
    rng = np.random.default_rng(4)
    grays = [rng.integers(0, 255, (90, 70)).astype(np.uint8) for _ in range(3)]
    # By hand: the logits of each image's original and views, averaged, then scaled.
    cfg = PreprocessConfig(size=64, contrast="none")
    z = np.stack(
        [single.logits(view_batch(to_geometry(g, cfg), cfg, views_by_name(names))) for g in grays]
    )
    expected = softmax(z.mean(axis=1) / 1.5)
    np.testing.assert_allclose(clf.predict(grays), expected, atol=1e-5)
    np.testing.assert_allclose(clf.view_logits(grays, clf.views), z, atol=1e-4)
    mean, per_view = average_views(z, 1.5)
    np.testing.assert_allclose(per_view, softmax(z / 1.5), atol=1e-6)
    # The mean of the logits never falls below the lowest view (log-softmax is concave).
    assert (mean >= per_view.min(axis=1) - 1e-6).all()
    # Without views: the original alone, at the model's temperature.
    np.testing.assert_allclose(single.predict(grays), softmax(z[:, 0] / 2.0), atol=1e-5)
    assert not np.allclose(clf.predict(grays), single.predict(grays), atol=1e-4)


def test_unknown_test_time_view_is_a_model_error():
    with pytest.raises(ModelError, match="rotate"):
        Classifier(build_classifier(size=64, arch="small"), _averaging_meta(["rotate"], 1.0))


def test_committed_model_classifies_shared_test_images_as_its_metrics_say(cxr_dir):
    """The committed model, its JSON and its metrics file agree, and it classifies real images."""
    import pandas as pd

    from cxrlib.core.settings import DEFAULT_MODEL, resolve
    from cxrlib.train.data import load_gray

    committed = resolve(DEFAULT_MODEL)
    if not committed.exists():
        pytest.skip("no committed model")
    clf = load_classifier(committed)  # also checks the weights hash
    m = pd.read_csv(cxr_dir / "manifest.csv")
    test = m[m.split == "test"]
    # Ten per class, drawn at random (the first rows of a class are one source's).
    rows = pd.concat([test[test.label == c].sample(10, random_state=0) for c in clf.class_names])
    probs = clf.predict([load_gray(cxr_dir / p) for p in rows.path])
    y = rows.label.map({c: i for i, c in enumerate(clf.class_names)}).to_numpy()
    assert (probs.argmax(1) == y).mean() >= 0.8
    metrics = json.loads(committed.with_suffix(".metrics.json").read_text())
    assert metrics["weights_sha256"] == clf.weights_sha256
    saved = {p["path"]: p["probs"] for p in metrics["splits"]["test"]["predictions"]}
    # The Metrics pages show what the app predicts: same images, same probabilities.
    np.testing.assert_allclose([saved[p] for p in rows.path], probs, atol=2e-4)
    assert metrics["splits"]["test"].get("views") == (
        ["original"] + [v.name for v in clf.views] if clf.views else None
    )


def test_forward_pass_on_another_backend_gives_the_same_logits(monkeypatch):
    """Off TensorFlow (JAX on a GPU machine) the classifier calls the model as it is
    instead of through a tf.function; the logits must not change."""
    import keras

    m = build_classifier(64, "small", seed=2)
    meta = {"preprocess": {"size": 64, "contrast": "none"}}
    x = np.random.default_rng(1).integers(0, 255, (4, 64, 64)).astype(np.uint8)
    expected = Classifier(m, meta).logits(x)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    got = Classifier(m, meta).logits(x)
    assert isinstance(got, np.ndarray) and got.shape == (4, len(CLASS_NAMES))
    np.testing.assert_allclose(got, expected, atol=1e-5)

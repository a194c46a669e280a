"""cxrlib.evaluate.audit: the resolution swap and the source probe catch what they look for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlib.evaluate.audit import resave, resolution_swap, source_probe
from cxrlib.train.data import load_gray

CLASSES = ("covid", "normal", "pneumonia")


class _ByResolution:
    """Answers 'pneumonia' for images of at most 256 px and 'normal' above: a pure
    resolution shortcut."""

    class_names = CLASSES

    def predict(self, grays):
        return np.array(
            [[0.0, 0.0, 1.0] if max(g.shape) <= 256 else [0.0, 1.0, 0.0] for g in grays]
        )


class _ByBrightness:
    """Answers by mean brightness alone, which re-saving at another size barely moves."""

    class_names = CLASSES

    def predict(self, grays):
        return np.array([[0.0, 0.0, 1.0] if g.mean() < 128 else [0.0, 1.0, 0.0] for g in grays])


def _nih_test(cxr_dir, n=6):
    m = pd.read_csv(cxr_dir / "manifest.csv")
    rows = m[(m.source == "nih") & (m.split == "test")].groupby("label").head(n // 2)
    return [load_gray(cxr_dir / p) for p in rows.path], rows.label.map(CLASSES.index).to_numpy()


def test_resave_makes_the_size_and_keeps_the_picture(cxr_dir):
    grays, _ = _nih_test(cxr_dir, 2)
    for g in grays:
        small = resave(g, 256)
        assert max(small.shape) == 256 and small.dtype == np.uint8
        assert small.shape[0] / small.shape[1] == pytest.approx(g.shape[0] / g.shape[1], abs=0.01)
        back = np.asarray(resave(small, max(g.shape)), float)
        # The same X-ray, a little softer: JPEG and resampling move pixels by a few levels.
        assert np.corrcoef(back.ravel(), g.astype(float).ravel())[0, 1] > 0.97
    wide = np.tile(np.arange(300, dtype=np.uint8), (150, 1))
    assert resave(wide, 384).shape == (192, 384)


def test_resolution_swap_catches_a_resolution_shortcut(cxr_dir):
    grays, y = _nih_test(cxr_dir)
    caught = resolution_swap(_ByResolution(), grays, y, 256)
    assert caught["changed"] == 1.0 and caught["n"] == len(y) == 6
    assert caught["resaved"]["sensitivity"]["pneumonia"] == 1.0
    assert caught["original"]["sensitivity"]["pneumonia"] == 0.0
    honest = resolution_swap(_ByBrightness(), grays, y, 256)
    assert honest["changed"] <= 1 / 6
    assert honest["longer_side"] == 256


def _probe_frame(n_per_source=30, sources=("a", "b", "c")):
    rows = [
        {"label": label, "source": s, "group": f"{s}{i // 2}"}  # two images per patient
        for label in ("normal", "pneumonia")
        for s in sources
        for i in range(n_per_source)
    ]
    return pd.DataFrame(rows)


def test_source_probe_finds_sources_written_into_the_features():
    df = _probe_frame()
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(df), 16))
    marked = noise.copy()
    for k, s in enumerate(("a", "b", "c")):
        marked[(df.source == s).to_numpy(), k] += 4.0
    clf = _ByBrightness()
    found = source_probe(clf, df, marked)
    blind = source_probe(clf, df, noise)
    assert set(found) == {"normal", "pneumonia"}  # no covid rows: no probe for it
    assert found["normal"]["sources"] == ["a", "b", "c"]
    assert found["normal"]["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert found["normal"]["balanced_accuracy"] > 0.9
    assert blind["normal"]["balanced_accuracy"] < 0.6
    assert np.sum(found["pneumonia"]["confusion"]) == 90


def test_source_probe_skips_small_sources_and_single_source_classes():
    df = _probe_frame()
    df = pd.concat([df, pd.DataFrame([{"label": "covid", "source": "a", "group": "z"}] * 40)])
    df = pd.concat([df, pd.DataFrame([{"label": "normal", "source": "tiny", "group": "t"}] * 3)])
    features = np.random.default_rng(1).normal(size=(len(df), 4))
    res = source_probe(_ByBrightness(), df.reset_index(drop=True), features)
    assert "covid" not in res  # one source only
    assert res["normal"]["sources"] == ["a", "b", "c"]  # 'tiny' has under 10 images

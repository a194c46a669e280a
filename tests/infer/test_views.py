"""cxrlib.infer.views: the test-time views, named in a model's JSON."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.infer.views import DEFAULT_VIEWS, View, view_batch, views_by_name


def test_views_by_name_keeps_the_given_order():
    names = ["darker", "shift left"]
    assert [v.name for v in views_by_name(names)] == names
    assert views_by_name([v.name for v in DEFAULT_VIEWS]) == DEFAULT_VIEWS
    assert views_by_name([]) == ()
    with pytest.raises(KeyError, match="rotate"):
        views_by_name(["darker", "rotate 90"])


def test_view_batch_puts_the_original_first_and_applies_each_view():
    rng = np.random.default_rng(0)
    geo = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    cfg = PreprocessConfig(size=32, contrast="none")
    views = (View("darker", gamma=2.0), View("right", shift=(0.25, 0.0)))
    batch = view_batch(geo, cfg, views)
    assert batch.shape == (3, 32, 32) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], geo)
    assert batch[1].mean() < geo.mean() - 20  # gamma 2 darkens
    # Shifted right by a quarter: column 8 of the view is column 0 of the original.
    np.testing.assert_array_equal(batch[2][:, 8:], geo[:, :-8])

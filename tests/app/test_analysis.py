"""cxrlib.app.analysis: the pages' diagnosis (cached) and every method compared."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import png_of

from cxrlib.app.analysis import compare_methods
from cxrlib.app.resources import Resources, get_resources
from cxrlib.core.cache import LRUCache
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.infer.pipeline import decode, diagnose_image


def test_diagnose_image_caches_per_image_method_and_class(app_env, heatmap_calls):
    res = get_resources()
    assert res.classifier is not None and res.explainer is not None
    heatmap_calls["n"] = 0  # loading traces the model once on a synthetic image
    cache = LRUCache()
    decoded = decode(png_of("normal_kermany_tr_IM-0675-0001.jpg"))
    first = diagnose_image(res, decoded, "gradcam", cache=cache)
    assert heatmap_calls["n"] == 1
    # The predicted class asked for explicitly is the same entry.
    same = diagnose_image(res, decoded, "gradcam", first.predicted_index, cache=cache)
    assert same is first and heatmap_calls["n"] == 1
    other = (first.predicted_index + 1) % len(first.class_names)
    second = diagnose_image(res, decoded, "gradcam", other, cache=cache)
    assert heatmap_calls["n"] == 2 and second.target_index == other
    diagnose_image(res, decoded, "gradcampp", cache=cache)
    assert heatmap_calls["n"] == 3
    np.testing.assert_allclose(second.probabilities, first.probabilities, atol=1e-6)
    assert first.heatmap.shape == decoded.pixels.shape


def test_diagnose_image_without_a_classifier_says_why():
    res = Resources(errors={"classifier": "no file at models/x.keras"})
    with pytest.raises(RuntimeError, match="no file at models/x.keras"):
        diagnose_image(res, decode(png_of("covid_cxnet_265.jpg")), cache=LRUCache())


def test_compare_methods_reuses_the_cache_and_says_how_far_they_agree(app_env, heatmap_calls):
    res = get_resources()
    cache = LRUCache()
    decoded = decode(png_of("covid_cxnet_330.jpg"))
    diagnose_image(res, decoded, "gradcam", cache=cache)
    before = heatmap_calls["n"]
    compared = compare_methods(res, cache, decoded)
    assert heatmap_calls["n"] == before + len(METHOD_LABELS) - 1
    assert [d.method for d in compared.diagnoses] == list(METHOD_LABELS)
    assert compared.ious.shape == (len(METHOD_LABELS),) * 2
    assert 0.0 <= compared.agreement <= 1.0
    assert "regions overlap by" in compared.text()
    caption = compared.caption(compared.diagnoses[0])
    assert caption.startswith(METHOD_LABELS["gradcam"])
    compare_methods(res, cache, decoded)
    assert heatmap_calls["n"] == before + len(METHOD_LABELS) - 1

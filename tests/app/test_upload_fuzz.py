"""Malformed uploads through the app's own upload paths: never a traceback.

Over 1,000 inputs from the imaging fuzz corpus (random bytes, real files with
bytes flipped, integers smashed, cut short or spliced) go through:

* the Diagnose path without Streamlit: ``pipeline.decode`` -> input
  check -> ``pipeline.diagnose_image`` for whatever decodes, exactly what the
  page calls;
* the Batch path: ``cxrlib.predict.rows.score_items`` on all of them at once;
* the real page: a seeded sample of them through AppTest's file uploader,
  checking the page shows an error or a result and no exception.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from app_helpers import new_app, texts
from fuzz_corpus import FAMILIES, family_inputs

N_INPUTS = 1050


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, bytes]]:
    per_family = -(-N_INPUTS // len(FAMILIES))
    items = []
    for family in FAMILIES:
        for label, data, name in itertools.islice(family_inputs(family), per_family):
            items.append((name or f"{label.replace('#', '_')}.png", data))
    assert len(items) >= 1000
    return items


def test_diagnose_path_survives_every_input(corpus, app_env):
    from cxrlib.app.resources import load_resources
    from cxrlib.core.cache import LRUCache
    from cxrlib.infer.pipeline import check_input, decode, diagnose_image

    res = load_resources()
    assert res.classifier is not None and res.gate is not None
    cache = LRUCache(64)
    refused = analysed = 0
    for name, data in corpus:
        decoded = decode(data, name)
        if not decoded.ok:
            assert decoded.error and "Traceback" not in decoded.error
            refused += 1
            continue
        verdict = check_input(res, decoded)
        assert verdict is not None and np.isfinite(verdict.score)
        diagnosis = diagnose_image(res, decoded, cache=cache)
        assert np.isclose(float(np.sum(diagnosis.probabilities)), 1.0, atol=1e-4)
        assert diagnosis.heatmap.shape == decoded.pixels.shape
        analysed += 1
    print(f"diagnose path: {len(corpus)} inputs, {refused} refused, {analysed} analysed")
    assert refused > 0.5 * len(corpus)  # the corpus really is malformed


def test_batch_path_scores_or_lists_every_input(corpus, tiny_model_path):
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.gate import assess
    from cxrlib.infer.pipeline import Models
    from cxrlib.predict.output import rows_to_csv
    from cxrlib.predict.rows import score_items

    clf = load_classifier(tiny_model_path)
    rows = score_items(corpus, Models(clf, Explainer(clf), gate=assess))
    assert len(rows) == len(corpus)
    for row in rows:
        assert bool(row.error) != bool(row.predicted or row.is_cxr is False)
    csv_text = rows_to_csv(rows, clf.class_names)
    assert csv_text.count("\n") == len(rows) + 1


def test_real_page_shows_errors_for_malformed_uploads(corpus, app_env):
    rng = np.random.default_rng(0)
    at = new_app().run()
    for i in rng.choice(len(corpus), size=25, replace=False):
        name, data = corpus[int(i)]
        at.file_uploader(key="diag_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, [e.value for e in at.exception]
        page = texts(at)
        assert "Traceback" not in page
        assert at.error or "Most likely" in page or "does not look like" in page

"""The PACS tests' fixtures: one Orthanc per session (:mod:`pacs_fixtures`), the tiny model."""

from __future__ import annotations

import pytest
from pacs_fixtures import orthanc, pacs_client  # noqa: F401 - shared with tests/app


@pytest.fixture(scope="session")
def models(tiny_model_path):
    """The tiny classifier with the committed lung segmenter and input gate (scoring tests)."""
    from cxrlib.predict.rows import load_models

    return load_models(str(tiny_model_path))


@pytest.fixture(scope="session")
def identity(models):
    from cxrlib.pacs.results import model_identity

    return model_identity(models.classifier.meta, str(models.model_path))

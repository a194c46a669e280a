"""A real Orthanc for the PACS tests: one per session, on a free port, storage in a tmp folder."""

from __future__ import annotations

import pytest

from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.server import ORTHANC, RunningOrthanc, local_orthanc


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A running Orthanc (loopback only, HTTP Basic auth, DICOMweb); stopped after the session."""
    if not ORTHANC.exists():
        pytest.skip(f"Orthanc is not installed ({ORTHANC}): `make pacs-deps` installs it")
    with local_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
        yield running


@pytest.fixture(scope="session")
def pacs_client(orthanc: RunningOrthanc) -> PacsClient:
    return PacsClient(PacsConfig(orthanc.dicomweb_url, orthanc.user, orthanc.password))


@pytest.fixture(scope="session")
def models(tiny_model_path):
    """The tiny classifier with the committed lung segmenter and input gate (scoring tests)."""
    from cxrlib.predict.rows import load_models

    return load_models(str(tiny_model_path))


@pytest.fixture(scope="session")
def identity(models):
    from cxrlib.pacs.results import model_identity

    return model_identity(models.classifier, str(models.model_path))

"""A real Orthanc for the tests that need a PACS (tests/pacs, tests/app, the privacy test):
on a free port, storage in a tmp folder, stopped afterwards.

Imported by name (tests/ is on ``sys.path``): a conftest.py or a test module imports the
fixtures it uses, ``from pacs_fixtures import orthanc, pacs_client``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.server import ORTHANC, RunningOrthanc, local_orthanc


@contextmanager
def running_orthanc(storage: Path) -> Iterator[RunningOrthanc]:
    """A local Orthanc (loopback only, HTTP Basic auth, DICOMweb) for the ``with`` block; the
    test is skipped where Orthanc is not installed (``make test`` installs it)."""
    if not ORTHANC.exists():
        pytest.skip(f"Orthanc is not installed ({ORTHANC}): `make pacs-deps` installs it")
    with local_orthanc(storage) as running:
        yield running


def client_of(server: RunningOrthanc) -> PacsClient:
    """A DICOMweb client logged in to ``server``."""
    return PacsClient(PacsConfig(server.dicomweb_url, server.user, server.password))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOrthanc]:
    """One Orthanc for the session; stopped at its end."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
        yield running


@pytest.fixture(scope="session")
def pacs_client(orthanc: RunningOrthanc) -> PacsClient:
    return client_of(orthanc)

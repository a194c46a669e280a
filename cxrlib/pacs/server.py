"""A local Orthanc for tests and ``make pacs``: loopback only, HTTP Basic auth, DICOMweb on.

:func:`local_orthanc` fills ``orthanc.json`` (beside this module) with a port, a storage folder
and one user, starts ``/usr/sbin/Orthanc`` on it and stops it on exit. Orthanc's own log goes to
``orthanc.log`` in the storage folder (the PACS's disk, like the images it stores).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from cxrlib.core.errors import PacsError
from cxrlib.core.net import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
TEMPLATE = Path(__file__).with_name("orthanc.json")


@dataclass(frozen=True)
class RunningOrthanc:
    """A started Orthanc: where it answers and who may ask (the password is not in the repr)."""

    url: str
    user: str
    password: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    log: Path

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"


def orthanc_config(storage: Path, http_port: int, user: str, password: str) -> dict[str, object]:
    """``orthanc.json`` with the port, the storage folder and the one user filled in."""
    config = json.loads(TEMPLATE.read_text())
    folder = str(storage.resolve())
    return config | {
        "HttpPort": http_port,
        "StorageDirectory": folder,
        "IndexDirectory": folder,
        "RegisteredUsers": {user: password},
    }


def _log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _wait_ready(server: RunningOrthanc, timeout: float) -> None:
    """Polls ``GET /system`` until Orthanc answers 200; a clear error if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            auth = (server.user, server.password)
            if requests.get(f"{server.url}/system", auth=auth, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise PacsError(
        f"Orthanc did not start on {server.url} (exit code {server.process.poll()}); "
        f"the end of its log ({server.log}):\n{_log_tail(server.log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def local_orthanc(
    storage: Path,
    *,
    http_port: int | None = None,
    user: str = "cxrlens",
    password: str | None = None,
    timeout: float = 30.0,
) -> Iterator[RunningOrthanc]:
    """Runs Orthanc on ``127.0.0.1:http_port`` (default: a free port) with its database in
    ``storage``, for the ``with`` block; ``password`` defaults to a fresh random one.

    Raises:
        PacsError: Orthanc is not installed, or did not answer within ``timeout`` seconds.
    """
    if not ORTHANC.exists():
        raise PacsError(f"{ORTHANC} is missing: run `make pacs-deps` to install Orthanc.")
    storage.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(16)
    port = http_port or free_port()
    config = storage / "orthanc.json"
    # The config holds the password: readable by this user only.
    config.touch(mode=0o600)
    os.chmod(config, 0o600)
    config.write_text(json.dumps(orthanc_config(storage, port, user, password), indent=2))
    log = storage / "orthanc.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(ORTHANC), str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    server = RunningOrthanc(f"http://127.0.0.1:{port}", user, password, process, log)
    try:
        _wait_ready(server, timeout)
        yield server
    finally:
        _stop(process)

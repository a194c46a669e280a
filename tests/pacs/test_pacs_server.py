"""The local Orthanc and ``python -m cxrlib.pacs``: started and stopped with no process left,
a failed start explained, demo studies that pass dciodvfy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from datetime import date

import psutil
import pytest
from ray_procs import all_gone

from cxrlib.core.errors import PacsError
from cxrlib.core.net import free_port
from cxrlib.core.settings import ROOT
from cxrlib.pacs.cli import main
from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.demo import DEMO_PATIENT_NAME, DEMO_SAMPLES, demo_datasets
from cxrlib.pacs.server import ORTHANC, local_orthanc

needs_orthanc = pytest.mark.skipif(
    not ORTHANC.exists(), reason=f"Orthanc is not installed ({ORTHANC}): `make pacs-deps`"
)


@needs_orthanc
def test_local_orthanc_stops_with_the_block_and_leaves_no_process(tmp_path):
    with local_orthanc(tmp_path, password="pw-not-shown") as orthanc:
        pid = orthanc.process.pid
        assert psutil.Process(pid).is_running()
        assert "pw-not-shown" not in repr(orthanc)
        config = json.loads((tmp_path / "orthanc.json").read_text())
        assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is True
        assert config["DicomServerEnabled"] is False
        assert (tmp_path / "orthanc.json").stat().st_mode & 0o077 == 0
    assert all_gone([pid], timeout=5)


@needs_orthanc
def test_a_port_in_use_is_a_clear_error_with_orthancs_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        with pytest.raises(PacsError, match="Orthanc did not start") as caught:
            with local_orthanc(tmp_path, http_port=taken.getsockname()[1], timeout=20):
                pass
    assert str(tmp_path / "orthanc.log") in str(caught.value)
    assert caught.value.args[0].count("\n") >= 1  # the end of the log follows


@pytest.mark.skipif(not shutil.which("dciodvfy"), reason="dciodvfy missing: `make pacs-deps`")
def test_demo_studies_are_valid_dicom_of_a_synthetic_patient(tmp_path):
    datasets = demo_datasets(today=date(2001, 1, 31))
    assert len(datasets) == len(DEMO_SAMPLES)
    assert len({ds.StudyInstanceUID for ds in datasets}) == len(datasets)
    assert [ds.StudyDate for ds in datasets] == [f"200101{d}" for d in range(31, 25, -1)]
    for ds in datasets:
        assert ds.PatientName == DEMO_PATIENT_NAME and ds.PatientBirthDate == ""
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 8
        path = tmp_path / f"{ds.AccessionNumber}.dcm"
        ds.save_as(path, enforce_file_format=True)
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in check.stderr.splitlines() if line.startswith("Error")]
        assert errors == [], errors


@needs_orthanc
def test_the_demo_command_stores_the_demo_studies(orthanc, pacs_client, tmp_path, monkeypatch):
    for name in ("CXR_PACS_URL", "CXR_PACS_USER", "CXR_PACS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo"]) == 1  # no PACS given: a message, not a traceback
    secret = tmp_path / "password"
    secret.write_text(orthanc.password + "\n")
    before = len(pacs_client.search_studies(modalities=None))
    args = ["demo", "--url", orthanc.dicomweb_url, "--user", orthanc.user]
    assert main([*args, "--password-file", str(secret)]) == 0
    assert len(pacs_client.search_studies(modalities=None)) == before + len(DEMO_SAMPLES)


@needs_orthanc
def test_serve_loads_the_demo_keeps_the_password_private_and_stops_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_PACS_")}
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "cxrlib.pacs", "serve", "--port", str(port), "--dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    while serve.stderr is not None and not any(line.startswith("use it:") for line in lines):
        line = serve.stderr.readline()
        assert line, f"serve exited early: {lines}"
        lines.append(line)
    orthanc_pids = list(psutil.Process(serve.pid).children(recursive=True))
    password = (tmp_path / "password").read_text().strip()
    assert (tmp_path / "password").stat().st_mode & 0o077 == 0
    assert password not in "".join(lines)
    assert f"http://127.0.0.1:{port}/app/explorer.html" in "".join(lines)
    client = PacsClient(PacsConfig(f"http://127.0.0.1:{port}/dicom-web", "cxrlens", password))
    assert len(client.search_studies()) == len(DEMO_SAMPLES)
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=30) == 0
    assert orthanc_pids and all_gone([p.pid for p in orthanc_pids], timeout=5)

"""Starting the Streamlit app as a local server (for the browser test and the load benchmark):
only the command line and a health check, nothing here imports Streamlit."""

from __future__ import annotations

import subprocess
import sys
import time

import requests

from cxrlib.core.settings import ROOT


def streamlit_command(port: int, python: str | None = None) -> list[str]:
    """``streamlit run app.py`` headless on ``127.0.0.1:port`` by ``python`` (default: this
    one), without usage statistics."""
    return [
        *(python or sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py")),
        *f"--server.headless true --server.port {port} --server.address 127.0.0.1".split(),
        *"--browser.gatherUsageStats false".split(),
    ]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> float:
    """Seconds until ``url``'s ``/_stcore/health`` answers 200.

    Raises:
        RuntimeError: the server process exited first.
        TimeoutError: it did not answer within ``timeout`` seconds.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            if requests.get(url + "/_stcore/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server did not become healthy within {timeout:.0f} s")

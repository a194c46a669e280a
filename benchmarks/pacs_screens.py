"""The screenshots of docs/pacs.md: the PACS worklist, and a CXR Lens report and overlay as
Orthanc's own web page shows them. Not a measurement; run by hand after a change to them::

    python -m benchmarks.pacs_screens [--out docs/images]

Starts its own Orthanc (storage in a temp folder) with the demo studies, scores each with the
app's models (``$CXR_MODEL``, ..., else the committed ones) as the watcher would, starts the
app on a free port pointed at that PACS, and photographs both with Playwright and Debian's
Chromium (``$CXR_CHROMIUM``, default /usr/bin/chromium). Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import requests
from PIL import Image

from cxrlib.app.server import streamlit_command, wait_healthy
from cxrlib.core.net import free_port
from cxrlib.core.settings import ROOT
from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.demo import load_demo
from cxrlib.pacs.results import SERIES_DESCRIPTION, model_identity
from cxrlib.pacs.scoring import score_instance
from cxrlib.pacs.server import RunningOrthanc, local_orthanc

CHROMIUM = os.environ.get("CXR_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 820}


def score_all(client: PacsClient) -> list[str]:
    """Scores every demo image as the watcher would; returns the study UIDs, least normal
    first (the worklist's order)."""
    from cxrlib.app import worklist
    from cxrlib.predict.rows import load_models  # imports TensorFlow

    models = load_models()
    assert models.classifier is not None, models.errors
    identity = model_identity(models.classifier.meta, str(models.model_path))
    for study in client.search_studies():
        for image in client.search_instances(study.study_uid):
            score_instance(client, models, image, identity)
    rows = worklist.worklist(client, None, None, model=identity)
    return [row.study.study_uid for row in rows]


@contextmanager
def app_server(env: dict[str, str]) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with ``env``; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        streamlit_command(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def orthanc_id(orthanc: RunningOrthanc, uid: str) -> str:
    """Orthanc's own ID of the study, series or instance with DICOM UID ``uid``."""
    auth = (orthanc.user, orthanc.password)
    found = requests.post(f"{orthanc.url}/tools/lookup", data=uid, auth=auth, timeout=10)
    found.raise_for_status()
    return str(found.json()[0]["ID"])


def save(png: bytes, path: Path, colours: int = 128) -> None:
    """Writes a screenshot as a palette PNG (a fraction of the size, the same to the eye)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def worklist_shot(page, url: str, out: Path) -> None:
    page.goto(f"{url}/worklist")
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=180_000)
    page.wait_for_timeout(1500)  # the table's canvas draws after its header
    save(page.screenshot(), out / "pacs-worklist.png")


def diagnose_shot(page, out: Path) -> None:
    """The first row opened in Diagnose, then Send to PACS (the watcher was first: the page
    says the result is there already)."""
    table = page.locator('[data-testid="stDataFrame"]').first
    table.click(position={"x": 16, "y": 54})  # the first row's selection box
    send = page.get_by_role("button", name="Send to PACS")
    send.wait_for(timeout=180_000)
    send.click()
    said = page.get_by_text("Already in the PACS")
    said.wait_for(timeout=60_000)
    page.mouse.move(5, 5)  # no tooltip
    said.scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    save(page.screenshot(), out / "pacs-diagnose.png")


def orthanc_shots(page, orthanc: RunningOrthanc, client: PacsClient, study: str, out: Path):
    """The study's series in Orthanc Explorer, the SR's attributes, the overlay's preview."""
    explorer = f"{orthanc.url}/app/explorer.html"
    results = [
        r for r in client.search_instances(study, modalities=None)
        if r.series_description == SERIES_DESCRIPTION
    ]  # fmt: skip
    sr = next(r for r in results if r.modality == "SR")
    sc = next(r for r in results if r.modality != "SR")
    page.goto(f"{explorer}#study?uuid={orthanc_id(orthanc, study)}")
    page.get_by_text(SERIES_DESCRIPTION).first.wait_for()
    page.wait_for_timeout(500)
    save(page.screenshot(), out / "pacs-orthanc-study.png")
    page.goto(f"{explorer}#instance?uuid={orthanc_id(orthanc, sr.sop_uid)}")
    # The report's attributes (its content tree opens on a click in the explorer).
    page.get_by_text("ContentSequence").first.wait_for()
    page.get_by_text("Dataset").first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    save(page.screenshot(), out / "pacs-orthanc-sr.png")
    page.goto(f"{orthanc.url}/instances/{orthanc_id(orthanc, sc.sop_uid)}/preview")
    save(page.locator("img").screenshot(), out / "pacs-orthanc-overlay.png", colours=192)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, local_orthanc(Path(tmp)) as orthanc:
        config = PacsConfig(orthanc.dicomweb_url, orthanc.user, orthanc.password)
        client = PacsClient(config)
        load_demo(client)
        studies = score_all(client)
        env = dict(os.environ, CXR_PACS_URL=config.url, CXR_PACS_USER=config.user)
        env["CXR_PACS_PASSWORD"] = config.password
        with app_server(env) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                credentials = {"username": orthanc.user, "password": orthanc.password}
                page = browser.new_page(viewport=VIEWPORT, http_credentials=credentials)
                worklist_shot(page, url, a.out)
                diagnose_shot(page, a.out)
                orthanc_shots(page, orthanc, client, studies[0], a.out)
            finally:
                browser.close()


if __name__ == "__main__":
    main()

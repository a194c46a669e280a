"""End-to-end: the real server in a real browser (Playwright + Debian's Chromium).

Starts ``streamlit run app.py`` on a free port, uploads a PNG and a DICOM on
Diagnose, checks the probabilities chart and the overlay, moves the opacity
slider, scores three files on Batch and downloads the CSV; opens every tab of Metrics and
the Model card, measures their first screens and downloads the card. Screenshots go to
artifacts/screenshots/ (gitignored). Run with ``pytest -m browser``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from app_helpers import app_pages
from pdf_text import pdf_plaintext
from PIL import Image

from cxrlib.app.server import streamlit_command, wait_healthy
from cxrlib.core.net import free_port
from pages import _compat

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"

CHROMIUM = Path(os.environ.get("CXR_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "artifacts" / "screenshots"
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def model_env(request) -> dict[str, str]:
    """``$CXR_MODEL``, else the committed model, else the tiny fixture model."""
    env = dict(os.environ)
    env.pop("CXR_NO_WARMUP", None)
    if env.get("CXR_MODEL"):
        if not Path(env["CXR_MODEL"]).exists():
            pytest.skip(f"CXR_MODEL={env['CXR_MODEL']} does not exist")
        return env
    if (MODELS / "cxr_classifier.keras").exists():
        return env
    env["CXR_MODEL"] = str(request.getfixturevalue("tiny_model_path"))
    return env


@pytest.fixture(scope="module")
def server(model_env):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (make browser-deps installs it)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = streamlit_command(port)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=model_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        health_s = wait_healthy(url, proc)
        yield {"url": url, "t0": t0, "health_s": health_s, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        if "Traceback" in out:
            print(out[-4000:])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def _png_bytes() -> bytes:
    img = Image.open(SAMPLES / "pneumonia_nih_00007408_000.jpg").convert("L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _wait_result(page, timeout: float = 120_000) -> None:
    page.wait_for_selector("svg.cxr-probabilities", timeout=timeout)
    page.get_by_text("Most likely:").first.wait_for(timeout=timeout)
    page.get_by_text("Overlay").first.wait_for(timeout=timeout)


def _slider(page):
    """The heatmap opacity slider's thumb."""
    slider = page.get_by_role("slider", name="Heatmap opacity")
    if slider.count() == 0:
        slider = page.locator('[data-testid="stSlider"] [role="slider"]')
    return slider.first


def _slider_value(page) -> str:
    """The value the opacity slider shows."""
    return page.locator('[data-testid="stSliderThumbValue"]').first.text_content().strip()


def _step_slider(page, key: str) -> None:
    """One keyboard step of the opacity slider, waiting until its thumb shows the new value:
    a key pressed while the page is still rerunning for the last one can be lost."""
    shown = _slider_value(page)
    _slider(page).focus()
    page.keyboard.press(key)
    page.wait_for_function(
        "(old) => { const v = document.querySelector('[data-testid=\"stSliderThumbValue\"]');"
        " return v && v.textContent.trim() !== old; }",
        arg=shown,
        timeout=30_000,
    )


def _overlay_src(page) -> str:
    """The src of the overlay image (the image whose caption is "Overlay")."""
    return page.evaluate(
        """() => {
            const caps = [...document.querySelectorAll('[data-testid="stImageCaption"]')];
            const cap = caps.find(c => c.textContent.trim() === 'Overlay');
            if (!cap) return '';
            const box = cap.closest('[data-testid="stImage"]') || cap.parentElement;
            const img = box.querySelector('img');
            return img ? img.src : '';
        }"""
    )


def _overlay_src_becomes(page, src: str, timeout_s: float = 30) -> bool:
    """Whether the overlay's src is ``src`` within ``timeout_s`` (a redraw under load can land
    after the app looks idle)."""
    deadline = time.monotonic() + timeout_s
    while _overlay_src(page) != src and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return _overlay_src(page) == src


MAIN_HEIGHT = """() => {
    const m = document.querySelector('[data-testid="stMain"]')
        || document.querySelector('section.main');
    return m ? m.scrollHeight : document.body.scrollHeight;
}"""


def _shot(page, name: str) -> None:
    """Screenshot of the whole page (Streamlit scrolls inside its main block, not the window)."""
    size = page.viewport_size or {"width": 1440, "height": 1000}
    height = page.evaluate(MAIN_HEIGHT)
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, 600), 8000))})
    page.wait_for_timeout(400)
    page.screenshot(path=SHOTS / name, full_page=True)
    page.set_viewport_size(size)
    page.wait_for_timeout(200)


def _idle(page, timeout: float = 60_000) -> None:
    """Waits until the app is not running a script."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 || !document.querySelector('[data-testid="stStatusWidget"]').innerText.includes('Running')""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)


def _settled(page, timeout: float = 60_000) -> None:
    """Waits until the app is idle and the page has stopped growing for a second (the
    status widget can show "Running" late, after the first elements are drawn)."""
    _idle(page, timeout)
    last, still = -1, 0
    for _ in range(int(timeout / 250)):
        height = page.evaluate(MAIN_HEIGHT)
        still = still + 1 if height == last else 0
        if still >= 4:
            return
        last = height
        page.wait_for_timeout(250)


def test_diagnose_and_batch_in_a_real_browser(server, browser, tmp_path):
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    timings: dict[str, float] = {"health": server["health_s"]}

    page.goto(server["url"], wait_until="domcontentloaded")
    page.get_by_text("Research demo, not for diagnosis").first.wait_for(timeout=60_000)
    page.get_by_text("Sample gallery").first.wait_for(timeout=60_000)
    timings["first_page_since_start"] = time.monotonic() - server["t0"]
    for _, title in app_pages():  # the sidebar links every page of app.PAGES
        page.get_by_role("link", name=title).first.wait_for(timeout=30_000)
    _idle(page)
    # While it waits for an image, the page loads the code its result will need.
    for chunk in _compat.RESULT_CHUNKS:
        page.wait_for_function(
            """c => performance.getEntriesByType('resource')
                .some(e => e.name.split('/').pop().startsWith(c + '.'))""",
            arg=chunk,
            timeout=30_000,
        )
    # The sample gallery opens on a click (a rerun draws its thumbnails).
    assert page.locator('[data-testid="stImage"]').count() == 0
    page.get_by_text("Sample gallery").first.click()
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=60_000)
    _idle(page)
    _shot(page, "01_diagnose_empty.png")

    # PNG upload.
    png = tmp_path / "chest.png"
    png.write_bytes(_png_bytes())
    t = time.monotonic()
    page.locator('input[type="file"]').first.set_input_files(str(png))
    _wait_result(page)
    timings["png_upload_to_result_cold"] = time.monotonic() - t
    _idle(page)
    assert page.locator("svg.cxr-probabilities text.cxr-value").count() == 3
    # The upload closed the gallery: its thumbnails are gone from the page.
    assert page.locator('[data-testid="stExpander"] [data-testid="stImage"]').count() == 0
    before = _overlay_src(page)
    assert before, "no overlay image"
    _shot(page, "02_diagnose_png.png")

    # Move the opacity slider with the keyboard.
    t = time.monotonic()
    for _ in range(6):
        _step_slider(page, "ArrowRight")
    page.wait_for_function(
        "(old) => { const caps=[...document.querySelectorAll('[data-testid=\"stImageCaption\"]')];"
        "const c=caps.find(x=>x.textContent.trim()==='Overlay'); if(!c) return false;"
        "const b=c.closest('[data-testid=\"stImage\"]')||c.parentElement; const i=b.querySelector('img');"
        "return i && i.src !== old; }",
        arg=before,
        timeout=30_000,
    )
    timings["opacity_change"] = time.monotonic() - t
    _idle(page)
    assert _overlay_src(page) != before
    _shot(page, "03_diagnose_opacity.png")

    # Every method side by side, then back to one.
    page.get_by_text("Compare all methods").first.click()
    page.get_by_text("regions overlap by").first.wait_for(timeout=60_000)
    _idle(page)
    _shot(page, "03b_diagnose_compare.png")
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download PDF report").click()
    report = pdf_plaintext(Path(info.value.path()).read_bytes())
    assert "All methods compared" in report and "regions overlap by" in report
    page.get_by_text("Compare all methods").first.click()
    page.get_by_text("regions overlap by").first.wait_for(state="detached", timeout=30_000)

    # DICOM upload (the synthetic sample), named as PACS exports name files: no extension.
    dcm = tmp_path / "IM000001"
    dcm.write_bytes((SAMPLES / "normal_nih_00003353_006_synthetic.dcm").read_bytes())
    t = time.monotonic()
    page.locator('input[type="file"]').first.set_input_files(str(dcm))
    page.get_by_text("DICOM display window applied").first.wait_for(timeout=60_000)
    _wait_result(page)
    timings["dicom_upload_to_result_warm"] = time.monotonic() - t
    _idle(page)
    page.get_by_text("DICOM, 384 x 384 px").first.wait_for(timeout=60_000)
    # The display settings carry over to the new image, and the slider shows the opacity
    # the overlay was drawn with: one step up and back down redraws the same overlay.
    assert _slider_value(page) == "0.75"
    drawn = _overlay_src(page)
    _step_slider(page, "ArrowRight")
    _idle(page)
    _step_slider(page, "ArrowLeft")
    _idle(page)
    assert _slider_value(page) == "0.75" and _overlay_src_becomes(page, drawn)
    _shot(page, "04_diagnose_dicom.png")

    # A file that is not an image.
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"%PDF-1.4 not an image")
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    page.get_by_text("This file cannot be used").first.wait_for(timeout=30_000)
    _shot(page, "05_diagnose_bad_file.png")

    # Batch: three files (one unreadable), CSV download.
    page.get_by_role("link", name="Batch").first.click()
    page.get_by_text("Images or zip archives").first.wait_for(timeout=30_000)
    files = [
        str(SAMPLES / "covid_cxnet_265.jpg"),
        str(SAMPLES / "normal_kermany_tr_IM-0675-0001.jpg"),
        str(bad),
    ]
    page.locator('input[type="file"]').first.set_input_files(files)
    page.get_by_role("button", name="Score 3 upload(s)").click()
    page.get_by_role("button", name="Download results (CSV)").wait_for(timeout=120_000)
    _idle(page)
    _shot(page, "06_batch.png")
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name="Download results (CSV)").click()
    path = info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert [r["file"] for r in rows] == [
        "covid_cxnet_265.jpg",
        "normal_kermany_tr_IM-0675-0001.jpg",
        "notes.png",
    ]
    assert rows[0]["predicted"] in ("covid", "normal", "pneumonia")
    assert float(rows[0]["confidence"]) > 0
    assert rows[2]["error"] and not rows[2]["predicted"]

    # The validation browser renders without an exception.
    page.get_by_role("link", name="Validation browser").first.click()
    page.get_by_role("heading", name="Validation browser").first.wait_for(timeout=60_000)
    _settled(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "08_validation.png")

    context.close()
    lines = [f"{k}: {v:.2f} s" for k, v in timings.items()]
    (SHOTS / "timings.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert np.isfinite(list(timings.values())).all()


#: The most a page may be tall at 1440 px wide with its first tab open and nothing expanded.
FIRST_SCREENS_PX = 1800


def _open(page, url: str, heading: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    _settled(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_metrics_and_model_card_fit_their_first_screens(server, browser, tmp_path):
    from playwright.sync_api import expect

    from cxrlib.describe.prose import METRICS_TABS

    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()

    _open(page, f"{server['url']}/metrics", "Metrics")
    assert page.evaluate(MAIN_HEIGHT) <= FIRST_SCREENS_PX
    _shot(page, "07_metrics.png")
    # Each tab: its content appears, the address names it (so it can be sent to someone).
    for i, tab in enumerate(METRICS_TABS[1:], start=1):
        page.get_by_role("tab", name=tab).click()
        _settled(page)
        assert page.get_by_role("tab", name=tab).get_attribute("aria-selected") == "true"
        assert "tab=" + tab.replace(" ", "+") in page.url.replace("%20", "+")
        assert page.locator('[data-testid="stException"]').count() == 0
        _shot(page, f"07{chr(ord('a') + i)}_metrics_{tab.lower().replace(' ', '_')}.png")
    # A link may name the tab in lower case, as people type it.
    _open(page, f"{server['url']}/metrics?tab=calibration", "Metrics")
    assert page.get_by_role("tab", name="Calibration").get_attribute("aria-selected") == "true"
    # The threshold slider redraws its confusion matrix.
    _open(page, f"{server['url']}/metrics?tab=Threshold", "Metrics")
    assert page.get_by_role("tab", name="Threshold").get_attribute("aria-selected") == "true"
    slider = page.get_by_role("slider", name="COVID decision threshold").first
    sensitivity = (
        page.locator('[data-testid="stMetric"]')
        .filter(has_text="COVID sensitivity")
        .locator('[data-testid="stMetricValue"]')
    )
    before = sensitivity.text_content()
    slider.focus()
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    _settled(page)
    # Under load the redraw can land after the page looks settled: wait for it, then check.
    expect(sensitivity).not_to_have_text(before, timeout=30_000)
    assert sensitivity.text_content() != before

    _open(page, f"{server['url']}/model_card", "Trust / Model card")
    assert page.evaluate(MAIN_HEIGHT) <= FIRST_SCREENS_PX
    _shot(page, "09_model_card.png")
    for section in ("Model details", "Quantitative analyses"):
        page.locator('[data-testid="stButtonGroup"]').get_by_text(section, exact=True).click()
        _settled(page)
        _shot(page, f"09_model_card_{section.lower().replace(' ', '_')}.png")
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name="Download the model card").click()
    text = Path(info.value.path()).read_text()
    assert text.startswith("# Model card") and "## Quantitative analyses" in text
    # A caveat's evidence link opens the Metrics page on that tab.
    page.get_by_role("link", name="Evidence: Metrics › Shortcut audit").click()
    page.get_by_role("heading", name="Metrics").first.wait_for(timeout=60_000)
    _settled(page)
    assert page.get_by_role("tab", name="Shortcut audit").get_attribute("aria-selected") == "true"
    context.close()

"""Many users at once: N concurrent browser sessions against ONE Streamlit server.

Starts ``streamlit run app.py`` once (loopback only, a free port, the caller's
environment passed through, e.g. ``CXR_MODEL``), waits for
``/_stcore/health``, then drives ``--sessions`` headless Chromium sessions
(Playwright, Debian's ``/usr/bin/chromium``; never ``playwright install``),
each in its own browser context (its own cookies, its own Streamlit session).
Every upload is a DIFFERENT real image from the test split of ``../shared/cxr``
(classes interleaved; file paths are passed straight to the browser, nothing is
written), until ``--uploads`` uploads have been done across the sessions.
``--mode`` says how the sessions upload:

* ``together`` (default, the issue's test): every session opens the Diagnose
  page and waits idle (``--settle`` seconds after the last page is drawn, so that
  ten page loads do not spill into the first round); then, round after round, all
  sessions upload at the same moment and the round ends when every one has its
  result. The first round is each fresh browser's first result, reported apart.
* ``reload``: each session on its own, opening the page afresh before each upload.
* ``reupload``: each session on its own, uploading again into the same page.

Each result is checked against what :mod:`cxrlib` computes for the same bytes
in this process (``read_image`` -> ``fit_display`` -> ``Classifier.predict``,
exactly the app's path): the image SHA-256 prefix on the page, the predicted
class in "Most likely: ..." and every percentage in the probability chart.
A result that is not the session's own is counted as cross-talk.

Memory: the server's resident set (the process and its children, from
psutil) right after start-up, after a warm-up upload, after every 50 uploads
and at the end; it should level off (the app's caches are bounded).

Where the time goes: the app (and the model server) are started with
``$CXR_TIMINGS`` naming a temporary file, so every stage of every diagnosis
(:data:`cxrlib.core.timings.STAGES`: decode, input gate, lung segmentation, the
test-time views, heatmap, figures, images, the whole script run) appends its wall
and CPU seconds there; after the run a table gives each stage's count per upload,
wall p50 / p95 and mean CPU time (warm-up excluded). CPU much below wall means the
stage waited (for the interpreter lock or the cores).

``--server`` starts ``python -m cxrlib.serve`` (Ray Serve, a local Ray) on a free
port first and runs the app with ``CXR_MODEL_SERVER`` pointing at it
(``--server-url URL`` uses one already running); the model server's memory is
reported beside the app's.

Prints progress lines and a summary, then ONE JSON line (the last line) with
``sessions, uploads, p50_s, p95_s, errors, crosstalk, rss_mb_start,
rss_mb_after_warmup, rss_mb_end, rss_mb_series`` and a few more details.
Time to result = upload -> this image's probabilities visible on the page
(``p50_full_s`` / ``p95_full_s``: until the whole page, heatmaps included, is
drawn). The server is stopped at the end, on errors and on Ctrl-C.

Usage::

    .venv/bin/python -m benchmarks.load                           # 10 sessions x 200 uploads
    .venv/bin/python -m benchmarks.load --sessions 2 --uploads 6  # a quick check
    CXR_MODEL=/tmp/m/cxr_classifier.keras .venv/bin/python -m benchmarks.load
    .venv/bin/python -m benchmarks.load --mode reupload   # re-upload in the same page
    .venv/bin/python -m benchmarks.load | tail -1         # the JSON line only
    .venv/bin/python -m benchmarks.load --server          # through Ray Serve
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent

from cxrlib.app.server import streamlit_command, wait_healthy
from cxrlib.core.formatting import pct
from cxrlib.core.net import free_port
from cxrlib.core.timings import STAGES

CHROMIUM = os.environ.get("CXR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RSS_EVERY = 50

# Reads what the Diagnose page shows (see pages/diagnose.py): the "Most likely"
# line, the "image SHA-256 <16 hex>..." caption, the value labels of the
# probability chart (cxrlib.describe.probability_svg: one text.cxr-value per class,
# in the model's class order) and any refusal or error box.
EXTRACT_JS = r"""() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const text = main.textContent || '';
  const most = text.match(/Most likely:\s*([A-Za-z_-]+),\s*(\d+)%/);
  const sha = text.match(/image SHA-256 ([0-9a-f]{16})/);
  const ann = [...main.querySelectorAll('svg.cxr-probabilities text.cxr-value')]
    .map(t => t.textContent.trim());
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  return {
    most: most ? [most[1], Number(most[2])] : null,
    sha: sha ? sha[1] : null,
    ann: ann,
    rejected: text.includes('does not look like a frontal chest X-ray'),
    unusable: text.includes('This file cannot be used'),
    no_model: text.includes('could not be loaded, so no prediction'),
    exception: !!main.querySelector('[data-testid="stException"]'),
    running: !!status && (status.textContent || '').includes('Running'),
    full: text.includes('Overlay'),
  };
}"""


# ----------------------------------------------------------------------------- server


VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


class Server:
    """``streamlit run app.py`` (or another command) in its own process group, its output
    kept in memory."""

    def __init__(self, port: int, env: dict[str, str], cmd: list[str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        cmd = cmd or streamlit_command(port, PYTHON)
        self.log: deque[str] = deque(maxlen=300)
        self.tracebacks = 0
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if "Traceback" in line:
                self.tracebacks += 1
            self.log.append(line)

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until ``/_stcore/health`` answers 200."""
        return wait_healthy(self.url, self.proc, timeout)

    def rss_mb(self) -> float:
        """Resident memory of the server and all its descendants, MB."""
        return tree_rss_kb(self.proc.pid) / 1024

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 15 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self._reader.join(2)


def start_model_server(env: dict[str, str], timeout: float) -> Server:
    """``python -m cxrlib.serve`` on a free port, healthy (raises if it is not in time)."""
    port = free_port()
    cmd = [PYTHON, "-m", "cxrlib.serve", "--port", str(port)]
    server = Server(port, env, cmd)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError("the model server exited:\n" + "\n".join(list(server.log)[-20:]))
        try:
            if requests.get(server.url + "/health", timeout=2).status_code == 200:
                print(f"model server {server.url} healthy after {time.monotonic() - t0:.0f} s")
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"the model server did not answer within {timeout:.0f} s")


def read_timings(path: Path, skip: int = 0) -> list[dict[str, Any]]:
    """The stage lines of ``$CXR_TIMINGS`` after the first ``skip``."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[skip:]
    return [json.loads(line) for line in lines if line.strip()]


def stage_table(lines: list[dict[str, Any]], uploads: int) -> dict[str, dict[str, Any]]:
    """Stage -> n, per upload, wall p50 / p95 / mean and mean CPU seconds (STAGES order)."""
    out: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        rows = [r for r in lines if r["stage"] == stage]
        if not rows:
            continue
        wall = [r["wall"] for r in rows]
        out[stage] = {
            "n": len(rows),
            "per_upload": round(len(rows) / max(uploads, 1), 2),
            "wall_p50_s": round(percentile(wall, 50) or 0.0, 4),
            "wall_p95_s": round(percentile(wall, 95) or 0.0, 4),
            "wall_mean_s": round(sum(wall) / len(wall), 4),
            "cpu_mean_s": round(sum(r["cpu"] for r in rows) / len(rows), 4),
        }
    return out


def print_stage_table(table: dict[str, dict[str, Any]]) -> None:
    print(f"{'stage':<9} {'n':>5} {'/upload':>7} {'wall p50':>9} {'wall p95':>9} "
          f"{'cpu mean':>9}  what")  # fmt: skip
    for stage, t in table.items():
        print(
            f"{stage:<9} {t['n']:>5} {t['per_upload']:>7} {t['wall_p50_s']:>8.3f}s "
            f"{t['wall_p95_s']:>8.3f}s {t['cpu_mean_s']:>8.3f}s  {STAGES[stage]}"
        )


def tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` plus its descendants, in kB."""
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
        return sum(q.memory_info().rss for q in procs if q.is_running()) // 1024
    except psutil.Error:
        return 0


# ----------------------------------------------------------------------------- images


@dataclass
class Expected:
    """One test image and what cxrlib computes for it."""

    path: Path
    label: str
    sha16: str
    probs: list[float] = field(default_factory=list)

    @property
    def predicted(self) -> int:
        return max(range(len(self.probs)), key=self.probs.__getitem__)


def pick_images(data: Path, n: int, seed: int) -> list[tuple[Path, str]]:
    """``n`` test-split images, classes interleaved, distinct while the split lasts."""
    by_label: dict[str, list[Path]] = {}
    with open(data / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == "test":
                by_label.setdefault(row["label"], []).append(data / row["path"])
    rng = random.Random(seed)
    for paths in by_label.values():
        rng.shuffle(paths)
    order: list[tuple[Path, str]] = []
    longest = max(len(v) for v in by_label.values())
    for i in range(longest):
        for label in sorted(by_label):
            if i < len(by_label[label]):
                order.append((by_label[label][i], label))
    return [order[i % len(order)] for i in range(n)]


def expected_results(images: list[tuple[Path, str]]) -> tuple[list[Expected], list[str]]:
    """The app's probabilities for each image, computed here with cxrlib."""
    from cxrlib.core.settings import model_path
    from cxrlib.infer.classifier import load_classifier
    from cxrlib.infer.pipeline import fit_display
    from cxrlib.io.decode import read_image

    clf = load_classifier(model_path())
    out, grays = [], []
    for path, label in images:
        data = path.read_bytes()
        out.append(Expected(path, label, hashlib.sha256(data).hexdigest()[:16]))
        grays.append(fit_display(read_image(data, path.name)))
    probs = clf.predict(grays)
    for e, p in zip(out, probs):
        e.probs = [float(v) for v in p]
    return out, list(clf.class_names)


# ----------------------------------------------------------------------------- checks


def check(shown: dict[str, Any], exp: Expected, names: list[str], tol_pp: float) -> str:
    """ "" when the page shows ``exp``'s result, else a short reason.

    The page rounds to whole percent, so each shown value may differ from
    ``100 * p`` by 0.5 plus a little float noise (``tol_pp`` in total).
    """
    if shown["sha"] != exp.sha16:
        return f"sha {shown['sha']} != {exp.sha16}"
    if shown["rejected"]:
        return ""  # the input check refused it: no probabilities to compare
    expected_pp = [100 * p for p in exp.probs]
    values = []
    for text in shown["ann"]:
        m = re.search(r"(\d+)%", text)
        values.append(float(m.group(1)) if m else float("nan"))
    if len(values) != len(names):
        return f"{len(values)} chart values for {len(names)} classes"
    for name, v, e in zip(names, values, expected_pp):
        if not abs(v - e) <= tol_pp:
            return f"{name} {v:.0f}% shown, {e:.2f}% expected"
    name, pct = shown["most"]
    top = exp.predicted
    if name != names[top]:
        # A near-tie may flip between two float paths; otherwise it is wrong.
        k = names.index(name) if name in names else -1
        if k < 0 or expected_pp[top] - expected_pp[k] > tol_pp:
            return f"most likely {name} shown, {names[top]} expected"
    if not abs(pct - expected_pp[names.index(name)]) <= tol_pp:
        return f"most likely {pct}% shown, {expected_pp[names.index(name)]:.2f}% expected"
    return ""


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100), None when empty."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


# ----------------------------------------------------------------------------- sessions


@dataclass
class Stats:
    """Counters shared by the sessions (one event loop, so no locks needed)."""

    done: int = 0
    ok: int = 0
    errors: int = 0
    crosstalk: int = 0
    crosstalk_other_image: int = 0
    gate_rejected: int = 0
    times: list[float] = field(default_factory=list)
    full_times: list[float] = field(default_factory=list)
    #: Times to result of the first round (``together``): each fresh browser's first result.
    first_round: list[float] = field(default_factory=list)
    rss_series: list[dict[str, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What every session of one benchmark run shares."""

    server: Server
    expected: list[Expected]
    names: list[str]
    stats: Stats
    args: argparse.Namespace


async def upload_once(
    page: Any,
    url: str,
    exp: Expected,
    names: list[str],
    args: argparse.Namespace,
    reload: bool,
    previous_sha: str | None,
) -> tuple[dict[str, Any], float, float]:
    """Uploads one image; returns (what the page shows, time to result, time to full page)."""
    timeout_ms = args.timeout * 1000
    if reload:
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    file_input = page.locator('input[type="file"]').first
    await file_input.wait_for(state="attached", timeout=timeout_ms)
    t0 = time.monotonic()
    await file_input.set_input_files(str(exp.path))
    # Result visible: a SHA caption (a new one when re-uploading) with the
    # probability chart labelled, or a refusal / error box.
    await page.wait_for_function(
        """([prev, k]) => {
            const s = window.__cxrExtract();
            if (s.exception || s.unusable || s.no_model) return true;
            if (!s.sha || s.sha === prev) return false;
            return s.rejected || (s.most !== null && s.ann.length === k);
        }""",
        arg=[previous_sha, len(names)],
        timeout=timeout_ms,
        polling=100,
    )
    t_result = time.monotonic() - t0
    # The whole run: heatmaps drawn and the script finished.
    await page.wait_for_function(
        """() => { const s = window.__cxrExtract();
            return !s.running && (s.full || s.rejected || s.exception || s.unusable); }""",
        timeout=timeout_ms,
        polling=100,
    )
    t_full = time.monotonic() - t0
    shown = await page.evaluate("() => window.__cxrExtract()")
    return shown, t_result, t_full


async def new_page(browser: Any) -> tuple[Any, Any]:
    """A fresh browser context (one user) and its page, with the extractor installed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(f"window.__cxrExtract = {EXTRACT_JS};")
    return context, await context.new_page()


def record(
    run: Run, idx: int, i: int, outcome: tuple[dict[str, Any], float, float] | BaseException
) -> bool:
    """Counts upload ``i``'s outcome; returns False when the page must be reloaded."""
    exp, names, stats, args = run.expected[i], run.names, run.stats, run.args
    ok = not isinstance(outcome, BaseException)
    if isinstance(outcome, BaseException):
        stats.errors += 1
        stats.messages.append(f"session {idx} upload {i}: {type(outcome).__name__}: {outcome}")
    else:
        shown, t_result, t_full = outcome
        if shown["exception"] or shown["unusable"] or shown["no_model"]:
            stats.errors += 1
            what = [k for k in ("exception", "unusable", "no_model") if shown[k]]
            stats.messages.append(f"session {idx} upload {i} ({exp.path.name}): {what}")
        else:
            problem = check(shown, exp, names, args.tol_pp)
            if problem:
                stats.crosstalk += 1
                if any(e.sha16 == shown["sha"] for e in run.expected if e is not exp):
                    stats.crosstalk_other_image += 1
                stats.messages.append(f"session {idx} upload {i} ({exp.path.name}): {problem}")
            else:
                stats.ok += 1
            stats.gate_rejected += bool(shown["rejected"])
            stats.times.append(t_result)
            stats.full_times.append(t_full)
    stats.done += 1
    if args.verbose:
        seen = (
            "failed"
            if isinstance(outcome, BaseException)
            else f"{outcome[0]['most']} chart {outcome[0]['ann']}"
        )
        want = ", ".join(f"{n} {pct(p, 1)}" for n, p in zip(names, exp.probs))
        print(
            f"  session {idx}: upload {stats.done}/{args.uploads} {exp.path.name} "
            f"({exp.label}): page {seen}; cxrlib {want}",
            flush=True,
        )
    if stats.done % RSS_EVERY == 0 or stats.done == args.uploads:
        rss = round(run.server.rss_mb(), 1)
        stats.rss_series.append({"uploads": stats.done, "rss_mb": rss})
        p50 = percentile(stats.times, 50)
        print(
            f"after {stats.done} uploads: server RSS {rss:.0f} MB, errors {stats.errors}, "
            f"cross-talk {stats.crosstalk}, p50 so far "
            f"{'-' if p50 is None else f'{p50:.2f} s'}",
            flush=True,
        )
    return ok


async def session(run: Run, idx: int, browser: Any, queue: asyncio.Queue) -> None:
    """One user: takes uploads from ``queue`` until it is empty."""
    args = run.args
    context, page = await new_page(browser)
    previous_sha: str | None = None
    fresh = True
    try:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            reload = fresh or args.mode == "reload"
            outcome: tuple[dict[str, Any], float, float] | Exception
            try:
                outcome = await upload_once(
                    page,
                    run.server.url,
                    run.expected[i],
                    run.names,
                    args,
                    reload,
                    None if reload else previous_sha,
                )
            except Exception as exc:  # noqa: BLE001 - counted, the session goes on
                outcome = exc
            fresh = not record(run, idx, i, outcome)
            if not fresh:
                previous_sha = outcome[0]["sha"]  # type: ignore[index]
    finally:
        await context.close()


async def open_idle(page: Any, url: str, args: argparse.Namespace) -> None:
    """Opens the Diagnose page and waits until its script has finished."""
    await page.goto(url, wait_until="domcontentloaded", timeout=args.timeout * 1000)
    await page.locator('input[type="file"]').first.wait_for(
        state="attached", timeout=args.timeout * 1000
    )
    await page.wait_for_function(
        "() => !window.__cxrExtract().running", timeout=args.timeout * 1000, polling=100
    )


async def together(run: Run, browser: Any) -> None:
    """Every session opens its page first; then, round after round, all of them upload
    a different image at the same moment (page loads are not timed)."""
    url, args = run.server.url, run.args
    pages = [await new_page(browser) for _ in range(args.sessions)]
    try:
        await asyncio.gather(*(open_idle(page, url, args) for _, page in pages))
        previous: list[str | None] = [None] * args.sessions
        i = 0
        while i < args.uploads:
            batch = list(range(i, min(i + args.sessions, args.uploads)))
            # Let the page loads, then the previous round's last reruns, settle.
            await asyncio.sleep(args.settle if i == 0 else 1.0)
            i += len(batch)
            if args.verbose:
                print(f"round starts at {time.time():.1f}", flush=True)
            outcomes = await asyncio.gather(
                *(
                    upload_once(
                        pages[k][1], url, run.expected[j], run.names, args, False, previous[k]
                    )
                    for k, j in enumerate(batch)
                ),
                return_exceptions=True,
            )
            times = sorted(o[1] for o in outcomes if not isinstance(o, BaseException))
            if i == len(batch):
                run.stats.first_round = times
            if times:
                print(
                    f"round of {len(batch)}: time to result {times[0]:.2f} .. {times[-1]:.2f} s",
                    flush=True,
                )
            for k, (j, outcome) in enumerate(zip(batch, outcomes)):
                if record(run, k, j, outcome) and not isinstance(outcome, BaseException):
                    previous[k] = outcome[0]["sha"]
                else:
                    await open_idle(pages[k][1], url, args)
                    previous[k] = None
    finally:
        for context, _ in pages:
            await context.close()


async def drive(
    server: Server,
    expected: list[Expected],
    names: list[str],
    args: argparse.Namespace,
    timings: Path,
) -> tuple[Stats, float, int]:
    """Warm-up upload, then the concurrent sessions; returns the stats, the RSS after
    warm-up and how many stage lines the warm-up wrote."""
    from playwright.async_api import async_playwright

    stats = Stats()
    run = Run(server, expected, names, stats, args)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            # Warm-up (not counted): TensorFlow import, model load, first trace.
            context, page = await new_page(browser)
            warm = expected[-1]
            t0 = time.monotonic()
            shown, _, _ = await upload_once(
                page, server.url, warm, names, args, reload=True, previous_sha=None
            )
            await context.close()
            problem = check(shown, warm, names, args.tol_pp)
            print(
                f"warm-up upload: {time.monotonic() - t0:.1f} s"
                + (f" (MISMATCH: {problem})" if problem else " (result matches)"),
                flush=True,
            )
            rss_warm = round(server.rss_mb(), 1)
            skip = len(read_timings(timings))
            print(f"server RSS after warm-up: {rss_warm:.0f} MB", flush=True)

            if args.mode == "together":
                await together(run, browser)
            else:
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(args.uploads):
                    queue.put_nowait(i)
                await asyncio.gather(
                    *(session(run, k, browser, queue) for k in range(args.sessions))
                )
        finally:
            await browser.close()
    return stats, rss_warm, skip


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10, help="concurrent browser sessions")
    ap.add_argument("--uploads", type=int, default=200, help="uploads across all sessions")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "cxr"))
    ap.add_argument("--mode", choices=("together", "reload", "reupload"), default="together",
                    help="together: all sessions open the page, then upload at the same "
                    "moment, round after round; reload: a fresh page (new Streamlit "
                    "session) per upload; reupload: replace the file in the same page, "
                    "each session at its own pace")  # fmt: skip
    ap.add_argument("--settle", type=float, default=5.0,
                    help="together: seconds the open pages wait before the first round")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per upload")
    ap.add_argument("--start-timeout", type=float, default=180.0, help="server start, s")
    ap.add_argument("--tol-pp", type=float, default=1.0,
                    help="allowed |shown - computed| per probability, percentage points")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--server", action="store_true",
                    help="start a Ray Serve model server and send the app's images there")  # fmt: skip
    ap.add_argument("--server-url", default="", help="use this running model server")
    args = ap.parse_args()
    if args.sessions < 1 or args.uploads < 1:
        ap.error("--sessions and --uploads must be >= 1")
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2

    # SIGTERM behaves like Ctrl-C, so the finally below stops the server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    images = pick_images(Path(args.data), args.uploads + 1, args.seed)  # +1: warm-up
    fd, timings_name = tempfile.mkstemp(prefix="cxr_timings_", suffix=".jsonl")
    os.close(fd)
    timings = Path(timings_name)
    env = {**os.environ, "CXR_TIMINGS": str(timings)}
    model_server = None
    if args.server and not args.server_url:
        model_server = start_model_server(env, args.start_timeout)
    url = args.server_url or (model_server.url if model_server else "")
    if url:
        env["CXR_MODEL_SERVER"] = url
    server = Server(free_port(), env)
    try:
        health = server.wait_healthy(args.start_timeout)
        rss_start = round(server.rss_mb(), 1)
        print(f"server {server.url} healthy after {health:.1f} s, RSS {rss_start:.0f} MB")
        t0 = time.monotonic()
        expected, names = expected_results(images)
        labels = sorted({e.label for e in expected[:-1]})
        print(
            f"{len(expected) - 1} images ({len({e.sha16 for e in expected[:-1]})} distinct; "
            f"labels {', '.join(labels)}): expected results computed in "
            f"{time.monotonic() - t0:.1f} s",
            flush=True,
        )
        t_run = time.monotonic()
        stats, rss_warm, skip = asyncio.run(drive(server, expected, names, args, timings))
        wall = time.monotonic() - t_run
        rss_end = round(server.rss_mb(), 1)
        rss_model_server = round(model_server.rss_mb(), 1) if model_server else None
    except KeyboardInterrupt:
        print("interrupted: stopping the server", file=sys.stderr)
        return 130
    except BaseException:
        print("--- server log (tail) ---", file=sys.stderr)
        print("\n".join(list(server.log)[-40:]), file=sys.stderr)
        raise
    finally:
        server.stop()
        if model_server is not None:
            model_server.stop()

    stages = stage_table(read_timings(timings, skip), stats.done)
    timings.unlink(missing_ok=True)
    for m in stats.messages[:20]:
        print("  " + m)
    r = lambda v: None if v is None else round(v, 3)  # noqa: E731
    summary = {
        "sessions": args.sessions,
        "uploads": stats.done,
        "p50_s": r(percentile(stats.times, 50)),
        "p95_s": r(percentile(stats.times, 95)),
        "errors": stats.errors,
        "crosstalk": stats.crosstalk,
        "rss_mb_start": rss_start,
        "rss_mb_after_warmup": rss_warm,
        "rss_mb_end": rss_end,
        "rss_mb_series": stats.rss_series,
        "p50_full_s": r(percentile(stats.full_times, 50)),
        "p95_full_s": r(percentile(stats.full_times, 95)),
        "first_round_p95_s": r(percentile(stats.first_round, 95)),
        "first_round_max_s": r(max(stats.first_round, default=None)),
        "settle_s": args.settle,
        "correct": stats.ok,
        "crosstalk_other_image": stats.crosstalk_other_image,
        "gate_rejected": stats.gate_rejected,
        "server_tracebacks": server.tracebacks,
        "mode": args.mode,
        "wall_s": round(wall, 1),
        "model": os.environ.get("CXR_MODEL") or "models/cxr_classifier.keras",
        "model_server": url or None,
        "rss_mb_model_server": rss_model_server,
        "stages": stages,
    }
    print_stage_table(stages)
    print(
        f"{stats.done} uploads by {args.sessions} sessions in {wall:.0f} s: time to result "
        f"p50 {summary['p50_s']} s, p95 {summary['p95_s']} s (whole page p50 "
        f"{summary['p50_full_s']} s, p95 {summary['p95_full_s']} s); first round (fresh "
        f"browsers) p95 {summary['first_round_p95_s']} s, max {summary['first_round_max_s']} s; "
        f"correct {stats.ok}, "
        f"errors {stats.errors}, cross-talk {stats.crosstalk}; server RSS {rss_start:.0f} -> "
        f"{rss_warm:.0f} (warm) -> {rss_end:.0f} MB"
    )
    print(json.dumps(summary), flush=True)
    return 0 if stats.errors == 0 and stats.crosstalk == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

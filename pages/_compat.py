"""The three private Streamlit internals CXR Lens relies on, and nothing else.

Streamlit offers no public switch for any of them (checked for Streamlit 1.67: no
config option turns off the legacy ``pages/`` folder mode or the Keras cleanup
after a run, and none loads a widget's frontend code before the widget is first
drawn; ``runner.postScriptGC = false`` in .streamlit/config.toml covers the public
half of the cleanup). tests/app/test_compat.py fails loudly when a Streamlit
upgrade renames or changes what is touched here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner


def page_setup() -> None:
    """First call of every page: makes sure the page runs inside app.py's navigation.

    Streamlit treats a folder named ``pages/`` beside the main script as a
    legacy (v1) multipage folder until the first ``st.navigation`` call of the
    process (``PagesManager.uses_pages_directory``): the very first run after a
    server start, if it is for a page URL such as ``/batch``, runs that page
    file alone (no banner, no sidebar, every file listed as a page). When a page
    finds itself in that mode it switches it off and reruns, so app.py (banner,
    navigation, sidebar) always wraps the page.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _close_figures() -> None:
    """The matplotlib half of Streamlit's cleanup after a run (never fails a rerun)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001, S110 - never fail a rerun over cleanup
            pass


def fast_reruns() -> None:
    """Stops Streamlit from clearing the Keras session after every run.

    After each script run Streamlit calls ``keras.backend.clear_session()``
    (``script_runner._clean_problem_modules``), which runs ``gc.collect()`` twice
    per rerun (slow with TensorFlow loaded: every slider move would lag) and clears
    TensorFlow's kernel cache. That
    cleanup is for scripts that build Keras models on every run; this app builds
    them once per process, so it is replaced by one that only closes matplotlib
    figures, the other half of Streamlit's cleanup.
    """
    script_runner._clean_problem_modules = _close_figures


#: Streamlit's frontend code, one ES module per chunk, named ``<Name>.<hash>.js``.
FRONTEND_JS = Path(st.__file__).parent / "static" / "static" / "js"
#: The chunks a Diagnose result needs that its empty page does not: the result's widgets
#: and images, the markup of the probability chart (rehype-raw) and the upload (axios).
RESULT_CHUNKS = (
    "Selectbox",
    "Slider",
    "Checkbox",
    "DownloadButton",
    "ImageList",
    "Spinner",
    "rehype-raw",
    "axios",
)


def frontend_chunks(names: tuple[str, ...]) -> list[str]:
    """The file names of the frontend chunks called ``names`` (one each, sorted)."""
    wanted = set(names)
    return sorted(f.name for f in FRONTEND_JS.glob("*.js") if f.name.split(".", 1)[0] in wanted)


def prefetch_frontend(names: tuple[str, ...]) -> None:
    """Loads the named frontend chunks now, in the background, without drawing anything.

    The frontend fetches and compiles a widget's code the first time that widget is
    drawn, so a browser's first result waited for some thirty files. Imported while
    the page is idle, the same modules are already loaded when the result needs them
    (a module is loaded once per page, by its URL). The chunks sit beside the main
    script, whose URL gives their folder under any ``server.baseUrlPath``.
    """
    files = json.dumps(frontend_chunks(names))
    st.html(
        "<script>(() => {"
        "const main = [...document.scripts].map(s => s.src)"
        ".find(u => /\\/static\\/js\\/index\\.[^/]*\\.js$/.test(u));"
        f"if (main) for (const f of {files}) import(new URL(f, main).href).catch(() => {{}});"
        "})();</script>",
        unsafe_allow_javascript=True,
    )

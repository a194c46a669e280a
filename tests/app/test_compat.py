"""pages/_compat.py: the private Streamlit internals the app touches still exist and still
mean what the app assumes. A failure here after a Streamlit upgrade says which one moved."""

from __future__ import annotations

import inspect
import sys
import types

import streamlit
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner

from pages import _compat


def test_the_legacy_pages_flag_is_a_class_attribute_navigation_clears():
    assert "uses_pages_directory" in vars(PagesManager), streamlit.__version__
    assert PagesManager.uses_pages_directory in (None, True, False)
    # Set from the "pages" folder beside the main script when a session starts ...
    assert "uses_pages_directory" in inspect.getsource(PagesManager.__init__)
    # ... and cleared by st.navigation, as page_setup does on a page's first run.
    from streamlit.commands import navigation

    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation)
    # The script runner runs the legacy mode from it.
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner.ScriptRunner)


def test_page_setup_leaves_legacy_mode_and_reruns(monkeypatch):
    reruns = []
    monkeypatch.setattr(_compat.st, "rerun", lambda: reruns.append(1))
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    _compat.page_setup()
    assert PagesManager.uses_pages_directory is False and reruns == [1]
    _compat.page_setup()
    assert reruns == [1]  # outside the legacy mode it does nothing


def test_the_cleanup_after_a_run_is_the_module_function_it_replaces():
    cleanup = script_runner._clean_problem_modules
    assert callable(cleanup) and inspect.signature(cleanup).parameters == {}
    # The runner looks the function up by its module-global name after every run,
    # so replacing the module attribute replaces the cleanup.
    assert "_log_if_error(_clean_problem_modules)" in inspect.getsource(script_runner.ScriptRunner)


def test_streamlit_still_clears_the_keras_session_that_fast_reruns_keeps(monkeypatch):
    """If Streamlit stops calling clear_session, fast_reruns (and this module) can go."""
    source = inspect.getsource(script_runner)
    body = source.split("def _clean_problem_modules", 1)[1].split("\ndef ", 1)[0]
    assert "clear_session()" in body
    original = script_runner._clean_problem_modules
    if original is _compat._close_figures:
        return  # already replaced in this process (an AppTest ran app.py): the source says it
    cleared = []
    fake = types.SimpleNamespace(
        backend=types.SimpleNamespace(clear_session=lambda: cleared.append(1))
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    original()
    assert cleared == [1]


def test_fast_reruns_keeps_the_keras_session_and_closes_figures(monkeypatch):
    cleared, closed = [], []
    fake_keras = types.SimpleNamespace(
        backend=types.SimpleNamespace(clear_session=lambda: cleared.append(1))
    )
    fake_plt = types.SimpleNamespace(close=lambda which: closed.append(which))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", fake_plt)
    monkeypatch.setattr(
        script_runner, "_clean_problem_modules", script_runner._clean_problem_modules
    )
    _compat.fast_reruns()
    script_runner._clean_problem_modules()
    assert cleared == [] and closed == ["all"]


def test_the_prefetched_frontend_chunks_exist_one_per_name():
    """A Streamlit upgrade that renames a chunk the Diagnose page prefetches fails here."""
    files = _compat.frontend_chunks(_compat.RESULT_CHUNKS)
    assert sorted(f.split(".", 1)[0] for f in files) == sorted(_compat.RESULT_CHUNKS), files
    assert all((_compat.FRONTEND_JS / f).is_file() for f in files)
    # The frontend imports each of them lazily by the same URL: "./<file>" beside the others.
    sources = [p.read_text(errors="ignore") for p in _compat.FRONTEND_JS.glob("*.js")]
    for f in files:
        assert any(f"import(`./{f}`)" in src for src in sources), f


def test_prefetch_frontend_imports_each_chunk_beside_the_main_script(monkeypatch):
    bodies = []
    monkeypatch.setattr(_compat.st, "html", lambda body, **kw: bodies.append((body, kw)))
    _compat.prefetch_frontend(("Slider", "NoSuchChunk"))
    ((body, kw),) = bodies
    assert kw == {"unsafe_allow_javascript": True}
    assert body.startswith("<script>") and body.endswith("</script>")
    slider = _compat.frontend_chunks(("Slider",))[0]
    assert f'["{slider}"]' in body  # the unknown name is left out
    assert "import(new URL(f, main).href)" in body

"""The app starts light: importing what app.py and the pages import loads no TensorFlow or
Keras (they come with the first model, in a background thread)."""

from __future__ import annotations

import ast
import subprocess
import sys

from app_helpers import ROOT

HEAVY = ("tensorflow", "keras", "tf_keras_vis")


def _imported_modules() -> list[str]:
    """Every module app.py and pages/*.py import at their top level."""
    names: set[str] = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                if node.module == "pages":
                    names.update(f"pages.{alias.name}" for alias in node.names)
    return sorted(names - {"__future__"})


def test_the_pages_import_cxrlib_app_and_pages_modules():
    modules = _imported_modules()
    assert "streamlit" in modules and "pages._ui" in modules and "pages._compat" in modules
    assert any(m.startswith("cxrlib.app.") for m in modules)


def test_importing_the_app_loads_no_tensorflow_or_keras():
    modules = _imported_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()[:500]}"

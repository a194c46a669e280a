"""Static checks of the package: its boundaries, its types and its style.

docs/architecture.md ("The dependency rule") fixes that ``cxrlib`` is typed, stays
small and never imports Streamlit (the pages call it, never the other way round). These
tests hold the tree to that, so CI (``make test``) fails when it drifts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cxrlib"


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_scan_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from streamlit.runtime import x\n    return x\n")
    assert _imported_modules(source) == {"os", "streamlit"}


@pytest.mark.parametrize(
    "module", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_cxrlib_never_imports_streamlit(module):
    assert "streamlit" not in _imported_modules(module)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cxrlib_type_checks():
    # Configuration in pyproject.toml ([tool.mypy]): every function annotated, bodies checked.
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_and_format():
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

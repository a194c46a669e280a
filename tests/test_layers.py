"""The layer rule of ``cxrlib`` (docs/architecture.md), read from every module's imports.

Each sub-package may import only the sub-packages listed for it in :data:`ALLOWED`;
no chain of imports between modules may close a cycle. Imports inside functions
count too: a lazy import hides a dependency from the reader, not from the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cxrlib"

#: What each layer may import (itself always). Dependencies point one way:
#: core <- io <- infer <- {train, predict} <- evaluate; describe reads core only;
#: pacs beside serve; serve and app sit on top; nothing but train and evaluate imports train.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "io": frozenset({"core"}),
    "describe": frozenset({"core"}),
    "infer": frozenset({"core", "io"}),
    "train": frozenset({"core", "io", "infer"}),
    "predict": frozenset({"core", "io", "infer"}),
    "serve": frozenset({"core", "io", "infer", "predict"}),
    "evaluate": frozenset({"core", "io", "infer", "predict", "train", "describe"}),
    "pacs": frozenset({"core", "io", "infer", "predict"}),
    "app": frozenset({"core", "io", "infer", "predict", "describe", "serve", "pacs"}),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def cxrlib_imports(path: Path, known: Iterable[str], root: Path = ROOT) -> set[str]:
    """The ``cxrlib`` modules a file imports, at any depth (lazy imports too).

    ``from cxrlib.x import y`` counts as importing ``cxrlib.x.y`` when that is a
    module, else ``cxrlib.x``.
    """
    known = set(known)
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cxrlib")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "cxrlib":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks :data:`ALLOWED` or closes a cycle, in words."""
    package = root / "cxrlib"
    files = {module_name(p, root): p for p in sorted(package.rglob("*.py"))}
    graph = {m: cxrlib_imports(p, files, root) - {m} for m, p in files.items()}
    problems = []
    for mod, deps in graph.items():
        src = layer(mod)
        for dep in sorted(deps):
            dst = layer(dep)
            if src is None or dst is None or dst == src:
                continue
            if src not in ALLOWED:
                problems.append(f"{mod}: sub-package {src!r} is not in the layer rule")
            elif dst not in ALLOWED[src]:
                problems.append(f"{mod} imports {dep}: {src} may not import {dst}")
    problems += [" -> ".join(c) + ": import cycle" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cxrlib_follows_the_layer_rule():
    assert violations() == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in [p for p in (tmp_path / "cxrlib").rglob("*") if p.is_dir()] + [tmp_path / "cxrlib"]:
        (d / "__init__.py").touch()
    return tmp_path


def test_rule_catches_an_upward_import_even_inside_a_function(tmp_path):
    root = _plant(
        tmp_path,
        {
            "cxrlib/core/a.py": "def f():\n    from cxrlib.infer import b\n    return b\n",
            "cxrlib/infer/b.py": "from cxrlib.core import a\n",
        },
    )
    found = violations(root)
    assert any("core may not import infer" in v for v in found), found
    assert any("import cycle" in v for v in found), found


def test_rule_catches_a_cycle_inside_one_layer_and_relative_imports(tmp_path):
    root = _plant(
        tmp_path,
        {
            "cxrlib/infer/a.py": "from . import b\n",
            "cxrlib/infer/b.py": "from .a import thing\n",
            "cxrlib/describe/c.py": "from ..infer import a\n",
        },
    )
    found = violations(root)
    assert "cxrlib.infer.a -> cxrlib.infer.b: import cycle" in found, found
    assert any("describe may not import infer" in v for v in found), found


@pytest.mark.parametrize("sub", sorted(ALLOWED))
def test_allowed_layers_exist(sub):
    # A layer named in the rule but missing from the tree is a stale rule.
    assert (PACKAGE / sub / "__init__.py").exists(), sub

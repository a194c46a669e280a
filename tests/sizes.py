"""Sizes a reader can hold: no module over 400 lines, no function over 80.

Run as ``python tests/sizes.py`` (``make lint`` does); ``tests/test_static.py``
runs the same check on every ``make test``. Prints each offender and exits 1.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def checked_files(root: Path = ROOT) -> list[Path]:
    """The product's Python: ``cxrlib/``, ``app.py`` and ``pages/``."""
    return sorted(
        [*(root / "cxrlib").rglob("*.py"), root / "app.py", *(root / "pages").glob("*.py")]
    )


def oversized(path: Path, root: Path = ROOT) -> Iterator[str]:
    """One line per module or function in ``path`` that is too long."""
    text = path.read_text()
    rel = path.relative_to(root)
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{rel}: {lines} lines (limit {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # From the first decorator to the last line of the body.
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            n = (node.end_lineno or node.lineno) - start + 1
            if n > MAX_FUNCTION_LINES:
                yield f"{rel}:{node.lineno} {node.name}(): {n} lines (limit {MAX_FUNCTION_LINES})"


def main(root: Path = ROOT) -> int:
    found = [line for path in checked_files(root) for line in oversized(path, root)]
    print("\n".join(found) if found else "sizes: every module and function is within its limit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

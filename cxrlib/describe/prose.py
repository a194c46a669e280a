"""How :mod:`cxrlib.describe` writes: the fixed prose of ``text/*.md`` (what reads the same
for every model, so the pages and the model card say it alike), names, and table figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from numbers import Real
from typing import Any

import pandas as pd

#: The Metrics page's tabs, in order; a caveat's evidence names one of them.
METRICS_TABS = (
    "Overview",
    "Threshold",
    "Calibration",
    "By source",
    "Heatmaps",
    "Shortcut audit",
    "Outside data",
)

#: Each source of ../shared/cxr in a few words (its SOURCES.md).
SOURCE_NAMES = {
    "nih": "adult NIH Clinical Center",
    "quex": "adult RSNA challenge (COVID-QU-Ex)",
    "kermany": "paediatric Guangzhou",
    "radiography": "COVID-19 Radiography Database",
    "ieee8023": "publication-figure (Cohen et al.)",
    "cxnet": "COVID-CXNet",
    "figure1": "Figure 1 initiative",
}

#: Table columns holding a rate (shown as a percentage), and a score that is not one.
PERCENT_COLUMNS = (
    "sensitivity",
    "specificity",
    "PPV",
    "NPV",
    "accuracy",
    "mean",
    "median",
    "lung focus",
)
DECIMAL_COLUMNS = ("F1", "AUC", "macro-F1")


def metrics_tab(name: str) -> str | None:
    """The Metrics tab a link names ("calibration", "shortcut-audit", "Outside+data")."""
    wanted = " ".join(name.lower().replace("-", " ").replace("_", " ").replace("+", " ").split())
    return next((tab for tab in METRICS_TABS if tab.lower() == wanted), None)


@cache
def prose(name: str) -> str:
    """The Markdown of ``text/<name>.md``, without its trailing newline."""
    return (resources.files("cxrlib.describe") / "text" / f"{name}.md").read_text("utf-8").strip()


@dataclass(frozen=True)
class Caveat:
    """One of the model card's caveats; ``tab`` is the Metrics tab holding its evidence."""

    title: str
    body: str
    tab: str


def caveats() -> tuple[Caveat, ...]:
    """The caveats of ``text/caveats.md``: ``## title``, text, ``Evidence: <tab>`` each."""
    out = []
    for block in prose("caveats").split("## ")[1:]:
        title, _, rest = block.partition("\n")
        body, _, tab = rest.strip().rpartition("Evidence:")
        if tab.strip() not in METRICS_TABS:
            raise ValueError(f"caveat {title!r} names no Metrics tab as its evidence: {tab!r}")
        out.append(Caveat(title.strip(), body.strip(), tab.strip()))
    return tuple(out)


def markdown_rows(name: str) -> list[dict[str, Any]]:
    """The rows of the one pipe table in ``text/<name>.md``, as ``{column: cell}``."""
    lines = [line.strip() for line in prose(name).splitlines() if line.strip().startswith("|")]
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(table[0], row)) for row in table[2:]]


def source_name(source: str) -> str:
    """A source in words ("adult NIH Clinical Center"), or its id when unknown."""
    return SOURCE_NAMES.get(source, source)


def join(parts: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def frame(rows: list[dict[str, Any]], index: str | list[str]) -> pd.DataFrame:
    """``rows`` as a DataFrame indexed by ``index`` (an empty one without rows)."""
    return pd.DataFrame(rows).set_index(index) if rows else pd.DataFrame()


def column_formats(df: pd.DataFrame) -> dict[Any, str]:
    """A format string per column of a metrics DataFrame that needs one."""
    formats: dict[Any, str] = {}
    for c in df.columns:
        name = str(c)
        if (
            name in PERCENT_COLUMNS
            or name.endswith((" accuracy", " sensitivity"))
            or "called " in name
        ):
            formats[c] = "{:.1%}"
        elif (
            name in DECIMAL_COLUMNS
            or name.startswith(("confidence drop", "difference"))
            or name.endswith(" AUC")
            or "IoU" in name
            or "correlation" in name
        ):
            formats[c] = "{:.3f}"
        elif df[c].dtype.kind in "iuf":
            formats[c] = "{:,.0f}"
    return formats


def _cell(value: Any, fmt: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = fmt.format(value) if fmt and isinstance(value, Real) else str(value)
    return text.replace("|", "\\|")


def markdown_table(df: pd.DataFrame | None) -> str:
    """A metrics DataFrame as a Markdown table, formatted as on the pages."""
    if df is None or not len(df):
        return ""
    formats = column_formats(df)
    header = [str(n) if n is not None else "" for n in df.index.names] + list(map(str, df.columns))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in df.iterrows():
        cells = [_cell(k, None) for k in (key if isinstance(key, tuple) else (key,))]
        cells += [_cell(row[c], formats.get(c)) for c in df.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""How a metrics table's figures are written, on a page and in the downloaded model card:
rates as percentages, F1, AUC and the like to three decimals, counts as whole numbers."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

#: Columns holding a rate, shown as a percentage.
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
#: Columns holding a score between 0 and 1 that is not a rate.
DECIMAL_COLUMNS = ("F1", "AUC", "macro-F1")


def column_formats(df: Any) -> dict[Any, str]:
    """A format string (``"{:.1%}"``...) per column of a metrics DataFrame that needs one."""
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


def markdown_table(df: Any) -> str:
    """A metrics DataFrame as a Markdown pipe table, its index first, figures formatted as
    on the pages and a dash where a figure does not exist."""
    if df is None or not len(df):
        return ""
    formats = column_formats(df)
    index_names = [str(n) if n is not None else "" for n in df.index.names]
    header = index_names + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in df.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = [_cell(k, None) for k in keys]
        cells += [_cell(row[c], formats.get(c)) for c in df.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

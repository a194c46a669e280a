"""The fixed prose of the Metrics page and the model card: Markdown files in ``text/``.

Only sentences that carry a measured figure are written in code (the other modules of
:mod:`cxrlib.describe`); everything that reads the same for every model is here, so the
pages and the downloaded model card say it in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

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


def metrics_tab(name: str) -> str | None:
    """The Metrics tab a link names, however it is written ("calibration", "shortcut-audit",
    "Outside+data"); None for no tab."""
    wanted = " ".join(name.lower().replace("-", " ").replace("_", " ").replace("+", " ").split())
    return next((tab for tab in METRICS_TABS if tab.lower() == wanted), None)


@cache
def prose(name: str) -> str:
    """The Markdown of ``text/<name>.md``, without its trailing newline."""
    return (resources.files("cxrlib.describe") / "text" / f"{name}.md").read_text("utf-8").strip()


@dataclass(frozen=True)
class Caveat:
    """One of the model card's most important caveats.

    Attributes:
        title: The caveat in a few words.
        body: What it means (Markdown).
        tab: The tab of the Metrics page that holds its evidence (one of :data:`METRICS_TABS`).
    """

    title: str
    body: str
    tab: str


def caveats() -> tuple[Caveat, ...]:
    """The caveats of ``text/caveats.md``: a ``## title``, its text, an ``Evidence: <tab>``
    line each."""
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

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line))) for line in lines[2:]]

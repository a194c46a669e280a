"""Words shared by the sentences of :mod:`cxrlib.describe`: source names and lists."""

from __future__ import annotations

from collections.abc import Sequence

# What each source of ../shared/cxr is, in a few words (its SOURCES.md), for sentences
# that name a source to someone who has not read it.
SOURCE_NAMES = {
    "nih": "adult NIH Clinical Center",
    "quex": "adult RSNA challenge (COVID-QU-Ex)",
    "kermany": "paediatric Guangzhou",
    "radiography": "COVID-19 Radiography Database",
    "ieee8023": "publication-figure (Cohen et al.)",
    "cxnet": "COVID-CXNet",
    "figure1": "Figure 1 initiative",
}


def source_name(source: str) -> str:
    """A source in words ("adult NIH Clinical Center"), or its id when unknown."""
    return SOURCE_NAMES.get(source, source)


def join(parts: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

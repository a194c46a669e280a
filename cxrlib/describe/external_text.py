"""The external check (how collections no training image came from were answered) in words
and as a table."""

from __future__ import annotations

from typing import Any

from cxrlib.core.formatting import pct, pct_range
from cxrlib.core.metrics import Collection, External, SubsetCalls
from cxrlib.describe.prose import frame, join

#: How the external table names the subsets of :data:`cxrlib.evaluate.external.SUBSETS`.
EXTERNAL_SUBSETS = {"all": "all", "segmenter_unseen": "not in the segmenter's training"}


def external_records(section: External | None) -> list[tuple[Collection, SubsetCalls]]:
    """``(collection, its "all" subset)`` of each collection with images."""
    collections = section.collections.values() if section else ()
    return [
        (rec, sub) for rec in collections if (sub := rec.subsets.get("all")) is not None and sub.n
    ]


def external_table(section: External | None) -> Any:
    """One row per collection and subset: the share given each answer, and the refusals."""
    rows = []
    for rec, _ in external_records(section):
        for key, sub in rec.subsets.items():
            row: dict[str, Any] = {
                "collection": f"{rec.name} ({rec.label})",
                "images": EXTERNAL_SUBSETS.get(key, key),
                "n": sub.n,
            }
            row.update({f"called {c}": v for c, v in sub.share.items()})
            if key == "all":
                row["refused by the input check"] = rec.input_check_refused
            rows.append(row)
    return frame(rows, ["collection", "images"])


def _answers(sub: SubsetCalls, label: str) -> list[str]:
    """ "'normal' for **58%** (95% CI 52-64%)" per answer given, the collection's own class
    first."""
    share, parts = sub.share, []
    for c in sorted(share, key=lambda c: (c != label, -(share[c] or 0))):
        value = share[c]
        if value is None or (c != label and not value):
            continue
        low_high = sub.ci95.get(c)
        interval = f" (95% CI {pct_range(low_high[0], low_high[1])})" if low_high else ""
        parts.append(f"'{c}' for **{pct(value)}**{interval}")
    return parts


def _checks(rec: Collection, sub: SubsetCalls) -> str:
    """What the collection's confident answers, copies and input check add."""
    text = ""
    sure = sum(v or 0 for c, v in sub.confident_share.items() if c != rec.label)
    if sure and sub.confident_at:
        text += (
            f" {pct(sure)} got a wrong answer with a probability of "
            f"{pct(sub.confident_at)} or more."
        )
    dup = rec.duplicates
    if dup is not None and dup.found == 0 and dup.highest_similarity is not None:
        text += (
            " None of them is a copy of an image in its data (highest thumbnail "
            f"correlation {dup.highest_similarity:.2f}; a copy scores above 0.99)."
        )
    refused = rec.input_check_refused
    if refused == 0:
        text += " The input check let every one through."
    elif refused is not None:
        text += f" The input check refused {refused} of them."
    return text


def describe_external(section: External | None) -> list[str]:
    """One line per collection: what it answered, and what the collection can say."""
    lines = []
    views = section.views if section else None
    for rec, sub in external_records(section):
        parts = _answers(sub, rec.label)
        if not parts:
            continue
        line = (
            f"**{rec.name}** ({rec.description or 'a collection'}): of its "
            f"{sub.n:,} {rec.label} images, from no source it was trained on, it answered "
            + join(parts)
            + (f", averaged over {views} views as the app predicts" if views and views > 1 else "")
            + "."
        )
        lines.append(line + _checks(rec, sub))
    return lines

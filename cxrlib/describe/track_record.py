"""How the model's past answers of one class turned out: the Diagnose page's track record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from cxrlib.core.formatting import pct, pct_of
from cxrlib.core.metrics import CONFIDENT, Metrics
from cxrlib.describe.outside_text import external_records
from cxrlib.describe.prose import source_name


@dataclass(frozen=True)
class OutsideCall:
    """How often an outside collection (``people``: "normal adult") got one answer, and got
    it with at least ``confident_at``."""

    name: str
    people: str
    n: int
    share: float
    confident_share: float | None = None
    confident_at: float | None = None


@dataclass(frozen=True)
class TrackRecord:
    """How the model's answers ``label`` turned out on the internal test split, on held-out
    sources (``missed_elsewhere``: what a full-length run missed that matters for this answer)
    and on outside collections; ``confusions``: ``(source, true, answered, images)``."""

    label: str
    calls: int
    right: int
    held_out_accuracy: float | None
    held_out_sources: int
    confusions: tuple[tuple[str, str, int, int], ...]
    held_out_schedule: str = ""
    missed_elsewhere: tuple[tuple[str, str, float], ...] = ()
    called_elsewhere: tuple[OutsideCall, ...] = ()
    confident_calls: int = 0
    confident_right: int = 0


#: A (source, true class) group of this many test images or more, this share of it given an
#: answer, is a known confusion of that answer; so is an outside collection given it that often.
MIN_GROUP = 20
MIN_SHARE = 0.2
#: A class a held-out model found less often than this counts as missed elsewhere.
MISSED_BELOW = 0.5
#: ...when the source held that many images of it at least (where the count was recorded).
MISSED_MIN_IMAGES = 20


def track_record(metrics: Metrics | None, label: str) -> TrackRecord | None:
    """The track record of an answer ``label`` (None without test figures)."""
    split = metrics.test if metrics else None
    cm = split.confusion_matrix if split else None
    if metrics is None or split is None or cm is None:
        return None
    labels = list(cm.labels)
    if label not in labels or not cm.matrix:
        return None
    matrix = np.asarray(cm.matrix, dtype=np.int64)
    k = labels.index(label)
    kept = [r for r in split.predictions if r.label in labels and len(r.probs) == len(labels)]
    called = [bool(np.argmax(r.probs) == k) for r in kept]
    groups = Counter((r.source or "unknown", str(r.label)) for r in kept)
    answered = Counter((r.source or "unknown", str(r.label)) for r, c in zip(kept, called) if c)
    # The answers ``label`` given at CONFIDENT or more: right or not.
    sure = [r.label == label for r, c in zip(kept, called) if c and max(r.probs) >= CONFIDENT]
    confusions = sorted(
        (
            (source, true, answered[source, true], n)
            for (source, true), n in groups.items()
            if true != label and n >= MIN_GROUP and answered[source, true] >= MIN_SHARE * n
        ),
        key=lambda c: -c[2] / c[3],
    )
    full = metrics.loso_full.sources if metrics.loso_full else {}
    missed = [
        (source, c, float(found))
        for source, v in full.items()
        for c, found in v.as_predicted().per_class_accuracy.items()
        # One side normal, the other not: a covid answer says nothing of missed pneumonia.
        if (c == "normal") != (label == "normal")
        and found is not None
        and found < MISSED_BELOW
        # A share of a handful of images is no record (runs before 'support' was kept: quoted).
        and v.support.get(c, MISSED_MIN_IMAGES) >= MISSED_MIN_IMAGES
    ]
    schedule = metrics.loso.schedule if metrics.loso else {}
    epochs, steps = schedule.get("epochs"), schedule.get("steps_per_epoch")
    runs = f"{epochs} epochs of {steps} steps" if steps else f"{epochs} full epochs"
    held_out = metrics.loso.sources.values() if metrics.loso else ()
    accs = [float(a) for v in held_out if (a := v.as_predicted().accuracy) is not None]
    return TrackRecord(
        label=label,
        calls=int(matrix[:, k].sum()),
        right=int(matrix[k, k]),
        held_out_accuracy=float(np.mean(accs)) if accs else None,
        held_out_sources=len(accs),
        confusions=tuple(confusions),
        held_out_schedule=runs if epochs else "",
        missed_elsewhere=tuple(sorted(missed, key=lambda m: m[2])),
        called_elsewhere=tuple(
            OutsideCall(
                name=rec.name,
                people=" ".join(filter(None, (rec.label, rec.population))),
                n=int(sub.n),
                share=float(share),
                confident_share=sub.confident_share.get(label),
                confident_at=sub.confident_at,
            )
            for rec, sub in external_records(metrics.external)
            if rec.label != label
            and (share := sub.share.get(label)) is not None
            and share >= MIN_SHARE
        ),
        confident_calls=len(sure),
        confident_right=sum(sure),
    )


def _outside_line(r: TrackRecord, o: OutsideCall) -> str:
    text = (
        f"Of {o.n:,} {o.people} chest X-rays from a collection no training image came from "
        f"({o.name}), it answered '{r.label}' for **{pct(o.share)}**"
    )
    if o.confident_share and o.confident_at:
        at = pct(o.confident_at)
        text += f", for **{pct(o.confident_share)}** with a probability of {at} or more"
        if r.confident_calls:
            text += (
                f". On the internal test split its '{r.label}' answers that sure were right "
                f"{pct_of(r.confident_right, r.confident_calls)} of the time "
                f"({r.confident_right:,} of {r.confident_calls:,}): outside the hospitals it "
                "learnt from, a high probability is no guarantee"
            )
    return text + "."


def describe_track_record(r: TrackRecord) -> list[str]:
    """The Diagnose page's "how often was this answer right" lines (markdown)."""
    lines = []
    if r.calls:
        lines.append(
            f"On the internal test split, **{pct_of(r.right, r.calls)}** of its "
            f"'{r.label}' answers were right ({r.right:,} of {r.calls:,}). Those images come "
            "from the hospitals it was trained on."
        )
    if r.held_out_accuracy is not None:
        shortened = f", shortened to {r.held_out_schedule}" if r.held_out_schedule else ""
        lines.append(
            f"Retrained with one data source left out (the same recipe{shortened}; "
            f"{r.held_out_sources} sources in turn), it was right on "
            f"**{pct(r.held_out_accuracy)}** of the left-out images."
        )
    lines += [_outside_line(r, o) for o in r.called_elsewhere]
    lines += [
        f"Known confusion: it also answered '{r.label}' for {called} of {n} "
        f"{source_name(source)} {true} images in the test split."
        for source, true, called, n in r.confusions
    ]
    # One line per class missed, its held-out sources in turn.
    for c in dict.fromkeys(c for _, c, _ in r.missed_elsewhere):
        (where, found), *rest = [
            (source_name(source), f) for source, missed, f in r.missed_elsewhere if missed == c
        ]
        share = f"**{pct(found)}**"
        if c == "normal":
            what = f"called only {share} of their normal chest X-rays normal"
            so = f"a '{r.label}' answer may be a normal chest X-ray"
        else:
            what = f"found only {share} of their {c}"
            so = f"a '{r.label}' answer does not rule {c} out"
        others = "".join(f"; without the {w} images, **{pct(f)}**" for w, f in rest)
        lines.append(
            f"Trained in full without the {where} images, it {what}{others}: at a hospital it "
            f"has not seen, {so}."
        )
    return lines

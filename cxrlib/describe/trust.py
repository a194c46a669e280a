"""How far to trust the model, from its metrics file: the shortcut audit's tables
(lung focus, lungs erased / lungs only, leave one source out), the external check
(a collection no training image came from), the comparison with models that were
not committed, and the track record the Diagnose page quotes for an answer.

Every figure here was measured by ``python -m cxrlib.evaluate`` and saved; these
functions only select, order and word them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrlib.core.methods import METHOD_LABELS
from cxrlib.evaluate.external import CONFIDENT
from cxrlib.describe.modelcard import describe_input_and_trunk

# What each source of ../shared/cxr is, in a few words (its SOURCES.md), for sentences
# that name a source to someone who has not read it.
SOURCE_NAMES = {
    "nih": "adult NIH Clinical Center",
    "kermany": "paediatric Guangzhou",
    "radiography": "COVID-19 Radiography Database",
    "ieee8023": "publication-figure (Cohen et al.)",
    "cxnet": "COVID-CXNet",
    "figure1": "Figure 1 initiative",
}


@dataclass(frozen=True)
class OutsideCall:
    """How often a collection no training image came from got one answer.

    Attributes:
        name: The collection.
        people: Its class and population ("normal adult").
        n: Its images.
        share: The share that got the answer.
        confident_share: The share that got it with a probability of at least ``confident_at``.
        confident_at: That probability.
    """

    name: str
    people: str
    n: int
    share: float
    confident_share: float | None = None
    confident_at: float | None = None


@dataclass(frozen=True)
class TrackRecord:
    """How the model's past answers of one class turned out, from its metrics file.

    Attributes:
        label: The class it answered.
        calls: Internal test images it gave that answer.
        right: Of those, the ones whose label is ``label``.
        held_out_accuracy: Mean accuracy over the held-out sources of the
            leave-one-source-out runs (views-averaged where recorded), or None.
        held_out_sources: How many sources that mean is over.
        held_out_schedule: Those runs' schedule in words ("3 epochs of 120 steps"),
            or "" when not recorded.
        confusions: ``(source, true label, called label, group size)`` for the groups
            of the test split that most often got this answer wrongly, most often first.
        missed_elsewhere: ``(source, class, share found)`` from the full-length
            leave-one-source-out runs (``loso_full``): a class that a model trained without
            that source found under half of, where that matters for this answer: a disease
            missed, for a 'normal' answer; normal chests missed, for a disease answer.
        called_elsewhere: From the external check (``external``): each collection of
            another class that got this answer for at least ``min_share`` of its images.
        confident_calls: Internal test images it gave this answer with a probability of
            at least :data:`cxrlib.evaluate.external.CONFIDENT`.
        confident_right: Of those, the ones whose label is ``label``.
    """

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


#: A class a held-out model found less often than this counts as missed elsewhere.
MISSED_BELOW = 0.5
#: ...when the source held that many images of it at least (where the count was recorded).
MISSED_MIN_IMAGES = 20


def track_record(
    metrics: dict[str, Any] | None,
    label: str,
    min_group: int = 20,
    min_share: float = 0.2,
) -> TrackRecord | None:
    """What the saved test predictions say about an answer of ``label``.

    A (source, true class) group of at least ``min_group`` test images is a known
    confusion when at least ``min_share`` of it was answered ``label``.
    """
    split = ((metrics or {}).get("splits") or {}).get("test") or {}
    cm = split.get("confusion_matrix") or {}
    labels = list(cm.get("labels") or [])
    if label not in labels or not cm.get("matrix"):
        return None
    matrix = np.asarray(cm["matrix"], dtype=np.int64)
    k = labels.index(label)
    groups: dict[tuple[str, str], list[int]] = {}
    sure = [0, 0]  # answers of this label at CONFIDENT or more: given, right
    for r in split.get("predictions") or []:
        if r.get("label") not in labels or len(r.get("probs", [])) != len(labels):
            continue
        g = groups.setdefault((str(r.get("source", "unknown")), r["label"]), [0, 0])
        answered = bool(np.argmax(r["probs"]) == k)
        g[0] += 1
        g[1] += answered
        if answered and max(r["probs"]) >= CONFIDENT:
            sure[0] += 1
            sure[1] += int(r["label"] == label)
    confusions = sorted(
        (
            (source, true, called, n)
            for (source, true), (n, called) in groups.items()
            if true != label and n >= min_group and called >= min_share * n
        ),
        key=lambda c: -c[2] / c[3],
    )
    loso = (metrics or {}).get("loso") or {}
    sources = loso_sources(loso)
    schedule = loso.get("schedule") or {}
    epochs, steps = schedule.get("epochs"), schedule.get("steps_per_epoch")
    if epochs and steps:
        run = f"{epochs} epochs of {steps} steps"
    else:
        run = f"{epochs} full epochs" if epochs else ""
    accs = [
        float(a)
        for v in sources.values()
        if isinstance(v, dict) and (a := as_predicted(v).get("accuracy")) is not None
    ]
    missed = [
        (source, c, float(found))
        for source, v in loso_sources((metrics or {}).get("loso_full") or {}).items()
        for c, found in (as_predicted(v).get("per_class_accuracy") or {}).items()
        # One side normal, the other not: a covid answer says nothing of missed pneumonia.
        if (c == "normal") != (label == "normal")
        and found is not None
        and found < MISSED_BELOW
        # A share of a handful of images is no record (runs before 'support' was kept: quoted).
        and (v.get("support") or {}).get(c, MISSED_MIN_IMAGES) >= MISSED_MIN_IMAGES
    ]
    return TrackRecord(
        label=label,
        calls=int(matrix[:, k].sum()),
        right=int(matrix[k, k]),
        held_out_accuracy=float(np.mean(accs)) if accs else None,
        held_out_sources=len(accs),
        confusions=tuple(confusions),
        held_out_schedule=run,
        missed_elsewhere=tuple(sorted(missed, key=lambda m: m[2])),
        called_elsewhere=tuple(
            OutsideCall(
                name=rec["name"],
                people=" ".join(filter(None, (rec["label"], rec.get("population")))),
                n=int(sub["n"]),
                share=float(share),
                confident_share=(sub.get("confident_share") or {}).get(label),
                confident_at=sub.get("confident_at"),
            )
            for rec, sub in external_records((metrics or {}).get("external") or {})
            if rec["label"] != label
            and (share := (sub.get("share") or {}).get(label)) is not None
            and share >= min_share
        ),
        confident_calls=sure[0],
        confident_right=sure[1],
    )


def describe_track_record(r: TrackRecord) -> list[str]:
    """The Diagnose page's "how often was this answer right" lines (markdown)."""
    lines = []
    if r.calls:
        lines.append(
            f"On the internal test split, **{100 * r.right / r.calls:.0f}%** of its "
            f"'{r.label}' answers were right ({r.right:,} of {r.calls:,}). Those images come "
            "from the hospitals it was trained on."
        )
    if r.held_out_accuracy is not None:
        recipe = "the same recipe" + (
            f", shortened to {r.held_out_schedule}" if r.held_out_schedule else ""
        )
        lines.append(
            f"Retrained with one data source left out ({recipe}; {r.held_out_sources} sources "
            f"in turn), it was right on **{100 * r.held_out_accuracy:.0f}%** of the left-out "
            "images."
        )
    for o in r.called_elsewhere:
        text = (
            f"Of {o.n:,} {o.people} chest X-rays from a collection no training image came from "
            f"({o.name}), it answered '{r.label}' for **{100 * o.share:.0f}%**"
        )
        if o.confident_share and o.confident_at:
            at = f"{100 * o.confident_at:.0f}%"
            text += f", for **{100 * o.confident_share:.0f}%** with a probability of {at} or more"
            if r.confident_calls:
                text += (
                    f". On the internal test split its '{r.label}' answers that sure were right "
                    f"{100 * r.confident_right / r.confident_calls:.0f}% of the time "
                    f"({r.confident_right:,} of {r.confident_calls:,}): outside the hospitals it "
                    "learnt from, a high probability is no guarantee"
                )
        lines.append(text + ".")
    for source, true, called, n in r.confusions:
        where = SOURCE_NAMES.get(source, source)
        lines.append(
            f"Known confusion: it also answered '{r.label}' for {called} of {n} "
            f"{where} {true} images in the test split."
        )
    # One line per class missed, its held-out sources in turn (most missed first).
    for c in dict.fromkeys(c for _, c, _ in r.missed_elsewhere):
        runs = [
            (SOURCE_NAMES.get(source, source), found)
            for source, missed, found in r.missed_elsewhere
            if missed == c
        ]
        if c == "normal":
            what = "called only {pct} of their normal chest X-rays normal"
            so = f"a '{r.label}' answer may be a normal chest X-ray"
        else:
            what = f"found only {{pct}} of their {c}"
            so = f"a '{r.label}' answer does not rule {c} out"
        (where, found), rest = runs[0], runs[1:]
        text = f"Trained in full without the {where} images, it " + what.format(
            pct=f"**{100 * found:.0f}%**"
        )
        text += "".join(f"; without the {w} images, **{100 * f:.0f}%**" for w, f in rest)
        lines.append(f"{text}: at a hospital it has not seen, {so}.")
    return lines


def ablation_table(section: dict[str, Any]) -> Any:
    """``metrics.json["ablation"]`` as rows original / lungs erased / lungs only.

    Columns: balanced accuracy, accuracy, macro-F1 and each class's sensitivity.
    """
    import pandas as pd

    rows = []
    for key, label in (
        ("original", "original images"),
        ("lungs_erased", "lungs erased"),
        ("lungs_only", "only the lungs kept"),
    ):
        s = section.get(key)
        if not isinstance(s, dict):
            continue
        row = _scores_row({"images": label}, s, "sensitivity")
        rows.append({**row, "macro-F1": s.get("macro_f1")})
    order = ["balanced accuracy", "accuracy", "macro-F1"]
    df = pd.DataFrame(rows).set_index("images") if rows else pd.DataFrame()
    return df[order + [c for c in df.columns if c not in order]] if rows else df


def _scores_row(first: dict[str, Any], scores: dict[str, Any], per_class: str) -> dict[str, Any]:
    """``first`` then the accuracy, balanced accuracy and per-class ``{c} sensitivity`` of
    one result (its per-class rates under ``per_class``)."""
    row = {
        **first,
        "accuracy": scores.get("accuracy"),
        "balanced accuracy": scores.get("balanced_accuracy"),
    }
    for c, v in (scores.get(per_class) or {}).items():
        row[f"{c} sensitivity"] = v
    return row


def _summary_rows(d: dict[str, Any], label: str) -> Any:
    import pandas as pd

    rows = [
        {label: k, "n": v.get("n"), "mean": v.get("mean"), "median": v.get("median")}
        for k, v in (d or {}).items()
        if isinstance(v, dict)
    ]
    return pd.DataFrame(rows).set_index(label) if rows else pd.DataFrame()


def explain_tables(section: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json["explain"]``: lung focus per class and per source, faithfulness.

    Returns:
        ``{"overall": {n, mean, median}, "flat": mean focus of a flat map over the model's
        view (None in older files), "per_class": df, "per_source": df,
        "faithfulness": df (overall + per class), "method": str, "fraction": float}``.
    """
    import pandas as pd

    faith_rows = []
    overall = section.get("faithfulness")
    if isinstance(overall, dict):
        faith_rows.append({"class": "all", **overall})
    for c, v in (section.get("faithfulness_per_class") or {}).items():
        if isinstance(v, dict):
            faith_rows.append({"class": c, **v})
    faith = pd.DataFrame(faith_rows).set_index("class") if faith_rows else pd.DataFrame()
    if len(faith):
        faith = faith.rename(
            columns={
                "drop_hot": "confidence drop, hottest area blurred",
                "drop_random": "confidence drop, random area blurred",
                "score": "difference (> 0: the map points at evidence)",
            }
        )
    return {
        "overall": section.get("lung_focus") or {},
        "flat": (section.get("flat_map_focus") or {}).get("mean"),
        "per_class": _summary_rows(section.get("lung_focus_per_class") or {}, "true class"),
        "per_source": _summary_rows(section.get("lung_focus_per_source") or {}, "source"),
        "faithfulness": faith,
        "method": METHOD_LABELS.get(section.get("method", ""), section.get("method", "")),
        "fraction": section.get("fraction"),
    }


#: Rank correlation with the re-initialised network's map at or above which a method's
#: maps "changed little", and below which "completely" (Adebayo et al. 2018 read theirs
#: the same way; the bands are this project's wording, not a standard).
STAYS_ALIKE = 0.5
CHANGES_COMPLETELY = 0.2


def methods_table(section: dict[str, Any]) -> Any:
    """``metrics.json["explain_methods"]``: one row per heatmap method."""
    import pandas as pd

    methods = [m for m in section.get("methods") or [] if isinstance(m, str)]
    pairs = section.get("pairwise_iou") or {}
    rows = []
    for m in methods:
        mine = [v for k, v in pairs.items() if m in k.split("~") and v is not None]
        r = (section.get("randomised") or {}).get(m) or {}
        rows.append(
            {
                "method": METHOD_LABELS.get(m, m),
                "lung focus": (section.get("lung_focus") or {}).get(m),
                "overlap with the other methods (IoU)": (float(np.mean(mine)) if mine else None),
                "random weights: rank correlation": r.get("rank_correlation"),
                "range over the draws": (
                    f"{r['rank_correlation_range'][0]:.2f} to {r['rank_correlation_range'][1]:.2f}"
                    if r.get("rank_correlation_range")
                    else None
                ),
                "random weights: overlap (IoU)": r.get("hot_iou"),
            }
        )
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()


def _randomised_bands(section: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    bands: dict[str, list[tuple[str, float]]] = {"alike": [], "partly": [], "completely": []}
    for m in section.get("methods") or []:
        rho = ((section.get("randomised") or {}).get(m) or {}).get("rank_correlation")
        if rho is None:
            continue
        band = (
            "alike"
            if rho >= STAYS_ALIKE
            else "completely"
            if rho < CHANGES_COMPLETELY
            else "partly"
        )
        bands[band].append((METHOD_LABELS.get(m, m), float(rho)))
    return bands


def _named(items: list[tuple[str, float]]) -> str:
    return _join([f"{name} ({rho:.2f})" for name, rho in items])


def describe_methods(section: dict[str, Any]) -> list[str]:
    """The method comparison and the model-randomisation check, in words."""
    n, agree = section.get("n", 0), section.get("agreement") or {}
    lines = []
    if agree.get("mean") is not None:
        lines.append(
            f"On {n:,} images of the {section.get('split') or 'given'} split, the methods' "
            f"hottest {section.get('percent', 15):g}% regions overlap by "
            f"**{100 * agree['mean']:.0f}%** on average (intersection over union of each pair; "
            f"10th-90th percentile {100 * agree.get('p10', 0):.0f}-"
            f"{100 * agree.get('p90', 0):.0f}%)."
        )
    bands = _randomised_bands(section)
    if any(bands.values()):
        seeds = section.get("seeds") or [section.get("seed", 0)]
        drawn = "once" if len(seeds) == 1 else f"{len(seeds)} times"
        text = (
            "**Model-randomisation check**: the same network with its weights re-drawn at "
            f"random ({drawn}) explained the same class. A map that explains *this* model "
            "should change. Mean rank correlation with the random network's map:"
        )
        if bands["completely"]:
            text += f" changed completely for {_named(bands['completely'])};"
        if bands["partly"]:
            text += f" changed partly for {_named(bands['partly'])}, which keep some of the image's structure;"
        if bands["alike"]:
            text += (
                f" changed little for {_named(bands['alike'])}: those maps show the image's "
                "structure (edges, contrast) as much as what the model learnt."
            )
        lines.append(text.rstrip(";") + ("" if text.endswith(".") else "."))
    return lines


def image_driven_methods(section: dict[str, Any]) -> list[tuple[str, float]]:
    """Methods whose maps changed little when the weights were re-drawn, with their rank
    correlation (the Diagnose page's warning under "Compare all methods")."""
    return _randomised_bands(section)["alike"]


def image_driven_note(section: dict[str, Any]) -> str | None:
    """The Diagnose page's sentence under "Compare all methods" about those methods, or
    None when every method's maps changed with the weights."""
    alike = image_driven_methods(section)
    if not alike:
        return None
    return (
        f"In the model-randomisation check ({section.get('n', 0):,} test images, Trust page), "
        f"the maps of {_named(alike)} kept a rank correlation of {STAYS_ALIKE:g} or more with "
        "those of the same network with random weights: they show the image's structure as "
        "much as what this model learnt."
    )


def as_predicted(result: dict[str, Any]) -> dict[str, Any]:
    """A held-out source's figures as the app predicts: averaged over the test-time views
    where that was measured (``with_views``), else on the image alone."""
    return result.get("with_views") or result


def loso_sources(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``metrics.json["loso"]``'s per-source results ``{source: {...}}``."""
    sources = section.get("sources")
    if isinstance(sources, dict):
        return sources
    # Tolerate a flat {source: {...}} layout.
    return {k: v for k, v in section.items() if isinstance(v, dict) and k != "schedule"}


def loso_table(section: dict[str, Any]) -> Any:
    """``metrics.json["loso"]``: one row per held-out source.

    Scored as the app predicts (the logits averaged over the test-time views) where that was
    measured (``with_views``), else on the image alone; the other figures stay in the file.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    classes: set[str] = set()
    for s, v in loso_sources(section).items():
        scored = as_predicted(v)
        row = _scores_row({"held-out source": s, "n": v.get("n")}, scored, "per_class_accuracy")
        classes.update(scored.get("per_class_accuracy") or {})
        row["internal test balanced accuracy"] = v.get("internal_test_balanced_accuracy")
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    # The classes in one order for all rows.
    order = ["n", "accuracy", "balanced accuracy"] + [f"{c} sensitivity" for c in sorted(classes)]
    df = pd.DataFrame(rows).set_index("held-out source")
    return df[[c for c in [*order, "internal test balanced accuracy"] if c in df.columns]]


def describe_loso_scoring(section: dict[str, Any]) -> str:
    """The caption of :func:`loso_table`: how its held-out images were scored."""
    averaged = any("with_views" in v for v in loso_sources(section).values())
    how = (
        "as this app scores an upload (averaged over the image and its test-time copies)"
        if averaged
        else "on the image alone"
    )
    return (
        f"Held-out images scored {how}; sensitivity is the share of that class it called "
        "right. The last column is the same model on the internal test split, for comparison."
    )


def describe_loso(section: dict[str, Any]) -> list[str]:
    """One plain line per held-out source of a leave-one-source-out section (markdown).

    What a model trained without that source found of each of its classes, beside the same
    model's balanced accuracy on the internal test split; figures as the app predicts
    (averaged over the test-time views) where they were measured so.
    """
    schedule = section.get("schedule") or {}
    epochs = schedule.get("epochs")
    lines = []
    for source, v in loso_sources(section).items():
        scored = as_predicted(v)
        found = scored.get("per_class_accuracy") or {}
        auc = scored.get("auc") or {}
        support = v.get("support") or {}
        parts = [
            f"**{100 * a:.0f}%** of its {c}{_class_notes(a, support.get(c), auc.get(c))}"
            for c, a in found.items()
            if a is not None
        ]
        if not parts:
            continue
        line = (
            f"Trained without the {SOURCE_NAMES.get(source, source)} images"
            + (f" ({epochs} epochs)" if epochs else "")
            + f", it found {_join(parts)}"
        )
        internal = v.get("internal_test_balanced_accuracy")
        if internal is not None:
            line += (
                f"; the same model scores {100 * internal:.0f}% balanced accuracy on the "
                "other sources' internal test images"
            )
        lines.append(line + ".")
    return lines


def _class_notes(found: float, n: int | None, auc: float | None) -> str:
    """How many images a share is of (when few) and its AUC: ``" (2 of 8 images; AUC 0.44)"``."""
    few = [f"{round(found * n)} of {n} images"] if n is not None and n < MISSED_MIN_IMAGES else []
    ranked = [f"AUC {auc:.2f}"] if auc is not None else []
    return f" ({'; '.join(few + ranked)})" if few or ranked else ""


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def external_records(section: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(collection record, its "all" subset)`` of each collection of an ``external``
    section (:func:`cxrlib.evaluate.external.external_check`), skipping malformed ones."""
    out = []
    for rec in (section.get("collections") or {}).values():
        sub = (rec.get("subsets") or {}).get("all") if isinstance(rec, dict) else None
        if isinstance(sub, dict) and sub.get("n") and rec.get("label") and rec.get("name"):
            out.append((rec, sub))
    return out


#: How the external table names the subsets of :data:`cxrlib.evaluate.external.SUBSETS`.
EXTERNAL_SUBSETS = {"all": "all", "segmenter_unseen": "not in the segmenter's training"}


def external_table(section: dict[str, Any]) -> Any:
    """``metrics.json["external"]``: one row per collection and subset, the share of it
    given each answer, and the input check's refusals."""
    import pandas as pd

    rows = []
    for rec, _ in external_records(section):
        for key, sub in (rec.get("subsets") or {}).items():
            row: dict[str, Any] = {
                "collection": f"{rec['name']} ({rec['label']})",
                "images": EXTERNAL_SUBSETS.get(key, key),
                "n": sub.get("n"),
            }
            row.update({f"called {c}": v for c, v in (sub.get("share") or {}).items()})
            if key == "all":
                row["refused by the input check"] = rec.get("input_check_refused")
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(["collection", "images"])


def describe_external(section: dict[str, Any]) -> list[str]:
    """One plain line per collection of the external check (markdown): what it answered,
    with a 95% interval, and what the collection can and cannot say."""
    lines = []
    views = section.get("views")
    for rec, sub in external_records(section):
        share, ci = sub.get("share") or {}, sub.get("ci95") or {}
        label = rec["label"]
        parts = []
        for c in sorted(share, key=lambda c: (c != label, -(share[c] or 0))):
            if share[c] is None or (c != label and not share[c]):
                continue
            low_high = ci.get(c)
            interval = (
                f" (95% CI {100 * low_high[0]:.0f}-{100 * low_high[1]:.0f}%)" if low_high else ""
            )
            parts.append(f"'{c}' for **{100 * share[c]:.0f}%**{interval}")
        if not parts:
            continue
        dup = rec.get("duplicates") or {}
        sure = sum(v or 0 for c, v in (sub.get("confident_share") or {}).items() if c != label)
        line = (
            f"**{rec['name']}** ({rec.get('description') or 'a collection'}): of its "
            f"{sub['n']:,} {label} images, from no source it was trained on, it answered "
            + _join(parts)
            + (f", averaged over {views} views as the app predicts" if views and views > 1 else "")
            + "."
        )
        if sure and sub.get("confident_at"):
            line += (
                f" {100 * sure:.0f}% got a wrong answer with a probability of "
                f"{100 * sub['confident_at']:.0f}% or more."
            )
        if dup.get("found") == 0 and dup.get("highest_similarity") is not None:
            line += (
                " None of them is a copy of an image in its data (highest thumbnail "
                f"correlation {dup['highest_similarity']:.2f}; a copy scores above 0.99)."
            )
        refused = rec.get("input_check_refused")
        if refused == 0:
            line += " The input check let every one through."
        elif refused is not None:
            line += f" The input check refused {refused} of them."
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Comparison:
    """One model of the Trust page's comparison: internal score against lungs-erased score."""

    name: str
    described: str
    params: int | None
    balanced_accuracy: float
    covid_sensitivity: float | None
    erased_balanced_accuracy: float
    erased_covid_auc: float | None
    #: ``(collection, its class, share given that answer)`` from the external check.
    outside: tuple[tuple[str, str, float], ...] = ()
    #: For an alternative trained by the committed model's own recipe with another seed: that
    #: seed. Its differences from the committed model are what chance alone does.
    reseeded: int | None = None


def _recipe(preprocess: dict[str, Any], train_config: dict[str, Any]) -> dict[str, Any]:
    """What makes a model, less its seed and the schedule's bookkeeping; settings a record
    predates take the values it trained with (:meth:`cxrlib.train.classifier.TrainConfig.from_dict`)."""
    from cxrlib.train.classifier import TrainConfig

    recipe = TrainConfig.from_dict({**train_config, "preprocess": preprocess}).to_dict()
    return {k: v for k, v in recipe.items() if k not in ("seed", "steps_per_epoch")}


def _backend(record: dict[str, Any]) -> str:
    return record.get("keras_backend") or "tensorflow"


def reseeded(meta: dict[str, Any], alt: dict[str, Any]) -> int | None:
    """The seed of an alternative trained by exactly the committed model's recipe with another
    seed; None for any other alternative (or when either record lacks its recipe)."""
    mine, theirs = meta.get("train_config") or {}, alt.get("train_config") or {}
    if not mine or not theirs or mine.get("seed") == theirs.get("seed"):
        return None
    # Trained through another backend, the same recipe read more outside the lungs
    # (models/experiments.md, thirteenth session): that is not chance alone. Records made
    # before the backend was recorded were trained by TensorFlow.
    if _backend(meta) != _backend(alt):
        return None
    same = _recipe(meta.get("preprocess") or {}, mine) == _recipe(
        alt.get("preprocess") or {}, theirs
    )
    return int(theirs["seed"]) if same and theirs.get("seed") is not None else None


def _outside(section: Any) -> tuple[tuple[str, str, float], ...]:
    """:attr:`Comparison.outside` from an ``external`` section (or None)."""
    if not isinstance(section, dict):
        return ()
    return tuple(
        (rec["name"], rec["label"], float(sub["share"][rec["label"]]))
        for rec, sub in external_records(section)
        if (sub.get("share") or {}).get(rec["label"]) is not None
    )


def comparisons(meta: dict[str, Any], metrics: dict[str, Any]) -> list[Comparison]:
    """The committed model, then every recorded alternative scored on the same split.

    The committed model's figures are its headline test metrics and its recorded
    ablation; an alternative's come from ``evaluate --ablate --record-alternative``.
    Empty when the committed model has no test metrics or ablation to compare with.
    """
    test = (metrics.get("splits") or {}).get("test")
    abl = metrics.get("ablation")
    if not isinstance(test, dict) or not isinstance(abl, dict) or "lungs_erased" not in abl:
        return []
    erased = abl["lungs_erased"]
    out = [
        Comparison(
            name="this app's model",
            described=describe_input_and_trunk(
                meta.get("preprocess") or {}, meta.get("train_config") or {}
            ),
            params=meta.get("params"),
            balanced_accuracy=float(test["balanced_accuracy"]),
            covid_sensitivity=(test.get("per_class") or {}).get("covid", {}).get("sensitivity"),
            erased_balanced_accuracy=float(erased["balanced_accuracy"]),
            erased_covid_auc=(erased.get("auc") or {}).get("covid"),
            outside=_outside(metrics.get("external")),
        )
    ]
    for name, alt in sorted((metrics.get("alternatives") or {}).items()):
        if not isinstance(alt, dict) or alt.get("split") != abl.get("split"):
            continue  # figures from another split do not compare
        out.append(
            Comparison(
                name=str(name),
                described=describe_input_and_trunk(
                    alt.get("preprocess") or {}, alt.get("train_config") or {}
                ),
                params=alt.get("params"),
                balanced_accuracy=float(alt["balanced_accuracy"]),
                covid_sensitivity=alt.get("covid_sensitivity"),
                erased_balanced_accuracy=float(alt["lungs_erased"]["balanced_accuracy"]),
                erased_covid_auc=alt["lungs_erased"].get("covid_auc"),
                outside=_outside(alt.get("external")),
                reseeded=reseeded(meta, alt),
            )
        )
    return out


def comparison_table(rows: Sequence[Comparison]) -> Any:
    """The comparison as a table, one row per model."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                # The two figures being compared first, so a narrow screen shows them.
                "model": r.name,
                "internal bal. accuracy": r.balanced_accuracy,
                "lungs erased: bal. accuracy": r.erased_balanced_accuracy,
                "lungs erased: COVID AUC": r.erased_covid_auc,
                # Then the outside collection, the one figure from beyond the training sources.
                **{f"{name} {label}s called {label}": share for name, label, share in r.outside},
                "COVID sensitivity": r.covid_sensitivity,
                "sees, trunk, input": r.described,
                "parameters": f"{r.params / 1e6:.2f} M" if r.params else None,
            }
            for r in rows
        ]
    ).set_index("model")


#: How far above the committed model's lungs-erased score counts as "reads more outside".
ERASED_MARGIN = 0.05


def describe_comparisons(rows: Sequence[Comparison], chance: float = 1 / 3) -> list[str]:
    """One plain line per model: the committed model (``rows[0]``) first, then each
    alternative with what its figures say against it (:func:`comparison_note` says, once,
    why a score kept with the lungs erased counts against a model)."""
    if len(rows) < 2:
        return []
    ours = rows[0]

    def figures(r: Comparison) -> str:
        return (
            f"{100 * r.balanced_accuracy:.1f}% balanced accuracy on the internal test split, "
            f"{100 * r.erased_balanced_accuracy:.0f}% with the lungs erased"
        )

    lines = [
        f"**This app's model** ({ours.described}): {figures(ours)} (chance {100 * chance:.0f}%)."
    ]
    outside = reads_outside(rows)
    for alt in rows[1:]:
        extra = alt.erased_balanced_accuracy - ours.erased_balanced_accuracy
        if alt.reseeded is not None:
            lines.append(
                f"**{alt.name}** ({alt.described}): {figures(alt)}"
                + "".join(
                    f"; {100 * share:.0f}% of {name}'s {label} images called {label}"
                    for name, label, share in alt.outside
                )
                + f". The same recipe as this app's model, trained again with seed "
                f"{alt.reseeded}: how far each figure moves by chance alone. Differences of "
                "that size between the other models are not evidence either way."
            )
            continue
        if alt.balanced_accuracy <= ours.balanced_accuracy:
            verdict = "Lower on the internal test split."
        elif alt in outside:
            verdict = (
                f"Higher on the internal test split, but {100 * extra:.0f} points higher with "
                "the lungs erased too: part of its score is read outside the lungs. Not the "
                "model used here."
            )
        else:
            verdict = (
                "Higher on the internal test split, and this ablation does not tell it apart; "
                "models/experiments.md says why it is not used."
            )
        lines.append(
            f"**{alt.name}** ({alt.described}): {figures(alt)}. {verdict}"
            + "".join(_outside_note(alt, ours))
        )
    return lines


#: How much more of an outside collection an alternative must call right to be said so.
OUTSIDE_MARGIN = 0.05


def _shares(row: Comparison) -> dict[tuple[str, str], float]:
    """A model's outside figures by (collection, class)."""
    return {(name, label): share for name, label, share in row.outside}


def _outside_note(alt: Comparison, ours: Comparison) -> list[str]:
    """Where an alternative did better on a collection neither model trained on: said,
    since it cuts against the choice."""
    mine = _shares(ours)
    return [
        f" On {name}'s {label} images, which neither model trained on, it did better: "
        f"{100 * share:.0f}% called {label}, against {100 * mine[(name, label)]:.0f}%."
        for name, label, share in alt.outside
        if (name, label) in mine and share - mine[(name, label)] > OUTSIDE_MARGIN
    ]


def reads_outside(rows: Sequence[Comparison]) -> list[Comparison]:
    """The alternatives that score higher than the committed model (``rows[0]``) on the
    internal split and keep more than :data:`ERASED_MARGIN` more with the lungs erased
    (a reseeded copy of its own recipe never counts: its differences are chance)."""
    if not rows:
        return []
    ours = rows[0]
    return [
        r
        for r in rows[1:]
        if r.reseeded is None
        and r.balanced_accuracy > ours.balanced_accuracy
        and r.erased_balanced_accuracy - ours.erased_balanced_accuracy > ERASED_MARGIN
    ]


def comparison_note(rows: Sequence[Comparison]) -> str | None:
    """Why a score kept with the lungs erased counts against a model; None when no
    alternative is judged so."""
    rivals = reads_outside(rows)
    if not rivals:
        return None
    note = (
        "Why that counts against a model: what it reads outside the lungs (burned-in text, "
        "image borders, how one hospital positions and exposes its patients) earns marks on "
        "the internal test split, whose images come from the same hospitals as the training "
        "images, and would not carry over to a new hospital."
    )
    if any(_outside_note(r, rows[0]) for r in rivals):
        note += (
            " The outside collection points the other way for some of them. It is one class "
            "(normal chests) from one place; models/experiments.md sets it beside the "
            "leave-one-source-out runs, and neither covers disease at a new hospital."
        )
        mine = _shares(rows[0])
        moved = [
            abs(share - mine[(name, label)])
            for r in rows[1:]
            if r.reseeded is not None
            for name, label, share in r.outside
            if (name, label) in mine
        ]
        if moved and max(moved) > OUTSIDE_MARGIN:
            note += (
                f" This model's own recipe, trained again with another seed, moved that "
                f"collection's figure by {100 * max(moved):.0f} points: differences of that "
                "size there are chance."
            )
    return note

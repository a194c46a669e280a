"""The committed model against the recorded ``alternatives`` (the Model card's "Why not a
model that scores higher?")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Alternative, AlternativeAblation, Metrics
from cxrlib.describe.outside_text import external_records
from cxrlib.describe.prose import prose


@dataclass(frozen=True)
class Comparison:
    """One model of the comparison. ``outside``: ``(collection, its class, share given that
    answer)``; ``reseeded``: the seed of a copy of the committed model's recipe."""

    name: str
    described: str
    params: int | None
    balanced_accuracy: float
    covid_sensitivity: float | None
    erased_balanced_accuracy: float
    erased_covid_auc: float | None
    outside: tuple[tuple[str, str, float], ...] = ()
    reseeded: int | None = None


def _recipe(pre: Mapping[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of a record but its seed and schedule bookkeeping."""
    return {**cfg, "seed": None, "steps_per_epoch": None, "preprocess": pre}


def reseeded(meta: Mapping[str, Any], alt: Alternative) -> int | None:
    """The seed of an alternative trained by the committed model's recipe with another seed;
    None for any other alternative."""
    mine, theirs = meta.get("train_config") or {}, alt.train_config
    if not mine or not theirs or mine.get("seed") == theirs.get("seed"):
        return None
    # Through another backend the same recipe reads more outside the lungs: not chance alone.
    # Records made before the backend was recorded were trained by TensorFlow.
    if (meta.get("keras_backend") or "tensorflow") != (alt.keras_backend or "tensorflow"):
        return None
    same = _recipe(meta.get("preprocess") or {}, mine) == _recipe(alt.preprocess, theirs)
    return int(theirs["seed"]) if same and theirs.get("seed") is not None else None


def describe_input_and_trunk(pre: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    """A few words on what a model sees and its trunk: 'the whole image, ResNet (64), 128 px'."""
    if pre.get("lung_crop"):
        margin = pre.get("lung_margin")
        sees = "the lung box" + (f" + {pct(float(margin))}" if margin is not None else "")
    elif float(pre.get("border_crop", 0) or 0) > 0:
        sees = "the image less its borders"
    else:
        sees = "the whole image"
    arch = cfg.get("arch", "?")
    if arch == "mobilenetv2":
        trunk = f"MobileNetV2 (width {cfg.get('alpha')})"
    elif arch == "resnet":
        trunk = f"ResNet ({cfg.get('width')} filters first)"
    else:
        trunk = str(arch)
    return f"{sees}, {trunk}, {pre.get('size', '?')} px"


def comparisons(meta: Mapping[str, Any], metrics: Metrics) -> list[Comparison]:
    """The committed model, then every alternative scored on the same split and number of
    images; empty without the committed model's figures."""
    test, abl = metrics.test, metrics.ablation
    erased = abl.lungs_erased if abl else None
    if test is None or abl is None or erased is None or test.balanced_accuracy is None:
        return []
    covid = test.per_class.get("covid")
    ours = Alternative.model_construct(
        preprocess=meta.get("preprocess") or {},
        train_config=meta.get("train_config") or {},
        params=meta.get("params"),
        balanced_accuracy=test.balanced_accuracy,
        covid_sensitivity=covid.sensitivity if covid else None,
        lungs_erased=AlternativeAblation.model_construct(
            balanced_accuracy=erased.balanced_accuracy, covid_auc=erased.auc.get("covid")
        ),
        external=metrics.external,
    )
    # A split that has since gained images keeps its name, not its number of them.
    others = [
        (str(name), alt)
        for name, alt in sorted(metrics.alternatives.items())
        if alt.split == abl.split and (alt.n is None or test.n is None or alt.n == test.n)
    ]
    return [
        Comparison(
            name=name,
            described=describe_input_and_trunk(alt.preprocess, alt.train_config),
            params=alt.params,
            balanced_accuracy=float(alt.balanced_accuracy),
            covid_sensitivity=alt.covid_sensitivity,
            erased_balanced_accuracy=float(alt.lungs_erased.balanced_accuracy),
            erased_covid_auc=alt.lungs_erased.covid_auc,
            outside=tuple(
                (rec.name, rec.label, float(share))
                for rec, sub in external_records(alt.external)
                if (share := sub.share.get(rec.label)) is not None
            ),
            reseeded=None if alt is ours else reseeded(meta, alt),
        )
        for name, alt in [("this app's model", ours), *others]
    ]


def comparison_table(rows: Sequence[Comparison]) -> Any:
    """One row per model, the two figures compared first."""
    return pd.DataFrame(
        [
            {
                "model": r.name,
                "internal bal. accuracy": r.balanced_accuracy,
                "lungs erased: bal. accuracy": r.erased_balanced_accuracy,
                "lungs erased: COVID AUC": r.erased_covid_auc,
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
    """One line per model: the committed model (``rows[0]``), then each alternative with what
    its figures say against it."""
    if len(rows) < 2:
        return []
    ours = rows[0]

    def figures(r: Comparison) -> str:
        return (
            f"{pct(r.balanced_accuracy, 1)} balanced accuracy on the internal test split, "
            f"{pct(r.erased_balanced_accuracy)} with the lungs erased"
        )

    lines = [f"**This app's model** ({ours.described}): {figures(ours)} (chance {pct(chance)})."]
    for alt in rows[1:]:
        head = f"**{alt.name}** ({alt.described}): {figures(alt)}"
        if alt.reseeded is not None:
            shares = "".join(
                f"; {pct(share)} of {name}'s {label} images called {label}"
                for name, label, share in alt.outside
            )
            lines.append(
                f"{head}{shares}. The same recipe as this app's model, trained again with seed "
                f"{alt.reseeded}: how far each figure moves by chance alone. Differences of "
                "that size between the other models are not evidence either way."
            )
            continue
        if alt.balanced_accuracy <= ours.balanced_accuracy:
            verdict = "Lower on the internal test split."
        elif alt in reads_outside(rows):
            extra = alt.erased_balanced_accuracy - ours.erased_balanced_accuracy
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
        lines.append(f"{head}. {verdict}{_outside_note(alt, ours)}")
    return lines


#: How much more of an outside collection an alternative must call right to be said so.
OUTSIDE_MARGIN = 0.05


def _outside_note(alt: Comparison, ours: Comparison) -> str:
    """Where an alternative did better on a collection neither model trained on ("" nowhere)."""
    mine = {(name, label): share for name, label, share in ours.outside}
    return "".join(
        f" On {name}'s {label} images, which neither model trained on, it did better: "
        f"{pct(share)} called {label}, against {pct(mine[(name, label)])}."
        for name, label, share in alt.outside
        if (name, label) in mine and share - mine[(name, label)] > OUTSIDE_MARGIN
    )


def reads_outside(rows: Sequence[Comparison]) -> list[Comparison]:
    """The alternatives (reseeded copies aside) that score higher than the committed model
    (``rows[0]``) and keep more than :data:`ERASED_MARGIN` more with the lungs erased."""
    return [
        r
        for r in rows[1:]
        if r.reseeded is None
        and r.balanced_accuracy > rows[0].balanced_accuracy
        and r.erased_balanced_accuracy - rows[0].erased_balanced_accuracy > ERASED_MARGIN
    ]


def comparison_note(rows: Sequence[Comparison]) -> str | None:
    """Why a score kept with the lungs erased counts against a model; None when it does
    against none."""
    rivals = reads_outside(rows)
    if not rivals:
        return None
    note = prose("reads_outside")
    if any(_outside_note(r, rows[0]) for r in rivals):
        note += " " + prose("outside_disagrees")
        mine = {(name, label): share for name, label, share in rows[0].outside}
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


def chance(metrics: Metrics) -> float:
    """The balanced accuracy of a guess (a third unless the ablation recorded it)."""
    abl = metrics.ablation
    return abl.chance if abl is not None and abl.chance is not None else 1 / 3

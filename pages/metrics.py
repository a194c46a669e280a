"""Metrics: how well the model does on held-out data, read from models/*.json only."""

from __future__ import annotations

import streamlit as st

from cxrlib.app.model_files import model_meta, model_version
from cxrlib.core.metrics import Split
from cxrlib.core.settings import model_path
from cxrlib.describe import figures, modelcard, results
from pages import _compat, _sections

CHART = {"displayModeBar": False}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _delta(v: float | None, ref: float | None) -> str | None:
    if v is None or ref is None:
        return None
    diff = round(100 * (v - ref), 1)
    if diff == 0:
        return None
    return f"{diff:+.1f} pts vs most-probable rule"


def _threshold_section(split: Split, names: list[str]) -> None:
    if "covid" not in names or not split.predictions:
        st.info("No saved per-image probabilities: the threshold explorer needs them.")
        return
    probs, labels = results.predictions_arrays(split.predictions, names)
    pos = names.index("covid")
    st.markdown(
        "By default the model calls the most probable class. Here COVID is called whenever its "
        "probability reaches the threshold (otherwise the more probable of the other two "
        "classes). Lower thresholds catch more COVID cases at the cost of more false alarms."
    )
    t = st.slider("COVID decision threshold", 0.05, 0.95, 0.50, 0.01, key="covid_threshold")
    r = results.threshold_confusion(probs, labels, pos, t)
    base = split.per_class.get("covid")
    c1, c2, c3, c4 = st.columns(4)
    for col, name, value, ref in (
        (c1, "COVID sensitivity", r.sensitivity, base.sensitivity if base else None),
        (c2, "COVID specificity", r.specificity, base.specificity if base else None),
        (c3, "PPV", r.ppv, base.ppv if base else None),
        (c4, "NPV", r.npv, base.npv if base else None),
    ):
        col.metric(name, _pct(value), _delta(value, ref))
    a, b = st.columns(2)
    a.plotly_chart(
        figures.confusion_figure(r.matrix, names, False, f"Counts at threshold {t:.2f}"),
        width="stretch",
        config=CHART,
        key="thr_counts",
    )
    b.plotly_chart(
        figures.confusion_figure(r.matrix, names, True, "Row-normalised"),
        width="stretch",
        config=CHART,
        key="thr_norm",
    )


def _training_curves(meta: dict) -> None:
    history = meta.get("history") or {}
    if history:
        st.subheader("Training curves")
        best = meta.get("best_epoch")
        if best:
            st.caption(f"The saved weights are from epoch {best} (best validation macro-F1).")
        st.plotly_chart(figures.training_curves(history), width="stretch", config=CHART)


def _summary(split: Split) -> None:
    ci = split.ci95
    st.subheader("Summary")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{split.n or 0:,}")
    c2.metric("Accuracy", _pct(split.accuracy))
    c3.metric("Balanced accuracy", _pct(split.balanced_accuracy))
    c4.metric("Macro-F1", f"{split.macro_f1 or 0:.3f}")
    st.caption(
        f"95% bootstrap intervals: accuracy {results.fmt_ci(split.accuracy, ci.get('accuracy'))}; "
        f"balanced accuracy {results.fmt_ci(split.balanced_accuracy, ci.get('balanced_accuracy'))}. "
        + modelcard.describe_scoring(split)
    )
    adults = results.describe_adults(split)
    if adults:
        st.markdown(adults)


def _confusion(split: Split) -> None:
    st.subheader("Confusion matrix")
    cm = split.confusion_matrix
    if cm is not None and cm.matrix:
        a, b = st.columns(2)
        a.plotly_chart(
            figures.confusion_figure(cm.matrix, cm.labels, False, "Counts"),
            width="stretch",
            config=CHART,
            key="cm_counts",
        )
        b.plotly_chart(
            figures.confusion_figure(cm.matrix, cm.labels, True, "Row-normalised (recall)"),
            width="stretch",
            config=CHART,
            key="cm_norm",
        )


def _per_class(split: Split) -> None:
    st.subheader("Per class")
    _sections.metric_table(results.per_class_table(split))
    if split.curves:
        a, b = st.columns(2)
        a.plotly_chart(
            figures.roc_figure(split.curves, split.per_class), width="stretch", config=CHART
        )
        b.plotly_chart(
            figures.pr_figure(split.curves, split.per_class), width="stretch", config=CHART
        )


def _calibration(split: Split) -> None:
    st.subheader("Calibration")
    if split.reliability:
        a, b = st.columns([3, 2])
        a.plotly_chart(
            figures.reliability_figure(split.reliability, split.ece),
            width="stretch",
            config=CHART,
        )
        b.markdown(
            f"Expected calibration error **{split.ece or 0:.3f}**, Brier score "
            f"**{split.brier or 0:.3f}**.\n\nWhen the model says 80%, it should be right "
            "about 80% of the time: bars on the diagonal mean honest probabilities."
        )


def _per_source(split: Split) -> None:
    if split.per_source:
        st.subheader("Accuracy by source")
        st.caption(
            "Sources differ in age group, hospital and image quality. A model that is accurate "
            "overall can still fail on one source; see the Model card for the confounds."
        )
        a, b = st.columns([2, 3])
        a.plotly_chart(figures.per_source_figure(split.per_source), width="stretch", config=CHART)
        with b:
            _sections.metric_table(results.per_source_table(split))


def main() -> None:
    st.title("Metrics")
    path = model_path()
    meta = model_meta(path)
    metrics = _sections.load_metrics(path)
    st.caption(
        f"Model {model_version(meta, path)}. Everything here is read from "
        f"`{path.with_suffix('.metrics.json').name}` and `{path.with_suffix('.json').name}`; "
        "nothing is recomputed from images."
    )
    if metrics is None or not metrics.splits:
        st.warning(
            f"No metrics file found at `{path.with_suffix('.metrics.json')}`. Create it with "
            "`python -m cxrlib.evaluate metrics --record --data ../shared/cxr`.",
            icon=":material/warning:",
        )
    _training_curves(meta)
    if metrics is None or not metrics.splits:
        return
    splits = metrics.splits
    options = [s for s in ("test", "val") if s in splits] + [
        s for s in splits if s not in ("test", "val")
    ]
    split_name = st.radio(
        "Data split",
        options,
        horizontal=True,
        format_func=lambda s: {"test": "test (held out)", "val": "validation"}.get(s, s),
        key="metrics_split",
    )
    split = splits[split_name]
    cm = split.confusion_matrix
    names = list((cm.labels if cm else ()) or meta.get("class_names") or [])
    _summary(split)
    _confusion(split)
    _per_class(split)
    _calibration(split)
    st.subheader("COVID decision threshold")
    _threshold_section(split, names)
    _per_source(split)
    _sections.audit_sections(metrics)
    _sections.external_section(metrics)


_compat.page_setup()
main()

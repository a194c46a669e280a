"""Metrics: how good the model is, and on what; read from models/*.json only.

The headline answers the page's question; the rest sits in tabs bound to the ``tab`` query
parameter, so ``/metrics?tab=Calibration`` (or ``?tab=calibration``) opens that tab.
"""

from __future__ import annotations

import streamlit as st

from cxrlib.app.model_files import model_meta, model_version
from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Metrics, Split
from cxrlib.core.settings import model_path
from cxrlib.describe import card, figures, results
from cxrlib.describe.prose import METRICS_TABS, metrics_tab, prose
from pages import _compat, _sections

CHART = {"displayModeBar": False}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else pct(v, 1)


def _delta(v: float | None, ref: float | None) -> str | None:
    if v is None or ref is None:
        return None
    diff = round(100 * (v - ref), 1)
    if diff == 0:
        return None
    return f"{diff:+.1f} pts vs most-probable rule"


def _headline(split: Split, split_name: str, metrics: Metrics) -> None:
    """The figures that answer "how good is it, and on what?", and what matters most for an
    adult from a collection it did not train on."""
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Balanced accuracy", _pct(split.balanced_accuracy))
    c2.metric("Accuracy", _pct(split.accuracy))
    c3.metric("Macro-F1", f"{split.macro_f1 or 0:.3f}")
    c4.metric("Images", f"{split.n or 0:,}")
    st.markdown(results.describe_headline(split, split_name))
    st.caption("95% intervals: bootstrap over the images. " + card.describe_scoring(split))
    lines = card.adult_patient_lines(metrics, split_name)
    if lines:
        st.warning(
            f"**{card.ADULT_PATIENT}**\n\n" + "\n".join(f"- {line}" for line in lines),
            icon=":material/person_alert:",
        )


def _confusion_pair(matrix, names: list[str], title: str, key: str) -> None:
    a, b = st.columns(2)
    a.plotly_chart(
        figures.confusion_figure(matrix, names, False, title),
        width="stretch",
        config=CHART,
        key=f"{key}_counts",
    )
    b.plotly_chart(
        figures.confusion_figure(matrix, names, True, "Row-normalised (sensitivity)"),
        width="stretch",
        config=CHART,
        key=f"{key}_norm",
    )


def _overview(split: Split) -> None:
    cm = split.confusion_matrix
    if cm is not None and cm.matrix:
        _confusion_pair(cm.matrix, list(cm.labels), "Confusion matrix (counts)", "cm")
    _sections.metric_table(results.per_class_table(split))
    if split.curves:
        with st.expander("ROC and precision-recall curves"):
            a, b = st.columns(2)
            a.plotly_chart(
                figures.roc_figure(split.curves, split.per_class), width="stretch", config=CHART
            )
            b.plotly_chart(figures.pr_figure(split.curves), width="stretch", config=CHART)


def _threshold(split: Split, names: list[str]) -> None:
    if "covid" not in names or not split.predictions:
        st.info("No saved per-image probabilities: the threshold explorer needs them.")
        return
    probs, labels = results.predictions_arrays(split.predictions, names)
    st.markdown(prose("threshold"))
    t = st.slider("COVID decision threshold", 0.05, 0.95, 0.50, 0.01, key="covid_threshold")
    r = results.threshold_confusion(probs, labels, names.index("covid"), t)
    base = split.per_class.get("covid")
    c1, c2, c3, c4 = st.columns(4)
    for col, name, value, ref in (
        (c1, "COVID sensitivity", r.sensitivity, base.sensitivity if base else None),
        (c2, "COVID specificity", r.specificity, base.specificity if base else None),
        (c3, "PPV", r.ppv, base.ppv if base else None),
        (c4, "NPV", r.npv, base.npv if base else None),
    ):
        col.metric(name, _pct(value), _delta(value, ref))
    _confusion_pair(r.matrix, names, f"Counts at threshold {t:.2f}", "thr")


def _calibration(split: Split) -> None:
    if not split.reliability:
        st.info("No reliability bins in the metrics file for this split.")
        return
    a, b = st.columns([3, 2])
    a.plotly_chart(
        figures.reliability_figure(split.reliability, split.ece), width="stretch", config=CHART
    )
    b.markdown((results.describe_reliability(split) or "") + "\n\n" + prose("calibration"))


def _by_source(split: Split) -> None:
    if not split.per_source:
        st.info("No per-source figures in the metrics file for this split.")
        return
    st.caption(prose("by_source"))
    a, b = st.columns([2, 3])
    a.plotly_chart(figures.per_source_figure(split.per_source), width="stretch", config=CHART)
    with b:
        _sections.metric_table(results.per_source_table(split))


def _tabs(split: Split, metrics: Metrics, names: list[str]) -> None:
    """The page's tabs; only the open one runs (its name is the ``tab`` query parameter)."""
    asked = st.query_params.get("tab")
    if asked and asked not in METRICS_TABS and metrics_tab(asked):
        st.session_state["tab"] = metrics_tab(asked)  # ?tab=calibration as ?tab=Calibration
    tabs = st.tabs(list(METRICS_TABS), key="tab", bind="query-params", on_change="rerun")
    draw = {
        "Overview": lambda: _overview(split),
        "Threshold": lambda: _threshold(split, names),
        "Calibration": lambda: _calibration(split),
        "By source": lambda: _by_source(split),
        "Heatmaps": lambda: _sections.heatmap_sections(metrics),
        "Shortcut audit": lambda: _sections.shortcut_sections(metrics),
        "Outside data": lambda: _sections.outside_sections(metrics),
    }
    for name, tab in zip(METRICS_TABS, tabs):
        if tab.open:
            with tab:
                draw[name]()


def main() -> None:
    st.title("Metrics")
    path = model_path()
    meta = model_meta(path)
    metrics = _sections.load_metrics(path)
    st.caption(
        f"Model {model_version(meta, path)}. Everything here is read from "
        f"`{path.with_suffix('.metrics.json').name}`; nothing is recomputed from images."
    )
    if metrics is None or not metrics.splits:
        st.warning(
            f"No metrics file found at `{path.with_suffix('.metrics.json')}`. Create it with "
            "`python -m cxrlib.evaluate metrics --record --data ../shared/cxr`.",
            icon=":material/warning:",
        )
        return
    choice, card_link = st.columns([2, 1], vertical_alignment="bottom")
    split_name = choice.radio(
        "Data split",
        results.split_order(metrics.splits),
        horizontal=True,
        format_func=results.split_label,
        key="metrics_split",
    )
    card_link.page_link(
        "pages/model_card.py",
        label="Model card: when not to trust it",
        icon=":material/verified_user:",
    )
    split = metrics.splits[split_name]
    cm = split.confusion_matrix
    names = list((cm.labels if cm else ()) or meta.get("class_names") or [])
    _headline(split, split_name, metrics)
    _tabs(split, metrics, names)


_compat.page_setup()
main()

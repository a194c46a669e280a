"""Metrics: how well the model does on held-out data, read from models/*.json only."""

from __future__ import annotations

import streamlit as st

from cxrlib.app import state as appstate
from cxrlib.describe import figures
from cxrlib.describe import modelcard
from cxrlib.describe import results
from pages import _ui

CHART = {"displayModeBar": False}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _threshold_section(split: dict, names: list[str]) -> None:
    preds = split.get("predictions") or []
    if "covid" not in names or not preds:
        st.info("No saved per-image probabilities: the threshold explorer needs them.")
        return
    probs, labels = results.predictions_arrays(preds, names)
    pos = names.index("covid")
    st.markdown(
        "By default the model calls the most probable class. Here COVID is called whenever its "
        "probability reaches the threshold (otherwise the more probable of the other two "
        "classes). Lower thresholds catch more COVID cases at the cost of more false alarms."
    )
    t = st.slider("COVID decision threshold", 0.05, 0.95, 0.50, 0.01, key="covid_threshold")
    r = results.threshold_confusion(probs, labels, pos, t)
    base = (split.get("per_class") or {}).get("covid", {})
    c1, c2, c3, c4 = st.columns(4)

    def delta(v: float | None, ref: float | None) -> str | None:
        if v is None or ref is None:
            return None
        diff = round(100 * (v - ref), 1)
        if diff == 0:
            return None
        return f"{diff:+.1f} pts vs most-probable rule"

    c1.metric(
        "COVID sensitivity", _pct(r.sensitivity), delta(r.sensitivity, base.get("sensitivity"))
    )
    c2.metric(
        "COVID specificity", _pct(r.specificity), delta(r.specificity, base.get("specificity"))
    )
    c3.metric("PPV", _pct(r.ppv), delta(r.ppv, base.get("ppv")))
    c4.metric("NPV", _pct(r.npv), delta(r.npv, base.get("npv")))
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


def main() -> None:
    st.title("Metrics")
    path = appstate.model_path()
    meta = appstate.model_meta(path)
    metrics = appstate.model_metrics(path)
    st.caption(
        f"Model {appstate.model_version(meta, path)}. Everything here is read from "
        f"`{path.with_suffix('.metrics.json').name}` and `{path.with_suffix('.json').name}`; "
        "nothing is recomputed from images."
    )
    if metrics is None or not metrics.get("splits"):
        st.warning(
            f"No metrics file found at `{path.with_suffix('.metrics.json')}`. Create it with "
            "`python -m cxrlib.evaluate --save-metrics --data ../shared/cxr`.",
            icon=":material/warning:",
        )
    history = meta.get("history") or {}
    if history:
        st.subheader("Training curves")
        best = meta.get("best_epoch")
        if best:
            st.caption(f"The saved weights are from epoch {best} (best validation macro-F1).")
        st.plotly_chart(figures.training_curves(history), width="stretch", config=CHART)
    if not metrics or not metrics.get("splits"):
        return

    splits = metrics["splits"]
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
    names = list(split.get("confusion_matrix", {}).get("labels") or meta.get("class_names") or [])
    ci = split.get("ci95") or {}

    st.subheader("Summary")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{split.get('n', 0):,}")
    c2.metric("Accuracy", _pct(split.get("accuracy")))
    c3.metric("Balanced accuracy", _pct(split.get("balanced_accuracy")))
    c4.metric("Macro-F1", f"{split.get('macro_f1', 0):.3f}")
    st.caption(
        f"95% bootstrap intervals: accuracy {results.fmt_ci(split.get('accuracy'), ci.get('accuracy'))}; "
        f"balanced accuracy {results.fmt_ci(split.get('balanced_accuracy'), ci.get('balanced_accuracy'))}. "
        + modelcard.describe_scoring(split)
    )

    st.subheader("Confusion matrix")
    cm = split.get("confusion_matrix") or {}
    if cm.get("matrix"):
        a, b = st.columns(2)
        a.plotly_chart(
            figures.confusion_figure(cm["matrix"], cm["labels"], False, "Counts"),
            width="stretch",
            config=CHART,
            key="cm_counts",
        )
        b.plotly_chart(
            figures.confusion_figure(cm["matrix"], cm["labels"], True, "Row-normalised (recall)"),
            width="stretch",
            config=CHART,
            key="cm_norm",
        )

    st.subheader("Per class")
    _ui.metric_table(results.per_class_table(split))
    curves = split.get("curves") or {}
    if curves:
        a, b = st.columns(2)
        a.plotly_chart(
            figures.roc_figure(curves, split.get("per_class")), width="stretch", config=CHART
        )
        b.plotly_chart(
            figures.pr_figure(curves, split.get("per_class")), width="stretch", config=CHART
        )

    st.subheader("Calibration")
    if split.get("reliability"):
        a, b = st.columns([3, 2])
        a.plotly_chart(
            figures.reliability_figure(split["reliability"], split.get("ece")),
            width="stretch",
            config=CHART,
        )
        b.markdown(
            f"Expected calibration error **{split.get('ece', 0):.3f}**, Brier score "
            f"**{split.get('brier', 0):.3f}**.\n\nWhen the model says 80%, it should be right "
            "about 80% of the time: bars on the diagonal mean honest probabilities."
        )

    st.subheader("COVID decision threshold")
    _threshold_section(split, names)

    if split.get("per_source"):
        st.subheader("Accuracy by source")
        st.caption(
            "Sources differ in age group, hospital and image quality. A model that is accurate "
            "overall can still fail on one source; see the Model card for the confounds."
        )
        a, b = st.columns([2, 3])
        a.plotly_chart(
            figures.per_source_figure(split["per_source"]), width="stretch", config=CHART
        )
        with b:
            _ui.metric_table(results.per_source_table(split))

    _ui.audit_sections(metrics)
    _ui.external_section(metrics)


_ui.page_setup()
main()

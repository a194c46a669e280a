"""Trust / Model card: what the model is for, what it learned from, and when not to trust it.

The first screen answers those three questions; the rest of the card, in the sections of
Mitchell et al. 2019, sits in expanders and downloads as one Markdown file. Figures live on
the Metrics page, which this page links to.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxrlib.app.model_files import model_meta
from cxrlib.core.metrics import Metrics
from cxrlib.core.settings import model_path
from cxrlib.describe import card, comparison, figures, results
from cxrlib.describe.prose import METRICS_TABS, caveats, prose
from pages import _compat, _sections

METRICS_PAGE = "pages/metrics.py"
CLASSES = ("covid", "normal", "total")


def _evidence(tab: str, label: str | None = None) -> None:
    """A link to one tab of the Metrics page."""
    st.page_link(
        METRICS_PAGE,
        label=label or f"Metrics › {tab}",
        icon=":material/arrow_forward:",
        query_params={"tab": tab},
    )


def _header(meta: dict, metrics: Metrics, path: Path) -> None:
    title, button = st.columns([3, 1], vertical_alignment="center")
    title.title("Trust / Model card")
    button.download_button(
        "Download the model card",
        card.model_card_markdown(meta, metrics, path.name),
        file_name=f"{path.stem}_model_card.md",
        mime="text/markdown",
        icon=":material/download:",
        width="stretch",
    )
    st.caption(
        "In the sections of Mitchell et al., *Model Cards for Model Reporting* (2019), "
        f"generated from `{path.with_suffix('.json').name}` and "
        f"`{path.with_suffix('.metrics.json').name}`; the figures are on the Metrics page."
    )


def _intended_use() -> None:
    st.subheader("Intended use")
    uses, warning = st.columns([2, 1])
    uses.markdown(prose("intended_use"))
    warning.error(prose("not_for_diagnosis"), icon=":material/block:")


def _training_data(meta: dict) -> None:
    st.subheader("Training data")
    if not meta.get("train_counts"):
        st.info("The model's JSON has no training counts.")
        return
    # Licences are under "Data licences and citations" (and in the downloaded card).
    _sections.metric_table(
        card.training_data_table(meta).drop(columns="licence"),
        column_config={
            "what it is": st.column_config.TextColumn(width=400),
            "stored as": st.column_config.TextColumn(width=230),
            **{c: st.column_config.NumberColumn(width="small") for c in CLASSES},
        },
    )
    st.caption(card.describe_training_data(meta) + " " + prose("training_note"))


def _caveats(metrics: Metrics) -> None:
    st.subheader("When not to trust it")
    figures = card.caveat_figures(metrics)
    for column, c in zip(st.columns(3), caveats()):
        with column:
            st.markdown(f"**{c.title}.** {c.body}")
            for line in figures.get(c.tab, []):
                st.caption(line)
            _evidence(c.tab, f"Evidence: Metrics › {c.tab}")


def _model_details(meta: dict, path: Path) -> None:
    st.markdown(card.model_details_markdown(meta, path.name))
    history = meta.get("history") or {}
    if history:
        st.plotly_chart(
            figures.training_curves(history), width="stretch", config={"displayModeBar": False}
        )
        st.caption("Training curves: the saved weights are from the best validation macro-F1.")


def _comparison(meta: dict, metrics: Metrics) -> None:
    rows = comparison.comparisons(meta, metrics)
    if len(rows) <= 1:
        return
    st.markdown("**Why not a model that scores higher?**")
    _sections.bullets(comparison.describe_comparisons(rows, comparison.chance(metrics)))
    note = comparison.comparison_note(rows)
    if note:
        st.markdown(note)
    _sections.metric_table(comparison.comparison_table(rows))
    st.caption(prose("comparison_note"))


def _quantitative(meta: dict, metrics: Metrics) -> None:
    test = metrics.test
    if test is None:
        st.info("No test metrics yet (models/cxr_classifier.metrics.json).")
    else:
        _sections.bullets([results.describe_headline(test, "test")])
        adults = card.adult_patient_lines(metrics)
        if adults:
            st.markdown(f"**{card.ADULT_PATIENT}**")
            _sections.bullets(adults)
    st.markdown("Every figure, table and chart is on the Metrics page:")
    with st.container(horizontal=True):
        for tab in METRICS_TABS:
            _evidence(tab, tab)
    _comparison(meta, metrics)


def _full_card(meta: dict, metrics: Metrics, path: Path) -> None:
    """The card's other sections (Mitchell et al. 2019): one open at a time, named by the
    ``section`` query parameter."""
    sections = {
        "Model details": lambda: _model_details(meta, path),
        "Factors": lambda: st.markdown(card.factors_markdown(meta)),
        "Metrics": lambda: st.markdown(prose("metrics_chosen")),
        "Evaluation data": lambda: st.markdown(prose("evaluation_data")),
        "Quantitative analyses": lambda: _quantitative(meta, metrics),
        "Ethical considerations": lambda: st.markdown(prose("ethics")),
        "Recommendations": lambda: st.markdown(prose("recommendations")),
        "Licences and citations": lambda: st.markdown(prose("citations")),
    }
    st.subheader("The full card")
    shown = st.segmented_control(
        "Open a section",
        list(sections),
        key="section",
        bind="query-params",
        label_visibility="collapsed",
    )
    if shown:
        with st.container(border=True):
            sections[shown]()


def main() -> None:
    path = model_path()
    meta = model_meta(path)
    metrics = _sections.load_metrics(path) or Metrics()
    _header(meta, metrics, path)
    _intended_use()
    _training_data(meta)
    _caveats(metrics)
    _full_card(meta, metrics, path)


_compat.page_setup()
main()

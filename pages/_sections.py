"""Streamlit sections of the metrics file: the metrics table (both pages) and the Metrics
page's Heatmaps, Shortcut audit and Outside data tabs.

The figures and sentences come from :mod:`cxrlib.describe`; this module only lays them out.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxrlib.app.model_files import model_metrics
from cxrlib.core.metrics import Explain, ExplainMethods, Loso, Metrics, MetricsSchemaError
from cxrlib.describe import audit_text, outside_text
from cxrlib.describe.prose import column_formats, prose


def load_metrics(path: Path) -> Metrics | None:
    """The model's metrics file through the schema; None (and a clear error on the page)
    when it breaks the schema, None when there is none."""
    try:
        return model_metrics(path)
    except MetricsSchemaError as e:
        st.error(
            f"The metrics file does not match its schema: {e}. Recreate it with "
            "`python -m cxrlib.evaluate`.",
            icon=":material/error:",
        )
        return None


def metric_table(df, column_config: dict | None = None) -> None:
    """A metrics DataFrame formatted by :func:`cxrlib.describe.prose.column_formats`, with
    a dash where a figure does not exist (a class a source does not have)."""
    st.dataframe(
        df.style.format(column_formats(df)),
        width="stretch",
        placeholder="–",
        column_config=column_config,
    )


def bullets(lines: list[str]) -> None:
    """Sentences as a Markdown list."""
    st.markdown("\n".join(f"- {line}" for line in lines))


def not_recorded(command: str) -> None:
    """What to run when a section of the metrics file is missing."""
    st.info(f"Not recorded for this model yet: `{command}` records it.", icon=":material/info:")


def _explain_section(ex: Explain) -> None:
    t = audit_text.explain_tables(ex)
    st.subheader("Lung focus of the heatmaps")
    focus = audit_text.describe_lung_focus(ex)
    if focus:
        st.markdown(focus)
    a, b = st.columns(2)
    with a:
        st.caption("By true class")
        metric_table(t["per_class"])
    with b:
        st.caption("By source")
        metric_table(t["per_source"])
    if len(t["faithfulness"]):
        st.caption(audit_text.describe_faithfulness(ex))
        metric_table(t["faithfulness"])


def _methods_section(methods: ExplainMethods) -> None:
    st.subheader("Do the heatmap methods agree, and do they explain the model?")
    st.markdown("\n\n".join(audit_text.describe_methods(methods)))
    metric_table(audit_text.methods_table(methods))
    st.caption(prose("methods_note"))


def heatmap_sections(metrics: Metrics) -> None:
    """Where the heatmaps lie and whether they explain the model (``explain``,
    ``explain_methods``)."""
    if metrics.explain is None and metrics.explain_methods is None:
        not_recorded("python -m cxrlib.evaluate audit --explain --record")
    if metrics.explain is not None:
        _explain_section(metrics.explain)
    if metrics.explain_methods is not None:
        _methods_section(metrics.explain_methods)


def shortcut_sections(metrics: Metrics) -> None:
    """The model with the lungs erased or alone, and the resolution and hospital checks."""
    ab, cuts = metrics.ablation, metrics.shortcuts
    if ab is None and cuts is None:
        not_recorded("python -m cxrlib.evaluate audit --ablate --shortcuts --record")
    if ab is not None:
        st.subheader("Ablation: lungs erased, lungs only")
        if ab.verdict:
            st.markdown(ab.verdict)
        metric_table(audit_text.ablation_table(ab))
        size = audit_text.describe_ablation_size(ab)
        if size:
            st.caption(size)
    if cuts is not None:
        st.subheader("Resolution and hospital")
        bullets(audit_text.describe_shortcuts(cuts))
        st.caption(f"{(cuts.split or 'test').capitalize()} split. " + prose("shortcuts_note"))


def _loso_section(lo: Loso, title: str, intro: str, in_words: bool) -> None:
    st.subheader(title)
    st.markdown(intro)
    if lo.description:
        st.caption(lo.description)
    if in_words:
        bullets(outside_text.describe_loso(lo))
    metric_table(outside_text.loso_table(lo))
    st.caption(outside_text.describe_loso_scoring(lo))


def outside_sections(metrics: Metrics) -> None:
    """Data the model never trained on: the leave-one-source-out runs (``loso_full`` in
    words, a few sources; ``loso`` as a table) and the outside collection (``external``)."""
    if metrics.loso_full is not None:
        _loso_section(
            metrics.loso_full, "Leave one source out, the full recipe", prose("loso_full"), True
        )
    if metrics.loso is not None:
        _loso_section(metrics.loso, "Leave one source out", prose("loso"), False)
    lines = outside_text.describe_external(metrics.external)
    if lines:
        st.subheader("A collection it never trained on")
        bullets(lines)
        metric_table(outside_text.external_table(metrics.external))
        st.caption(prose("external_note"))
    if metrics.loso is None and metrics.loso_full is None and not lines:
        not_recorded("python -m cxrlib.evaluate external ../shared/lungs --record")

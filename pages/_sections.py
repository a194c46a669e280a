"""Streamlit sections of the metrics file shared by the Metrics and Model card pages: the
metrics table, the shortcut audit and the external check.

The figures and sentences come from :mod:`cxrlib.describe`; this module only lays them out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from cxrlib.app.model_files import model_metrics
from cxrlib.core.metrics import Ablation, Explain, ExplainMethods, Loso, Metrics, MetricsSchemaError
from cxrlib.describe import audit_text, external_text, loso_text, methods_text

PERCENT_COLUMNS = (
    "sensitivity",
    "specificity",
    "PPV",
    "NPV",
    "accuracy",
    "mean",
    "median",
    "lung focus",
)
DECIMAL_COLUMNS = ("F1", "AUC", "macro-F1")


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


def metric_table(df) -> None:
    """A metrics DataFrame with rates as percentages (one decimal), F1/AUC to 3 decimals,
    counts as whole numbers, and a dash where a figure does not exist (a class a source
    does not have), not "None"."""
    formats: dict = {}
    for c in df.columns:
        name = str(c)
        if (
            name in PERCENT_COLUMNS
            or name.endswith((" accuracy", " sensitivity"))
            or "called " in name
        ):
            formats[c] = "{:.1%}"
        elif (
            name in DECIMAL_COLUMNS
            or name.startswith(("confidence drop", "difference"))
            or name.endswith(" AUC")
            or "IoU" in name
            or "correlation" in name
        ):
            formats[c] = "{:.3f}"
        elif df[c].dtype.kind in "iuf":
            formats[c] = "{:,.0f}"
    st.dataframe(df.style.format(formats), width="stretch", placeholder="–")


# (metrics key, heading, introduction, each source also in words)
LOSO_SECTIONS = (
    (
        "loso",
        "Leave one source out",
        "Each row is a model trained WITHOUT that source (the same recipe on a short "
        "schedule, not the committed model's full run) and tested on all of it: roughly "
        "what to expect from a hospital the model has never seen.",
        False,
    ),
    (
        "loso_full",
        "Leave one source out, the full recipe",
        "The same question for the sources that matter most, with the committed model's own "
        "training run in full (not shortened): each model below never saw that source.",
        True,  # few sources
    ),
)


def has_audit(metrics: Metrics) -> bool:
    """Whether the metrics file holds any section :func:`audit_sections` shows."""
    sections = (metrics.explain, metrics.explain_methods, metrics.ablation)
    loso = tuple(getattr(metrics, key) for key, *_ in LOSO_SECTIONS)
    return any(s is not None for s in sections + loso)


def _heading(level: str) -> Callable[[str], object]:
    """A section heading: a subheader, or a bold line inside a page's own section."""
    if level == "subheader":
        return st.subheader
    return lambda text: st.markdown(f"**{text}**")


def _explain_section(ex: Explain, heading: Callable[[str], object]) -> None:
    t = audit_text.explain_tables(ex)
    heading("Lung focus of the heatmaps")
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


def _methods_section(methods: ExplainMethods, heading: Callable[[str], object]) -> None:
    heading("Do the heatmap methods agree, and do they explain the model?")
    st.markdown("\n\n".join(methods_text.describe_methods(methods)))
    metric_table(methods_text.methods_table(methods))
    st.caption(
        "Lung focus: share of the map inside the lungs. Random weights: the same network "
        "re-initialised (Adebayo et al., Sanity checks for saliency maps, 2018); a rank "
        "correlation near 0 means the map depends on what the model learnt."
    )


def _ablation_section(ab: Ablation, heading: Callable[[str], object]) -> None:
    heading("Ablation: lungs erased, lungs only")
    if ab.verdict:
        st.markdown(ab.verdict)
    metric_table(audit_text.ablation_table(ab))
    size = audit_text.describe_ablation_size(ab)
    if size:
        st.caption(size)


def _loso_section(lo: Loso, title: str, intro: str, in_words: bool, heading) -> None:
    heading(title)
    st.markdown(intro)
    if lo.description:
        st.caption(lo.description)
    if in_words:
        st.markdown("\n".join(f"- {line}" for line in loso_text.describe_loso(lo)))
    metric_table(loso_text.loso_table(lo))
    st.caption(loso_text.describe_loso_scoring(lo))


def audit_sections(metrics: Metrics, level: str = "subheader") -> None:
    """The shortcut audit (explain / ablation / loso sections of metrics.json), if present."""
    heading = _heading(level)
    if metrics.explain is not None:
        _explain_section(metrics.explain, heading)
    if metrics.explain_methods is not None:
        _methods_section(metrics.explain_methods, heading)
    if metrics.ablation is not None:
        _ablation_section(metrics.ablation, heading)
    if metrics.shortcuts is not None:
        heading("Resolution and hospital")
        st.markdown(
            "\n".join(f"- {line}" for line in audit_text.describe_shortcuts(metrics.shortcuts))
        )
        st.caption(
            "Recorded by `python -m cxrlib.evaluate audit --shortcuts` on the "
            f"{metrics.shortcuts.split or 'test'} split: nih images are 384 px and quex 256 px, "
            "so each is re-saved at the other's size (Lanczos, JPEG quality 90); the probe is a "
            "logistic regression, cross-validated by patient group, within each class."
        )
    for key, title, intro, in_words in LOSO_SECTIONS:
        lo = getattr(metrics, key)
        if lo is not None:
            _loso_section(lo, title, intro, in_words, heading)


def external_section(metrics: Metrics, level: str = "subheader") -> None:
    """The external check (``external`` of metrics.json): a collection no training image
    came from, if it was recorded."""
    lines = external_text.describe_external(metrics.external)
    if not lines:
        return
    _heading(level)("A collection it never trained on")
    st.markdown("\n".join(f"- {line}" for line in lines))
    metric_table(external_text.external_table(metrics.external))
    st.caption(
        "One class only: this measures how often a normal chest from elsewhere is called "
        "normal, not how much disease is found. The lung segmenter that frames the model's "
        "input was trained on part of this collection, so the second row keeps the images "
        "it never trained on. The collection states no licence: its images are neither "
        "shipped nor shown. Recorded by `python -m cxrlib.evaluate external ../shared/lungs "
        "--record`."
    )

"""Streamlit glue shared by the pages: cached resources, the banner, small widgets.

Logic lives in :mod:`cxrlib` (mainly :mod:`cxrlib.app.state`); this module
only wraps it in Streamlit caches and draws recurring bits of layout.
"""

from __future__ import annotations

import streamlit as st

from cxrlib.app import state as appstate
from cxrlib.describe import trust


def page_setup() -> None:
    """First call of every page: makes sure the page runs inside app.py's navigation.

    Streamlit treats a folder named ``pages/`` beside the main script as a
    legacy (v1) multipage folder until the first ``st.navigation`` call of
    the process: the very first run after a server start, if it is for a
    page URL such as ``/batch``, runs that page file alone (no banner, no
    sidebar, every file listed as a page). AppTest resets that flag on every
    run. When a page finds itself in that mode it switches it off and reruns,
    so app.py (banner, navigation, sidebar) always wraps the page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def fast_reruns() -> None:
    """Stops Streamlit from clearing the Keras session after every rerun.

    After each script run Streamlit calls ``keras.backend.clear_session()``
    (``_clean_problem_modules``), which runs ``gc.collect()`` (0.25-0.45 s with
    TensorFlow loaded, and it happens twice per rerun, so every slider move
    would lag by most of a second) and clears TensorFlow's kernel cache. That
    cleanup is for scripts that build Keras models on every run; this app
    builds them once per process (cached resources), so it is replaced by one
    that only closes matplotlib figures, the other half of Streamlit's cleanup.
    (``runner.postScriptGC = false`` in .streamlit/config.toml is the other half
    of the fix.)
    """
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # pragma: no cover
        return
    current = getattr(script_runner, "_clean_problem_modules", None)
    if current is None or getattr(current, "_cxr_fast", False):
        return

    def clean() -> None:
        import sys

        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:  # noqa: BLE001, S110 - never fail a rerun over cleanup
                pass

    clean._cxr_fast = True  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = clean


@st.cache_resource(show_spinner=False)
def _resources(model: str, segmenter: str) -> appstate.Resources:
    return appstate.get_resources(model, segmenter)


def resources() -> appstate.Resources:
    """The loaded models for ``$CXR_MODEL`` / ``$CXR_SEGMENTER`` (once per process)."""
    model, seg = str(appstate.model_path()), str(appstate.segmenter_path())
    if appstate.resources_ready(model, seg) is None:
        with st.spinner("Loading the model (first time only, a few seconds)..."):
            return _resources(model, seg)
    return _resources(model, seg)


@st.cache_resource(show_spinner=False)
def cache() -> appstate.LRUCache:
    """The process-wide cache of decoded uploads, verdicts, masks and heatmaps."""
    return appstate.LRUCache(max_items=512, max_bytes=512 * 2**20)


def disclaimer() -> None:
    """The banner every page shows."""
    st.warning(
        f"**{appstate.DISCLAIMER}.** {appstate.DISCLAIMER_DETAIL}", icon=":material/warning:"
    )


def component_errors(res: appstate.Resources, names: tuple[str, ...]) -> None:
    """Plain messages for missing components (the rest of the page still works)."""
    messages = {
        "classifier": "The classifier could not be loaded, so no prediction can be made.",
        "explainer": "Heatmaps are unavailable.",
        "segmenter": "No lung segmenter is loaded, so there is no lung outline and no "
        "lung-focus check.",
        "gate": "The input check (is this a chest X-ray?) is not available: images are "
        "analysed without it.",
    }
    for name in names:
        if name not in res.errors:
            continue
        if name == "classifier":
            st.error(messages[name], icon=":material/error:")
        else:
            st.info(messages[name], icon=":material/info:")
        st.caption(f"Details: {res.errors[name]}")


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
#: The metrics sections :func:`audit_sections` shows.
AUDIT_KEYS = ("explain", "explain_methods", "ablation", *(key for key, *_ in LOSO_SECTIONS))


def audit_sections(metrics: dict, level: str = "subheader") -> None:
    """The shortcut audit (explain / ablation / loso sections of metrics.json), if present."""
    heading = st.subheader if level == "subheader" else st.markdown
    bold = (lambda t: t) if level == "subheader" else (lambda t: f"**{t}**")
    ex = metrics.get("explain")
    if isinstance(ex, dict):
        t = trust.explain_tables(ex)
        heading(bold("Lung focus of the heatmaps"))
        o = t["overall"]
        if o.get("mean") is not None:
            st.markdown(
                f"{t['method']} of the predicted class, {o.get('n', 0):,} images"
                + (f" of the {ex['split']} split" if ex.get("split") else "")
                + f": on average **{100 * o['mean']:.0f}%** of the heatmap lies inside the "
                f"lungs (median {100 * (o.get('median') or 0):.0f}%). "
                + (
                    f"A map spread evenly over what the model sees would score **{100 * t['flat']:.0f}%** "
                    "(the lungs' share of its field of view; higher for a model that sees only "
                    "the lung region), so compare the two."
                    if t["flat"] is not None
                    else "The lungs cover roughly 30-45% of a chest X-ray, so a map that ignored "
                    "anatomy would score about that."
                )
            )
        a, b = st.columns(2)
        with a:
            st.caption("By true class")
            metric_table(t["per_class"])
        with b:
            st.caption("By source")
            metric_table(t["per_source"])
        if len(t["faithfulness"]):
            frac = t["fraction"]
            st.caption(
                "Faithfulness: how much the predicted class's probability falls when the "
                f"hottest {100 * (frac or 0.2):.0f}% of the image is blurred, against an equally "
                "large random area."
            )
            metric_table(t["faithfulness"])
    methods = metrics.get("explain_methods")
    if isinstance(methods, dict):
        heading(bold("Do the heatmap methods agree, and do they explain the model?"))
        st.markdown("\n\n".join(trust.describe_methods(methods)))
        metric_table(trust.methods_table(methods))
        st.caption(
            "Lung focus: share of the map inside the lungs. Random weights: the same network "
            "re-initialised (Adebayo et al., Sanity checks for saliency maps, 2018); a rank "
            "correlation near 0 means the map depends on what the model learnt."
        )
    ab = metrics.get("ablation")
    if isinstance(ab, dict):
        heading(bold("Ablation: lungs erased, lungs only"))
        if ab.get("verdict"):
            st.markdown(str(ab["verdict"]))
        metric_table(trust.ablation_table(ab))
        if ab.get("chance") is not None:
            st.caption(
                f"{ab.get('n', 0):,} images; chance balanced accuracy {100 * ab['chance']:.0f}%."
            )
    for key, title, intro, in_words in LOSO_SECTIONS:
        lo = metrics.get(key)
        if not isinstance(lo, dict):
            continue
        heading(bold(title))
        st.markdown(intro)
        if lo.get("description"):
            st.caption(str(lo["description"]))
        if in_words:
            st.markdown("\n".join(f"- {line}" for line in trust.describe_loso(lo)))
        metric_table(trust.loso_table(lo))
        st.caption(trust.describe_loso_scoring(lo))


def external_section(metrics: dict, level: str = "subheader") -> None:
    """The external check (``external`` of metrics.json): a collection no training image
    came from, if it was recorded."""
    ext = metrics.get("external")
    if not isinstance(ext, dict):
        return
    lines = trust.describe_external(ext)
    if not lines:
        return
    title = "A collection it never trained on"
    (st.subheader if level == "subheader" else st.markdown)(
        title if level == "subheader" else f"**{title}**"
    )
    st.markdown("\n".join(f"- {line}" for line in lines))
    metric_table(trust.external_table(ext))
    st.caption(
        "One class only: this measures how often a normal chest from elsewhere is called "
        "normal, not how much disease is found. The lung segmenter that frames the model's "
        "input was trained on part of this collection, so the second row keeps the images "
        "it never trained on. The collection states no licence: its images are neither "
        "shipped nor shown. Recorded by `python -m cxrlib.evaluate --external ../shared/lungs "
        "--record`."
    )

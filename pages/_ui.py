"""Streamlit glue shared by the pages: cached resources, the banner, small widgets.

Logic lives in :mod:`cxrlib` (mainly :mod:`cxrlib.app`); this module only wraps
it in Streamlit caches and draws recurring bits of layout. The private
Streamlit internals the app relies on are in :mod:`pages._compat`.
"""

from __future__ import annotations

import streamlit as st

from cxrlib.app.resources import Resources, get_resources, resources_ready
from cxrlib.app.texts import DISCLAIMER, DISCLAIMER_DETAIL
from cxrlib.core.cache import LRUCache
from cxrlib.core.settings import gate_path, model_path, model_server, segmenter_path


@st.cache_resource(show_spinner=False)
def _resources(model: str, segmenter: str, gate: str, server: str) -> Resources:
    # ``gate`` and ``server`` are only part of the key: get_resources reads them itself.
    return get_resources(model, segmenter)


def resources() -> Resources:
    """The loaded models for ``$CXR_MODEL`` / ``$CXR_SEGMENTER`` / ``$CXR_OOD``, or the
    client of ``$CXR_MODEL_SERVER`` (once per process)."""
    model, seg = str(model_path()), str(segmenter_path())
    key = (model, seg, str(gate_path()), model_server() or "")
    if resources_ready(model, seg) is None:
        with st.spinner("Loading the model (first time only, a few seconds)..."):
            return _resources(*key)
    return _resources(*key)


@st.cache_resource(show_spinner=False)
def cache() -> LRUCache:
    """The process-wide cache of decoded uploads, verdicts, masks and heatmaps."""
    return LRUCache(max_items=512, max_bytes=512 * 2**20)


def secrets() -> dict:
    """The app's Streamlit secrets (``.streamlit/secrets.toml``), {} when there are none."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets file (StreamlitSecretNotFoundError)
        return {}


def disclaimer() -> None:
    """The banner every page shows."""
    st.warning(f"**{DISCLAIMER}.** {DISCLAIMER_DETAIL}", icon=":material/warning:")


def component_errors(res: Resources, names: tuple[str, ...]) -> None:
    """Plain messages for missing components (the rest of the page still works)."""
    messages = {
        "classifier": "The classifier could not be loaded, so no prediction can be made.",
        "explainer": "Heatmaps are unavailable.",
        "segmenter": "No lung segmenter is loaded, so there is no lung outline and no "
        "lung-focus check.",
        "gate": "The input check (is this a chest X-ray?) is not available: images are "
        "analysed without it.",
        "model server": "The model server (CXR_MODEL_SERVER) did not answer: this page uses "
        "the model in this process instead.",
    }
    for name in names:
        if name not in res.errors:
            continue
        if name == "classifier":
            st.error(messages[name], icon=":material/error:")
        elif name == "model server":
            st.warning(messages[name], icon=":material/cloud_off:")
        else:
            st.info(messages[name], icon=":material/info:")
        st.caption(f"Details: {res.errors[name]}")


def server_error(exc: Exception) -> None:
    """The model server failed during this request: a plain message, the session goes on."""
    st.error(
        f"**The model server did not answer.** {exc}. Try again in a moment; if it stays "
        "down, unset CXR_MODEL_SERVER to use the model in this process.",
        icon=":material/cloud_off:",
    )

"""CXR Lens: explainable chest X-ray classification, a research and teaching demo.

    streamlit run app.py     (or `make run`)

This file only sets up navigation, the banner and the sidebar; each page is a
file in pages/ and all logic is in cxrlib/. TensorFlow is imported lazily
(in a background thread started here), so the first page appears at once.
"""

from __future__ import annotations

import streamlit as st

from cxrlib.app.model_files import model_meta, model_version
from cxrlib.app.resources import resources_ready, warm_up
from cxrlib.app.texts import DISCLAIMER, DISCLAIMER_DETAIL
from cxrlib.core.settings import model_path, warm_up_enabled
from cxrlib.core.timings import timed
from pages import _compat, _ui

_compat.fast_reruns()
st.set_page_config(
    page_title="CXR Lens",
    page_icon=":material/radiology:",
    layout="wide",
    initial_sidebar_state="expanded",
    menu_items={"About": f"CXR Lens. {DISCLAIMER}. {DISCLAIMER_DETAIL}"},
)

PAGES = [
    st.Page("pages/diagnose.py", title="Diagnose", icon=":material/stethoscope:", default=True),
    st.Page("pages/batch.py", title="Batch", icon=":material/stacks:"),
    st.Page("pages/worklist.py", title="PACS worklist", icon=":material/lan:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/validation.py", title="Validation browser", icon=":material/grid_view:"),
    st.Page("pages/model_card.py", title="Trust / Model card", icon=":material/verified_user:"),
]
page = st.navigation(PAGES)

warming = warm_up_enabled()

with st.sidebar:
    st.markdown("### CXR Lens")
    st.caption(f"{DISCLAIMER}.")
    status = st.container()


def _status() -> None:
    """Model and device lines of the sidebar."""
    model = model_path()
    meta = model_meta(model)
    res = resources_ready()
    if not model.exists():
        st.error(f"No model at `{model.name}`", icon=":material/error:")
    else:
        st.caption(f"**Model** {model_version(meta, model)}")
    if res is None:
        st.caption("**Device** loading TensorFlow ...")
        return
    st.caption(f"**Device** {res.device}")
    if "model server" in res.errors:
        st.caption("**Model server** not reachable: using the model in this process")
    missing = [k for k in ("classifier", "segmenter", "gate") if k in res.errors]
    if missing:
        names = {"classifier": "classifier", "segmenter": "lung segmenter", "gate": "input check"}
        st.caption("**Missing** " + ", ".join(names[k] for k in missing))


@st.fragment(run_every=1.5)
def _status_until_loaded() -> None:
    """Polls until the background load finishes, then refreshes the whole app once."""
    _status()
    if resources_ready() is not None:
        st.rerun()


_ui.disclaimer()
with timed("rerun"):
    page.run()
if warming:
    # Load TensorFlow and the models in the background while the user looks at
    # the page (started after it is drawn, so the import does not slow it down).
    warm_up()
# Filled after the page, so it reflects models the page may just have loaded.
with status:
    if warming and resources_ready() is None:
        _status_until_loaded()
    else:
        _status()

"""PACS worklist: the chest X-rays of a date range in the PACS, least normal first; a row
opens its image in Diagnose."""

from __future__ import annotations

from datetime import date

import streamlit as st

from cxrlib.app import worklist as wl
from cxrlib.core.errors import CxrError
from cxrlib.pacs.client import PacsClient
from cxrlib.pacs.results import ModelIdentity
from pages import _choose, _compat, _ui

ROWS = "wl_rows"  # (query, rows, model) of the last search: a rerun does not search again
OPENED = "wl_opened"  # how many images were opened: part of the table's key (a fresh selection)


def _forget() -> None:
    """Refresh: the next run searches again."""
    st.session_state.pop(ROWS, None)


def _query() -> tuple[date | None, date | None, str]:
    """The search controls: (from, to, accession)."""
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    dates = c1.date_input("Study dates", value=wl.default_dates(), key="wl_dates")
    accession = c2.text_input("Accession number (optional)", key="wl_accession")
    c3.button("Refresh", icon=":material/refresh:", key="wl_refresh", on_click=_forget)
    # A range still being picked has one end.
    picked = tuple(dates) if isinstance(dates, tuple | list) else (dates, dates)
    return picked[0] if picked else None, picked[-1] if picked else None, accession


def _rows(config, query: tuple) -> tuple[list[wl.WorklistRow], ModelIdentity]:
    """The worklist of ``query`` and the model whose answers it shows, searched when the
    query changed or on Refresh."""
    kept = st.session_state.get(ROWS)
    if kept is None or kept[0] != (config.url, *query):
        model = wl.app_model()
        with st.spinner("Searching the PACS..."):
            rows = wl.worklist(PacsClient(config), *query, model=model)
        kept = st.session_state[ROWS] = ((config.url, *query), rows, model)
    return kept[1], kept[2]


def _open(config, row: wl.WorklistRow) -> None:
    """Fetches the row's image into memory and shows it in Diagnose."""
    with st.spinner("Fetching the image..."):
        image = wl.fetch(PacsClient(config), row)
    _choose.new_choice({"kind": "pacs", "image": image})
    st.session_state[OPENED] = st.session_state.get(OPENED, 0) + 1
    st.switch_page("pages/diagnose.py")


def main() -> None:
    st.title("PACS worklist")
    st.caption(
        "The chest X-rays (CR, DX) of the PACS for a range of study dates, with the model's "
        "answer once they are scored (by `python -m cxrlib.pacs watch`, or Send to PACS in "
        "Diagnose): the images the model finds least normal first. Choose a row to open its "
        "image in Diagnose. Only pseudonymous fields are shown."
    )
    config = wl.pacs_config(_ui.secrets())
    if config is None:
        st.info(wl.SETUP_HELP, icon=":material/lan:")
        return
    date_from, date_to, accession = _query()
    try:
        rows, model = _rows(config, (date_from, date_to, accession.strip()))
    except CxrError as exc:
        st.error(f"**The worklist cannot be shown.** {exc}", icon=":material/cloud_off:")
        return
    if not rows:
        st.info("No CR or DX images in the PACS for these dates.", icon=":material/search_off:")
        return
    event = st.dataframe(
        wl.worklist_table(rows),
        key=f"wl_table_{st.session_state.get(OPENED, 0)}",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        width="stretch",
    )
    scored = sum(r.report is not None for r in rows)
    st.caption(
        f"{len(rows)} image(s), {scored} scored by this model ({model.name} {model.version}). "
        "Probabilities are the model's, calibrated on its validation data; not a diagnosis."
    )
    if event.selection.rows:
        try:
            _open(config, rows[event.selection.rows[0]])
        except CxrError as exc:
            st.error(f"**The image cannot be opened.** {exc}", icon=":material/error:")


_compat.page_setup()
main()

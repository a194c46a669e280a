"""Batch: score many images (or zip archives) and download the results as CSV."""

from __future__ import annotations

import streamlit as st

from cxrlib.app.batch import count_items, score_uploads, signature, split_rows
from cxrlib.core.errors import ModelServerError
from pages import _compat, _ui

RESULTS = "batch_results"


def _request(key: str) -> None:
    st.session_state["_batch_requested"] = key


def _inputs():
    """The upload box and the lung-focus option: (files, with lung focus?)."""
    files = st.file_uploader(
        "Images or zip archives",
        type=None,  # any name: DICOM exports often have no extension; the bytes decide
        accept_multiple_files=True,
        key="batch_upload",
        help="Kept in memory for this session only; never written to disk.",
    )
    with_focus = st.checkbox(
        "Add lung focus (Grad-CAM + lung segmentation; slower)",
        key="batch_focus",
        help="The share of each Grad-CAM heatmap that lies inside the lungs.",
    )
    return files, with_focus


def _score(files, with_focus: bool, key: str) -> dict | None:
    """The "Score" button, then the scoring with a progress bar; None until it has run."""
    st.button(
        f"Score {len(files)} upload(s)",
        type="primary",
        key="batch_run",
        on_click=_request,
        args=(key,),
    )
    if st.session_state.get("_batch_requested") != key:
        return None
    st.session_state.pop("_batch_requested", None)
    res = _ui.resources()
    if not res.can_diagnose:
        _ui.component_errors(res, ("classifier",))
        return None
    _ui.component_errors(res, ("gate",))
    if with_focus and not res.has_segmenter:
        _ui.component_errors(res, ("segmenter",))
        with_focus = False
    items = [(f.name, f.getvalue()) for f in files]
    total = count_items(items)
    bar = st.progress(0.0, text=f"Scoring 0 of {total}...")

    def progress(i: int, name: str) -> None:
        done = i + 1
        bar.progress(min(1.0, done / max(total, done)), text=f"Scored {done} of {total}")

    try:
        rows, csv_text = score_uploads(res, items, with_focus, progress)
    except ModelServerError as exc:
        _ui.server_error(exc)
        return None
    bar.progress(1.0, text=f"Scored {len(rows)} file(s)")
    return {"signature": key, "rows": rows, "csv": csv_text}


def _column_config(columns) -> tuple[dict, list[str]]:
    """How the results table shows each column, and their order."""
    prob_cols = [c for c in columns if c.startswith("p_")]
    config = {
        c: st.column_config.ProgressColumn(
            c[2:], min_value=0.0, max_value=1.0, format="percent", width="small"
        )
        for c in prob_cols
    }
    config["file"] = st.column_config.TextColumn("file", width="medium")
    config["confidence"] = st.column_config.NumberColumn("confidence", format="percent")
    config["lung_focus"] = st.column_config.NumberColumn("lung focus", format="percent")
    config["is_cxr"] = st.column_config.CheckboxColumn("chest X-ray?")
    config["ood_score"] = st.column_config.NumberColumn(
        "input-check score", format="%.2f", help="<= 1 passes the input check"
    )
    config["flags"] = st.column_config.TextColumn("notes", width="large")
    return config, ["file", "predicted", "confidence", *prob_cols]


def _results(stored: dict) -> None:
    """The counts, the table of scored files, the unreadable ones and the CSV button."""
    import pandas as pd  # only once there are results

    good, bad, rejected = split_rows(stored["rows"])
    m1, m2, m3 = st.columns(3)
    m1.metric("Scored", len(good) - len(rejected))
    m2.metric("Not a chest X-ray", len(rejected))
    m3.metric("Could not be read", len(bad))
    if good:
        df = pd.DataFrame(good).drop(columns=["error"])
        config, order = _column_config(df.columns)
        if df["lung_focus"].notna().any():
            order.append("lung_focus")
        order += ["flags", "is_cxr", "ood_score"]
        st.dataframe(df, hide_index=True, width="stretch", column_config=config, column_order=order)
    if bad:
        st.error(f"{len(bad)} file(s) could not be read:", icon=":material/error:")
        st.dataframe(pd.DataFrame(bad)[["file", "error"]], hide_index=True, width="stretch")
    st.download_button(
        "Download results (CSV)",
        data=stored["csv"],
        file_name="cxr_lens_batch.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        type="primary",
        key="batch_csv",
    )
    st.caption(
        "The CSV holds the file name and the results only; no DICOM patient field is ever "
        "read into it."
    )


def main() -> None:
    st.title("Batch")
    st.caption(
        "Score many chest X-rays at once: files or zip archives of PNG, JPEG, TIFF or DICOM. "
        "Files that cannot be read, or that the input check rejects, are listed with the "
        "reason; the rest are still scored."
    )
    files, with_focus = _inputs()
    if not files:
        st.session_state.pop(RESULTS, None)
        st.info("Add files to score.", icon=":material/upload:")
        return
    key = signature((f.file_id for f in files), with_focus)
    stored = st.session_state.get(RESULTS)
    if stored is not None and stored["signature"] != key:
        stored = None
        st.session_state.pop(RESULTS, None)
    if stored is None:
        stored = _score(files, with_focus, key)
        if stored is None:
            return
        st.session_state[RESULTS] = stored
    _results(stored)


_compat.page_setup()
main()

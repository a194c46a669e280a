"""Batch: score many images (or zip archives) and download the results as CSV."""

from __future__ import annotations

import hashlib

import streamlit as st

from cxrlib.app import state as appstate
from pages import _ui

RESULTS = "batch_results"


def _signature(files) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.file_id.encode())
    return h.hexdigest()


def _request(signature: str) -> None:
    st.session_state["_batch_requested"] = signature


def main() -> None:
    st.title("Batch")
    st.caption(
        "Score many chest X-rays at once: files or zip archives of PNG, JPEG, TIFF or DICOM. "
        "Files that cannot be read, or that the input check rejects, are listed with the "
        "reason; the rest are still scored."
    )
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
    if not files:
        st.session_state.pop(RESULTS, None)
        st.info("Add files to score.", icon=":material/upload:")
        return
    signature = _signature(files) + ("+focus" if with_focus else "")
    stored = st.session_state.get(RESULTS)
    if stored is not None and stored["signature"] != signature:
        stored = None
        st.session_state.pop(RESULTS, None)
    if stored is None:
        st.button(
            f"Score {len(files)} upload(s)",
            type="primary",
            key="batch_run",
            on_click=_request,
            args=(signature,),
        )
        if st.session_state.get("_batch_requested") != signature:
            return
        st.session_state.pop("_batch_requested", None)
        res = _ui.resources()
        if res.classifier is None:
            _ui.component_errors(res, ("classifier",))
            return
        _ui.component_errors(res, ("gate",))
        focus = None
        if with_focus:
            if res.segmenter is None or res.explainer is None:
                _ui.component_errors(res, ("segmenter", "explainer"))
            else:
                focus = appstate.focus_function(res)
        from cxrlib.predict.batch import rows_to_csv, score_items

        items = [(f.name, f.getvalue()) for f in files]
        total = appstate.count_items(items)
        bar = st.progress(0.0, text=f"Scoring 0 of {total}...")

        def progress(i: int, name: str) -> None:
            done = i + 1
            bar.progress(min(1.0, done / max(total, done)), text=f"Scored {done} of {total}")

        rows = score_items(items, res.classifier, gate=res.gate, focus=focus, progress=progress)
        bar.progress(1.0, text=f"Scored {len(rows)} file(s)")
        names = list(res.classifier.class_names)
        stored = {
            "signature": signature,
            "rows": [r.as_dict(names) for r in rows],
            "csv": rows_to_csv(rows, names),
        }
        st.session_state[RESULTS] = stored

    rows = stored["rows"]
    good = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    rejected = [r for r in good if r.get("is_cxr") is False]
    m1, m2, m3 = st.columns(3)
    m1.metric("Scored", len(good) - len(rejected))
    m2.metric("Not a chest X-ray", len(rejected))
    m3.metric("Could not be read", len(bad))
    import pandas as pd

    if good:
        df = pd.DataFrame(good).drop(columns=["error"])
        prob_cols = [c for c in df.columns if c.startswith("p_")]
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
        order = ["file", "predicted", "confidence", *prob_cols]
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


_ui.page_setup()
main()

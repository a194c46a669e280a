"""Validation browser: real held-out images with their label, prediction and confidence."""

from __future__ import annotations

import math
import os
from pathlib import Path

import streamlit as st

from cxrlib.app.gallery import safe_image_path, thumbnail
from cxrlib.app.model_files import model_meta
from cxrlib.app.texts import md_escape
from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Metrics
from cxrlib.core.settings import DEFAULT_DATA_DIR, model_path, resolve
from cxrlib.describe import results
from cxrlib.infer.pipeline import decode
from pages import _choose, _compat, _sections, _ui

PER_PAGE = 16
COLUMNS = 4


def _thumb(path: Path):
    decoded = decode(path.read_bytes(), path.name)
    return None if decoded.pixels is None else thumbnail(decoded.pixels, 220)


def _open(row: dict, path: str) -> None:
    """Button callback: remember the image; the page body then switches to Diagnose."""
    _choose.new_choice(
        {
            "kind": "dataset",
            "path": path,
            "rel": row["path"],
            "label": row["label"],
            "source": row["source"],
        }
    )
    st.session_state["_val_open"] = True


def _folder() -> Path | None:
    """The image folder chosen in the sidebar, or None (with a warning) when it is not the
    shared CXR data folder."""
    default = os.environ.get("CXR_DATA") or str(DEFAULT_DATA_DIR)
    with st.sidebar:
        st.markdown("**Validation browser**")
        folder_text = st.text_input(
            "Image folder",
            value=default,
            key="val_folder",
            help="The shared CXR folder (with manifest.csv); relative paths are relative to "
            "the app's folder.",
        )
    folder = resolve(folder_text.strip() or default)
    if not folder.is_dir():
        st.warning(
            f"The image folder `{md_escape(folder_text)}` does not exist here. Set it "
            "in the sidebar to the shared CXR data folder (../shared/cxr).",
            icon=":material/folder_off:",
        )
        return None
    if not (folder / "manifest.csv").is_file():
        st.warning(
            f"`{md_escape(folder_text)}` is not the shared CXR data folder (it has no "
            "manifest.csv). Set it in the sidebar to ../shared/cxr.",
            icon=":material/folder_off:",
        )
        return None
    return folder


def _saved(path: Path) -> tuple[Metrics, list[str]] | None:
    """The metrics file and its splits with per-image predictions, or None (with a warning)."""
    metrics = _sections.load_metrics(path)
    if metrics is None or not metrics.splits:
        st.warning(
            f"No saved predictions: `{path.with_suffix('.metrics.json').name}` is missing. "
            "Create it with `python -m cxrlib.evaluate metrics --record --data ../shared/cxr`.",
            icon=":material/warning:",
        )
        return None
    splits = [s for s in ("val", "test") if s in metrics.splits and metrics.splits[s].predictions]
    if not splits:
        st.warning("The metrics file has no per-image predictions.")
        return None
    return metrics, splits


def _card(row, folder: Path, split: str) -> bool:
    """One image's card; False when the image is not in ``folder``."""
    img_path = safe_image_path(folder, row["path"])
    if img_path is None:
        st.caption(f"missing: {row['path']}")
        return False
    thumb = _ui.cache().get_or_compute(("thumb220", str(img_path)), lambda p=img_path: _thumb(p))
    if thumb is not None:
        st.image(thumb, width="stretch")
    mark = ":green[correct]" if row["correct"] else ":red[misclassified]"
    st.markdown(
        f"true **{row['label']}** · predicted **{row['predicted']}** "
        f"{pct(row['confidence'])}  \n{mark} · {row['source']}"
    )
    st.button(
        "Open in Diagnose",
        key=f"open_{split}_{row['path']}",
        width="stretch",
        on_click=_open,
        args=(row.to_dict(), str(img_path)),
    )
    return True


def _grid(rows, folder: Path, split: str) -> None:
    """The filtered images, a page of cards at a time."""
    pages = max(1, math.ceil(len(rows) / PER_PAGE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="val_page", width=160))
    chunk = rows.iloc[(page - 1) * PER_PAGE : page * PER_PAGE]
    missing = 0
    for start in range(0, len(chunk), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, (_, row) in zip(cols, chunk.iloc[start : start + COLUMNS].iterrows()):
            with col.container(border=True):
                missing += not _card(row, folder, split)
    if missing:
        st.caption(f"{missing} image(s) on this page are not in `{folder}`.")


def main() -> None:
    if st.session_state.pop("_val_open", False):
        st.switch_page("pages/diagnose.py")
    st.title("Validation browser")
    st.caption(
        "Images the model was not trained on, with the dataset's label, the model's prediction "
        "and its confidence (from the saved evaluation; nothing is recomputed). Mistakes come "
        "first. The validation split chose the training epoch and fitted the temperature; the "
        "test split was only ever scored."
    )
    folder = _folder()
    path = model_path()
    saved = _saved(path) if folder is not None else None
    if folder is None or saved is None:
        return
    metrics, splits = saved
    names = list(model_meta(path).get("class_names") or ["covid", "normal", "pneumonia"])

    f1, f2, f3, f4 = st.columns([1, 1.5, 2, 1.5])
    split = f1.selectbox(
        "Split", splits, format_func=lambda s: {"val": "validation", "test": "test"}[s]
    )
    table = results.predictions_table(metrics.splits[split].predictions, names)
    labels = f2.multiselect("True class", names, key="val_labels", placeholder="all classes")
    sources = f3.multiselect(
        "Source", sorted(table["source"].unique()), key="val_sources", placeholder="all sources"
    )
    outcome = f4.radio(
        "Show", ["all", "misclassified", "correct"], key="val_outcome", horizontal=False
    )
    rows = results.filter_predictions(table, labels, sources, outcome)
    n_wrong = int((~rows["correct"]).sum()) if len(rows) else 0
    st.markdown(f"**{len(rows):,}** images, of which **{n_wrong:,}** misclassified.")
    if not len(rows):
        st.info("No image matches these filters.")
        return
    _grid(rows, folder, split)


_compat.page_setup()
main()

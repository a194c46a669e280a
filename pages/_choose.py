"""The Diagnose page's image picker: the upload box, the sample gallery, and an image the
Validation browser or the PACS worklist sent; each choice becomes bytes, hashed once and
decoded once."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cxrlib.app.gallery import Chosen, list_samples, open_dataset_image, open_sample, thumbnail
from cxrlib.core.hashing import sha256_bytes
from cxrlib.infer.pipeline import Decoded, decode
from pages import _ui

CHOICE = "diag_choice"  # {"kind": "upload" | "sample" | "dataset" | "pacs", ...}
GALLERY = "diag_gallery"  # whether the sample gallery is open
UPLOAD_HELP = (
    "Any file name: DICOM files without an extension are fine. The file stays in this "
    "server's memory for this session only; it is never written to disk. DICOM patient "
    "fields are never read out or shown."
)


def _gallery() -> None:
    samples = list_samples()
    if not samples:
        st.info("No sample images found in samples/.")
        return
    cache = _ui.cache()
    per_row = 7
    for start in range(0, len(samples), per_row):
        cols = st.columns(per_row)
        for col, s in zip(cols, samples[start : start + per_row]):
            with col:
                thumb = cache.get_or_compute(("thumb", str(s.path)), lambda s=s: _thumb(s.path))
                if thumb is not None:
                    st.image(thumb, width="stretch")
                st.caption(s.title)
                st.button(
                    "Analyse",
                    key=f"sample_{s.file}",
                    width="stretch",
                    on_click=_pick_sample,
                    args=(s.file,),
                )


def _pick_sample(file: str) -> None:
    new_choice({"kind": "sample", "file": file})


def new_choice(choice: dict) -> None:
    """A new image was chosen (here or on the Validation page): it becomes the choice and
    the gallery closes."""
    st.session_state[CHOICE] = choice
    st.session_state[GALLERY] = False


def _thumb(path) -> np.ndarray | None:
    decoded = decode(path.read_bytes(), path.name)
    return None if decoded.pixels is None else thumbnail(decoded.pixels, 160)


def _uploader():
    """The upload box; a new upload becomes the choice, a removed one stops being it."""
    up = st.file_uploader(
        "Upload a frontal chest X-ray (PNG, JPEG, TIFF or DICOM)",
        # Any name: DICOM exports often have no extension, and the bytes decide the format.
        type=None,
        key="diag_upload",
        help=UPLOAD_HELP,
    )
    choice = st.session_state.get(CHOICE)
    if up is not None and st.session_state.get("_diag_upload_id") != up.file_id:
        st.session_state["_diag_upload_id"] = up.file_id
        new_choice({"kind": "upload"})
    if up is None:
        st.session_state.pop("_diag_upload_id", None)
        if choice and choice.get("kind") == "upload":
            st.session_state[CHOICE] = None
    return up


def choose() -> Chosen | None:
    """The chosen image: an upload, a gallery sample or a dataset image."""
    up = _uploader()
    # Closed until the user opens it, and drawn only while open: a first upload then has
    # no thumbnails to take down, and replacing an upload (which runs the page once
    # without a file) does not open and close it again.
    with st.expander(
        "Sample gallery: real test-set images", key=GALLERY, on_change="rerun"
    ) as gallery:
        if gallery.open:
            st.caption(
                "Twelve chest X-rays from the test split (never used for training), four per "
                "class, plus one DICOM. Labels are the datasets' labels, not clinical readings. "
                "Sources and licences: samples/PROVENANCE.md."
            )
            _gallery()
    return _chosen(up)


def _chosen(up) -> Chosen | None:
    """The current choice as bytes, or None."""
    choice = st.session_state.get(CHOICE)
    if not choice:
        return None
    if choice["kind"] == "upload" and up is not None:
        return Chosen(up.name, up.getvalue(), "", f"upload:{up.file_id}")
    if choice["kind"] == "sample":
        return open_sample(choice["file"])
    if choice["kind"] == "pacs":  # fetched by the PACS worklist, in memory
        return choice["image"].chosen
    if choice["kind"] == "dataset":
        try:
            return open_dataset_image(choice)
        except FileNotFoundError as exc:
            st.error(str(exc))
    return None


def decoded(chosen: Chosen) -> Decoded:
    """The chosen image decoded (cached), its bytes hashed once per choice."""
    # Hash each upload once, not on every slider move.
    memo = st.session_state.get("_diag_sha")
    if memo is not None and memo[0] == chosen.key and memo[1] == len(chosen.data):
        sha = memo[2]
    else:
        sha = sha256_bytes(chosen.data)
        st.session_state["_diag_sha"] = (chosen.key, len(chosen.data), sha)
    return decode(chosen.data, chosen.name, sha256=sha, cache=_ui.cache())

"""Diagnose: one chest X-ray -> input check, probabilities, heatmap, lung focus, report."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from cxrlib.app import state as appstate
from pages import _ui

CHOICE = "diag_choice"  # {"kind": "upload" | "sample" | "dataset", ...}
COLORMAP_HELP = "Colour scale of the heatmap: red/yellow = where the model looked most."


def _gallery() -> None:
    samples = appstate.list_samples()
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
    st.session_state[CHOICE] = {"kind": "sample", "file": file}


def _thumb(path: Path):
    decoded = appstate.decode_upload(path.read_bytes(), path.name)
    return None if decoded.pixels is None else appstate.thumbnail(decoded.pixels, 160)


def _choose() -> tuple[str, bytes, str, str] | None:
    """The chosen image as (display name, bytes, known label or "", stable key)."""
    up = st.file_uploader(
        "Upload a frontal chest X-ray (PNG, JPEG, TIFF or DICOM)",
        # Any name: DICOM exports often have no extension, and the bytes decide the format.
        type=None,
        key="diag_upload",
        help="Any file name: DICOM files without an extension are fine. The file stays in "
        "this server's memory for this session only; it is never written to disk. DICOM "
        "patient fields are never read out or shown.",
    )
    choice = st.session_state.get(CHOICE)
    if up is not None and st.session_state.get("_diag_upload_id") != up.file_id:
        st.session_state["_diag_upload_id"] = up.file_id
        choice = st.session_state[CHOICE] = {"kind": "upload"}
    if up is None:
        st.session_state.pop("_diag_upload_id", None)
        if choice and choice.get("kind") == "upload":
            choice = st.session_state[CHOICE] = None
    with st.expander("Sample gallery: real test-set images", expanded=choice is None):
        st.caption(
            "Twelve chest X-rays from the test split (never used for training), four per "
            "class, plus one DICOM. Labels are the datasets' labels, not clinical readings. "
            "Sources and licences: samples/PROVENANCE.md."
        )
        _gallery()
    choice = st.session_state.get(CHOICE)
    if not choice:
        return None
    if choice["kind"] == "upload" and up is not None:
        return up.name, up.getvalue(), "", f"upload:{up.file_id}"
    if choice["kind"] == "sample":
        sample = next((s for s in appstate.list_samples() if s.file == choice["file"]), None)
        if sample is not None:
            data = sample.path.read_bytes()
            return f"sample {sample.file}", data, sample.label, f"sample:{sample.file}"
    if choice["kind"] == "dataset":
        path = Path(choice["path"])
        if path.is_file():
            name = f"{choice.get('source', '')} {choice.get('rel', path.name)}"
            return name, path.read_bytes(), choice.get("label", ""), f"dataset:{path}"
        st.error(f"The dataset image is no longer available: {path}")
    return None


def _gate_section(
    res: appstate.Resources, decoded: appstate.Decoded, sha: str
) -> tuple[bool, appstate.GateVerdict | None]:
    """Shows the input check; returns (go on to the model?, the verdict or None)."""
    cache = _ui.cache()
    if res.gate is None:
        return True, None
    verdict = cache.get_or_compute(("gate", sha), lambda: appstate.run_gate(res, decoded))
    if verdict is None or verdict.is_cxr:
        return True, verdict
    st.error(
        f"**{verdict.reason}** No class probabilities are shown for "
        "images that are not frontal chest X-rays.",
        icon=":material/block:",
    )
    anyway = st.checkbox(
        "Analyse anyway",
        key=f"anyway_{sha[:16]}",
        help="The model was trained only on frontal chest X-rays; for anything else its "
        "output is meaningless.",
    )
    if anyway:
        st.warning(
            "**Analysed although the input check rejected this image.** The model only knows "
            "frontal chest X-rays; the numbers below are not meaningful for other images.",
            icon=":material/warning:",
        )
    return anyway, verdict


def _focus_box(diagnosis) -> None:
    level = diagnosis.focus_level
    text = diagnosis.focus_verdict
    if level == "good":
        st.success(text, icon=":material/check_circle:")
    elif level == "caution":
        st.warning(text, icon=":material/warning:")
    elif level == "warning":
        st.error(text, icon=":material/error:")
    else:
        st.info(text, icon=":material/info:")


def main() -> None:
    st.title("Diagnose")
    st.caption(
        "How a convolutional network sorts a chest X-ray into covid / normal / pneumonia, "
        "where it looked, and how far to trust it."
    )
    chosen = _choose()
    if chosen is None:
        st.info("Upload an image or pick one from the gallery to start.", icon=":material/upload:")
        return
    name, data, known_label, key = chosen
    cache = _ui.cache()
    # Hash each upload once (a 50 MB DICOM takes ~0.1 s), not on every slider move.
    memo = st.session_state.get("_diag_sha")
    if memo is not None and memo[0] == key and memo[1] == len(data):
        sha = memo[2]
    else:
        sha = appstate.sha256_bytes(data)
        st.session_state["_diag_sha"] = (key, len(data), sha)
    decoded = cache.get_or_compute(
        ("decoded", sha), lambda: appstate.decode_upload(data, name, sha256=sha)
    )
    st.divider()
    if not decoded.ok:
        st.error(f"**This file cannot be used.** {decoded.error}", icon=":material/error:")
        return

    res = _ui.resources()
    # File names come from the user: escaped, so they are shown as text, never as markup.
    heading = f"Analysing: {appstate.md_escape(name)}"
    if known_label:
        heading += f"  ·  dataset label: **{appstate.md_escape(known_label)}**"
    st.markdown(heading)
    for notice in decoded.notices:
        st.caption(f":material/info: {appstate.md_escape(notice)}")

    proceed, gate = _gate_section(res, decoded, sha)
    if not proceed:
        st.image(decoded.pixels, caption="The uploaded image", width=420)
        return
    if res.classifier is None or res.explainer is None:
        _ui.component_errors(res, ("classifier", "explainer"))
        st.image(decoded.pixels, caption="The uploaded image", width=420)
        return

    names = list(res.classifier.class_names)
    methods = list(appstate.METHOD_LABELS)
    # The probabilities do not depend on the method; the method widget is drawn
    # further down, so its last value is read from the session here.
    method = st.session_state.get("diag_method", methods[0])
    with st.spinner("Analysing..."):
        base = appstate.run_diagnosis(res, cache, decoded, method, None)
    predicted = base.predicted_index

    st.subheader("Result")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown(appstate.probability_headline(base))
        if appstate.is_unsure(base):
            st.warning(
                "**The model is unsure about this image**: the top class is not clearly ahead "
                "or changes with small shifts of the image.",
                icon=":material/help:",
            )
        from cxrlib.describe.figures import probability_bar

        st.plotly_chart(
            probability_bar(names, base.probabilities, base.uncertainty, predicted),
            width="stretch",
            config={"displayModeBar": False},
            key="diag_probs",
        )
        st.caption(appstate.probability_note(base))
    with right:
        st.markdown("**Input check**")
        if gate is None:
            _ui.component_errors(res, ("gate",))
        elif gate.is_cxr:
            st.success(appstate.gate_text(gate), icon=":material/check_circle:")
        else:
            st.error(
                f"Rejected by the input check: {gate.reason}",
                icon=":material/block:",
            )
        for concern in decoded.header_concerns:
            st.warning(concern, icon=":material/warning:")
        focus_slot = st.container()
        record = appstate.answer_record(res, base.predicted_name)
        if record:
            st.markdown(f"**Track record** of '{base.predicted_name}' answers")
            st.info("\n\n".join(record), icon=":material/history:")
        fmt = decoded.format or "image"
        h, w = decoded.pixels.shape
        st.caption(f"{fmt}, {w} x {h} px as analysed · image SHA-256 {sha[:16]}...")

    st.subheader("Where the model looked")
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 1.6])
    method = c1.selectbox(
        "Method",
        methods,
        format_func=appstate.METHOD_LABELS.get,
        key="diag_method",
        help="Grad-CAM, Grad-CAM++ and LayerCAM are instant; Faster Score-CAM takes about a "
        "second and SmoothGrad a few seconds. On this model (global average pooling, then "
        "one dense layer) Grad-CAM++ and LayerCAM give practically the same map.",
    )
    target = c2.selectbox(
        "Explain class",
        [-1, *range(len(names))],
        format_func=lambda k: f"predicted ({names[predicted]})" if k < 0 else names[k],
        key=f"diag_target_{sha[:16]}",
        help="Which class the heatmap explains: where the evidence FOR this class lies.",
    )
    colormap = c3.selectbox("Colour map", list(_colormaps()), key="diag_cmap", help=COLORMAP_HELP)
    opacity = c4.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="diag_opacity")
    t1, t2, t3 = st.columns([1, 1, 2])
    outline = t1.checkbox(
        "Show lung outline",
        value=res.segmenter is not None,
        key="diag_outline",
        disabled=res.segmenter is None,
        help=None if res.segmenter is not None else "No lung segmenter is loaded.",
    )
    hottest = t2.checkbox("Show hottest region only", key="diag_hottest")
    share = 15
    if hottest:
        share = t3.select_slider(
            "Hottest share of the image",
            [5, 10, 15, 20, 30],
            value=15,
            key="diag_share",
            format_func=lambda v: f"{v}%",
        )
    cls = None if target < 0 or target == predicted else int(target)
    with st.spinner("Computing the heatmap..."):
        diagnosis = appstate.run_diagnosis(res, cache, decoded, method, cls)

    from cxrlib.infer.overlay import heatmap_rgb, overlay

    mask = diagnosis.lung_mask if outline else None
    strip: list = []  # every method's overlay, when compared (also in the PDF report)
    comparison_text = ""

    def overlay_of(d):
        """The image with ``d``'s heatmap under the current display settings."""
        return overlay(
            decoded.pixels,
            d.heatmap,
            opacity=float(opacity),
            colormap=colormap,
            hottest_percent=appstate.hottest_percent(hottest, share),
            lung_mask=d.lung_mask if outline else None,
            frame=d.model_crop,
        )

    over = overlay_of(diagnosis)
    i1, i2, i3 = st.columns(3)
    i1.image(decoded.pixels, caption="Image", width="stretch")
    i2.image(
        heatmap_rgb(diagnosis.heatmap, colormap),
        caption=f"{appstate.METHOD_LABELS[method]} for '{diagnosis.target_name}'",
        width="stretch",
    )
    i3.image(over, caption="Overlay", width="stretch")
    if diagnosis.model_crop is not None:
        st.caption(
            ":material/crop: This model sees only the lung region that the lung segmenter "
            "found (cyan box); the heatmap is mapped back onto the whole image."
        )
    if res.classifier.preprocess.lung_mask:
        st.caption(
            ":material/masks: Everything outside the lung mask was filled with grey before the "
            "model looked: only the lungs, and their outline, reach it."
        )
    if st.toggle(
        "Compare all methods",
        key="diag_compare",
        help="Every heatmap method side by side for the same class, with the display settings "
        "above. Each map is computed once per image and class, then reused.",
    ):
        with st.spinner("Computing the other methods..."):
            compared = appstate.compare_methods(res, cache, decoded, cls)
        strip = [(compared.caption(d), overlay_of(d)) for d in compared.diagnoses]
        for col, (caption, image) in zip(st.columns(len(strip)), strip, strict=True):
            col.image(image, caption=caption, width="stretch")
        comparison_text = compared.text()
        st.caption(comparison_text)
        note = appstate.randomisation_note(res)
        if note:
            st.caption(f":material/warning: {note}")

    with focus_slot:
        st.markdown(f"**Lung focus** ({appstate.METHOD_LABELS[method]}, '{diagnosis.target_name}')")
        if res.segmenter is None:
            _ui.component_errors(res, ("segmenter",))
        else:
            _focus_box(diagnosis)

    settings = {
        "opacity": f"{opacity:.2f}",
        "colour map": colormap,
        "lung outline": "on" if mask is not None else "off",
        "hottest region only": f"{share}%" if hottest else "off",
    }
    warnings = list(decoded.header_concerns)
    if gate is not None and not gate.is_cxr:
        warnings.append(f"Analysed although the input check rejected the image ({gate.reason}).")
    report = partial(
        appstate.report_bytes,
        res,
        decoded,
        diagnosis,
        over,
        method=method,
        settings=settings,
        gate=gate,
        warnings=warnings,
        comparison=strip,
        comparison_text=comparison_text,
    )
    d1, d2, _ = st.columns([1, 1, 2])
    d1.download_button(
        "Download overlay (PNG)",
        data=partial(appstate.png_bytes, over),
        file_name=f"cxr_lens_overlay_{sha[:8]}.png",
        mime="image/png",
        on_click="ignore",
        icon=":material/image:",
        key="dl_overlay",
    )
    d2.download_button(
        "Download PDF report",
        data=report,
        file_name=f"cxr_lens_report_{sha[:8]}.pdf",
        mime="application/pdf",
        on_click="ignore",
        icon=":material/picture_as_pdf:",
        key="dl_report",
    )


def _colormaps():
    from cxrlib.infer.overlay import COLORMAPS

    return COLORMAPS


_ui.page_setup()
main()

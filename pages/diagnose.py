"""Diagnose: one chest X-ray -> input check, probabilities, heatmap, lung focus, report."""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from cxrlib.app.analysis import DisplaySettings, compare_methods
from cxrlib.app.downloads import report_bytes, report_warnings
from cxrlib.app.gallery import Chosen
from cxrlib.app.model_files import answer_record, randomisation_note
from cxrlib.app.resources import Resources
from cxrlib.app.texts import gate_text, is_unsure, md_escape, probability_headline, probability_note
from cxrlib.core.errors import CxrError, ModelServerError, PacsError
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.timings import timed
from cxrlib.describe.probability_svg import probability_svg
from cxrlib.describe.report import overlay_png
from cxrlib.infer.overlay import COLORMAPS, heatmap_rgb
from cxrlib.infer.pipeline import (
    Analysis,
    Decoded,
    Diagnosis,
    GateVerdict,
    check_input,
    diagnose_image,
)
from pages import _choose, _compat, _ui

COLORMAP_HELP = "Colour scale of the heatmap: red/yellow = where the model looked most."
METHOD_HELP = (
    "Grad-CAM, Grad-CAM++ and LayerCAM are instant; Faster Score-CAM and occlusion sensitivity "
    "(no gradients: how much covering each part of the lungs lowers the score) take a fraction "
    "of a second to a second, SmoothGrad a few seconds. On this model (global average "
    "pooling, then one dense layer) Grad-CAM++ and LayerCAM give practically the same map."
)
_DEFAULTS = DisplaySettings()
#: The heatmap controls whose values carry over from one image to the next.
DISPLAY_STATE = {
    "diag_method": next(iter(METHOD_LABELS)),
    "diag_cmap": _DEFAULTS.colormap,
    "diag_opacity": _DEFAULTS.opacity,
    "diag_outline": _DEFAULTS.outline,
    "diag_hottest": _DEFAULTS.hottest,
    "diag_share": _DEFAULTS.share,
    "diag_compare": False,
}


def _keep_display_state() -> None:
    """Carries the heatmap controls' values over runs that do not draw them.

    Streamlit forgets a widget's value in a run that does not draw it, and replacing an
    upload runs the page once with no file, so without the controls. The browser may
    still send the old values with the new file: the overlay was then drawn with the old
    opacity while the slider, drawn afresh, showed its default. Set through the session,
    the values stay, and the widgets (given no defaults of their own) show them.
    """
    for key, first in DISPLAY_STATE.items():
        st.session_state[key] = st.session_state.get(key, first)


def _heading(chosen: Chosen, decoded: Decoded) -> None:
    # File names come from the user: escaped, so they are shown as text, never as markup.
    heading = f"Analysing: {md_escape(chosen.name)}"
    if chosen.label:
        heading += f"  ·  dataset label: **{md_escape(chosen.label)}**"
    st.markdown(heading)
    for notice in decoded.notices:
        st.caption(f":material/info: {md_escape(notice)}")


# ----------------------------------------------------------------------------- the result


def _gate_section(res: Resources, decoded: Decoded, data: bytes) -> tuple[bool, GateVerdict | None]:
    """Shows the input check; returns (go on to the model?, the verdict or None)."""
    verdict = check_input(res, decoded, _ui.cache(), data=data, method=_method())
    if verdict is None or verdict.is_cxr:
        return True, verdict
    st.error(
        f"**{verdict.reason}** No class probabilities are shown for "
        "images that are not frontal chest X-rays.",
        icon=":material/block:",
    )
    anyway = st.checkbox(
        "Analyse anyway",
        key=f"anyway_{decoded.sha256[:16]}",
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


def _probabilities(base) -> None:
    """The headline, the unsure warning and the probability chart."""
    st.markdown(probability_headline(base))
    if is_unsure(base):
        st.warning(
            "**The model is unsure about this image**: the top class is not clearly ahead "
            "or changes with small shifts of the image.",
            icon=":material/help:",
        )
    with timed("figures"):
        chart = probability_svg(
            list(base.class_names), base.probabilities, base.uncertainty, base.predicted_index
        )
        # Markup built by cxrlib from numbers and escaped class names; st.html's
        # sanitiser drops SVG, markdown with raw HTML keeps it.
        st.markdown(chart, unsafe_allow_html=True)
    st.caption(probability_note(base))


def _checks(res: Resources, decoded: Decoded, base, gate: GateVerdict | None):
    """The input check, the header's concerns, a slot for the lung focus, the track record."""
    st.markdown("**Input check**")
    if gate is None:
        _ui.component_errors(res, ("gate",))
    elif gate.is_cxr:
        st.success(gate_text(gate), icon=":material/check_circle:")
    else:
        st.error(f"Rejected by the input check: {gate.reason}", icon=":material/block:")
    for concern in decoded.header_concerns:
        st.warning(concern, icon=":material/warning:")
    focus_slot = st.container()
    record = answer_record(res, base.predicted_name)
    if record:
        st.markdown(f"**Track record** of '{base.predicted_name}' answers")
        st.info("\n\n".join(record), icon=":material/history:")
    h, w = decoded.pixels.shape
    st.caption(
        f"{decoded.format or 'image'}, {w} x {h} px as analysed · "
        f"image SHA-256 {decoded.sha256[:16]}..."
    )
    return focus_slot


def _result_section(res: Resources, decoded: Decoded, base, gate: GateVerdict | None):
    """The "Result" section; returns the slot where the lung focus goes."""
    st.subheader("Result")
    left, right = st.columns([3, 2], gap="large")
    with left:
        _probabilities(base)
    with right:
        return _checks(res, decoded, base, gate)


# ----------------------------------------------------------------------------- the heatmap


def _controls(res: Resources, base, sha: str) -> tuple[str, int | None, DisplaySettings]:
    """The method, class and display controls: (method, class or None, settings)."""
    names, predicted = list(base.class_names), base.predicted_index
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 1.6])
    method = c1.selectbox(
        "Method",
        list(METHOD_LABELS),
        format_func=METHOD_LABELS.get,
        key="diag_method",
        help=METHOD_HELP,
    )
    target = c2.selectbox(
        "Explain class",
        [-1, *range(len(names))],
        format_func=lambda k: f"predicted ({names[predicted]})" if k < 0 else names[k],
        key=f"diag_target_{sha[:16]}",
        help="Which class the heatmap explains: where the evidence FOR this class lies.",
    )
    colormap = c3.selectbox("Colour map", list(COLORMAPS), key="diag_cmap", help=COLORMAP_HELP)
    opacity = c4.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="diag_opacity")
    t1, t2, t3 = st.columns([1, 1, 2])
    if not res.has_segmenter:
        st.session_state["diag_outline"] = False
    outline = t1.checkbox(
        "Show lung outline",
        key="diag_outline",
        disabled=not res.has_segmenter,
        help=None if res.has_segmenter else "No lung segmenter is loaded.",
    )
    hottest = t2.checkbox("Show hottest region only", key="diag_hottest")
    share = _DEFAULTS.share
    if hottest:
        share = t3.select_slider(
            "Hottest share of the image",
            [5, 10, 15, 20, 30],
            key="diag_share",
            format_func=lambda v: f"{v}%",
        )
    cls = None if target < 0 or target == predicted else int(target)
    return method, cls, DisplaySettings(float(opacity), colormap, outline, hottest, share)


def _heatmap_images(res: Resources, decoded: Decoded, d, shown: DisplaySettings) -> np.ndarray:
    """Image, heatmap and overlay side by side (and what the model saw); returns the overlay."""
    i1, i2, i3 = st.columns(3)
    with timed("images"):
        over = shown.overlay(decoded.pixels, d)
        i1.image(decoded.pixels, caption="Image", width="stretch")
        i2.image(
            heatmap_rgb(d.heatmap, shown.colormap),
            caption=f"{METHOD_LABELS[d.method]} for '{d.target_name}'",
            width="stretch",
        )
        i3.image(over, caption="Overlay", width="stretch")
    if d.model_crop is not None:
        st.caption(
            ":material/crop: This model sees only the lung region that the lung segmenter "
            "found (cyan box); the heatmap is mapped back onto the whole image."
        )
    return over


def _comparison(
    res: Resources, decoded: Decoded, data: bytes, cls: int | None, shown: DisplaySettings
) -> tuple[list[tuple[str, np.ndarray]], str]:
    """ "Compare all methods": every method's overlay and their agreement, when asked."""
    if not st.toggle(
        "Compare all methods",
        key="diag_compare",
        help="Every heatmap method side by side for the same class, with the display settings "
        "above. Each map is computed once per image and class, then reused.",
    ):
        return [], ""
    with st.spinner("Computing the other methods..."):
        compared = compare_methods(res, _ui.cache(), decoded, cls, data=data)
    strip = [(compared.caption(d), shown.overlay(decoded.pixels, d)) for d in compared.diagnoses]
    for col, (caption, image) in zip(st.columns(len(strip)), strip, strict=True):
        col.image(image, caption=caption, width="stretch")
    text = compared.text()
    st.caption(text)
    note = randomisation_note(res)
    if note:
        st.caption(f":material/warning: {note}")
    return strip, text


def _focus_section(res: Resources, d) -> None:
    st.markdown(f"**Lung focus** ({METHOD_LABELS[d.method]}, '{d.target_name}')")
    if not res.has_segmenter:
        _ui.component_errors(res, ("segmenter",))
        return
    box = {"good": st.success, "caution": st.warning, "warning": st.error}.get(
        d.focus_level, st.info
    )
    icon = {"good": "check_circle", "caution": "warning", "warning": "error"}
    box(d.focus_verdict, icon=f":material/{icon.get(d.focus_level, 'info')}:")


def _downloads(res, decoded, d, over, shown, gate, strip, comparison_text) -> None:
    """The overlay (PNG) and report (PDF) buttons; both are made only when clicked."""
    report = partial(
        report_bytes,
        res,
        decoded,
        d,
        over,
        method=d.method,
        settings=shown.described(d),
        gate=gate,
        warnings=report_warnings(decoded, gate),
        comparison=strip,
        comparison_text=comparison_text,
    )
    sha = decoded.sha256
    d1, d2, _ = st.columns([1, 1, 2])
    d1.download_button(
        "Download overlay (PNG)",
        data=partial(overlay_png, over),
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


# ----------------------------------------------------------------------------- the page


def _method() -> str:
    """The heatmap method: its widget is drawn further down the page, so its last value
    is read from the session (the probabilities do not depend on it)."""
    return st.session_state["diag_method"]


def _analyse(res: Resources, decoded: Decoded, data: bytes, gate: GateVerdict | None) -> Diagnosis:
    """Everything below the input check, for an image the model may look at; returns the
    diagnosis on screen."""
    cache = _ui.cache()
    with st.spinner("Analysing..."):
        base = diagnose_image(res, decoded, _method(), None, cache, data=data)
    focus_slot = _result_section(res, decoded, base, gate)
    st.subheader("Where the model looked")
    method, cls, shown = _controls(res, base, decoded.sha256)
    with st.spinner("Computing the heatmap..."):
        diagnosis = diagnose_image(res, decoded, method, cls, cache, data=data)
    over = _heatmap_images(res, decoded, diagnosis, shown)
    strip, comparison_text = _comparison(res, decoded, data, cls, shown)
    with focus_slot:
        _focus_section(res, diagnosis)
    _downloads(res, decoded, diagnosis, over, shown, gate, strip, comparison_text)
    return diagnosis


def _request_send(key: str) -> None:
    st.session_state["_pacs_send"] = key


def _send_to_pacs(res: Resources, image, analysis: Analysis) -> None:
    """ "Send to PACS" for an image from the PACS worklist: its report and overlay, as shown."""
    # Imported here: highdicom is needed only for images from the PACS.
    from cxrlib.app import worklist

    key = f"pacs_send_{analysis.decoded.sha256[:16]}"
    st.button(
        "Send to PACS",
        icon=":material/cloud_upload:",
        key=key,
        on_click=_request_send,
        args=(key,),
        help="Stores a structured report and the overlay (marked not for diagnosis) in a new "
        "CXR Lens series of this image's study, unless this model's result is there already.",
    )
    if st.session_state.pop("_pacs_send", None) != key:
        return
    config = worklist.pacs_config(_ui.secrets())
    try:
        if config is None:
            raise PacsError("No PACS is configured any more: see the PACS worklist page.")
        with st.spinner("Sending to the PACS..."):
            stored, said = worklist.send(config, image, analysis, worklist.app_model(res))
    except CxrError as exc:
        st.error(f"**Not sent.** {exc}", icon=":material/cloud_off:")
        return
    (st.success if stored else st.info)(said, icon=":material/cloud_done:")


def main() -> None:
    _keep_display_state()
    st.title("Diagnose")
    st.caption(
        "How a convolutional network sorts a chest X-ray into covid / normal / pneumonia, "
        "where it looked, and how far to trust it."
    )
    chosen = _choose.choose()
    if chosen is None:
        st.info("Upload an image or pick one from the gallery to start.", icon=":material/upload:")
        if not st.session_state.get("_diag_prefetched"):  # once: the modules stay loaded
            _compat.prefetch_frontend(_compat.RESULT_CHUNKS)
            st.session_state["_diag_prefetched"] = True
        return
    decoded = _choose.decoded(chosen)
    st.divider()
    if not decoded.ok:
        st.error(f"**This file cannot be used.** {decoded.error}", icon=":material/error:")
        return
    res = _ui.resources()
    _ui.component_errors(res, ("model server",))
    _heading(chosen, decoded)
    try:
        proceed, gate = _gate_section(res, decoded, chosen.data)
        if proceed and not res.can_diagnose:
            _ui.component_errors(res, ("classifier", "explainer"))
            proceed = False
        if not proceed:
            st.image(decoded.pixels, caption="The uploaded image", width=420)
            return
        diagnosis = _analyse(res, decoded, chosen.data, gate)
        choice = st.session_state.get(_choose.CHOICE) or {}
        if choice.get("kind") == "pacs":
            _send_to_pacs(res, choice["image"], Analysis(decoded, gate, diagnosis))
    except ModelServerError as exc:
        _ui.server_error(exc)


_compat.page_setup()
main()

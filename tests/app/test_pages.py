"""Every page through Streamlit's AppTest: no exception, real predictions, cached heatmaps."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
import saved_metrics
from app_helpers import ROOT, SAMPLES, app_pages, new_app, png_of, texts
from PIL import Image

from cxrlib.app.gallery import list_samples
from cxrlib.app.resources import get_resources
from cxrlib.app.texts import DISCLAIMER
from cxrlib.core.methods import METHOD_LABELS
from cxrlib.core.net import free_port
from cxrlib.core.timings import COUNTERS
from cxrlib.infer.pipeline import GateVerdict
from cxrlib.infer.runtime import device_description

PAGES = [script for script, _ in app_pages()]
DICOM = "normal_nih_00003353_006_synthetic.dcm"


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _overlay_url(at) -> str:
    for img in at.image:
        if img.captions and img.captions[0] == "Overlay":
            return img.value[0]
    raise AssertionError("no overlay image on the page")


def _charts(at) -> list[list[str]]:
    """The value labels of each probability chart (SVG markup) on the page."""
    return [
        re.findall(r'<text class="cxr-value"[^>]*>([^<]*)</text>', md.value)
        for md in at.markdown
        if md.value.startswith('<svg class="cxr-probabilities"')
    ]


def _upload(at, name: str, data: bytes, mime: str):
    return at.file_uploader(key="diag_upload").set_value((name, data, mime)).run()


def test_every_page_renders_with_the_disclaimer(app_env):
    at = new_app().run()
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page).run()
        _no_exception(at)
        page_text = texts(at)
        assert DISCLAIMER in page_text, page
        assert at.title, page


def test_upload_png_gives_a_prediction(app_env):
    at = new_app().run()
    _upload(at, "chest.png", png_of("pneumonia_nih_00007408_000.jpg"), "image/png")
    _no_exception(at)
    page = texts(at)
    assert "Most likely:" in page
    (values,) = _charts(at)
    # One label per class, and the headline's class and percentage are the chart's top bar.
    shown = [int(v.rstrip("%")) for v in values]
    most = re.search(r"Most likely: \*\*(\w+)\*\*, (\d+)%", page)
    assert len(shown) == 3 and most, page
    assert int(most.group(2)) == max(shown)
    captions = [c for img in at.image for c in img.captions]
    assert "Image" in captions and "Overlay" in captions
    assert any(c.startswith("Grad-CAM for") for c in captions)
    assert any(b.label == "Download PDF report" for b in at.get("download_button"))
    # How often this kind of answer was right, from the committed model's metrics file.
    predicted = page.split("Most likely: **", 1)[1].split("**", 1)[0]
    assert f"**Track record** of '{predicted}' answers" in page
    assert any(f"of its '{predicted}' answers were right" in i.value for i in at.info)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert f"**Device** {device_description()}" in sidebar
    assert "sha256" in sidebar


def test_user_file_names_are_shown_as_text(app_env):
    at = new_app().run()
    _upload(at, "[link](http://x.invalid) **b**.png", png_of("covid_cxnet_330.jpg"), "image/png")
    _no_exception(at)
    heading = next(m.value for m in at.markdown if m.value.startswith("Analysing:"))
    assert "[link](http" not in heading and "**b**" not in heading
    assert heading.replace("\\", "") == "Analysing: [link](http://x.invalid) **b**.png"


def test_a_model_server_that_is_down_falls_back_with_a_message(app_env, monkeypatch):
    closed = free_port()
    monkeypatch.setenv("CXR_MODEL_SERVER", f"http://127.0.0.1:{closed}")
    at = new_app().run()
    _upload(at, "chest.png", png_of("pneumonia_nih_00007408_000.jpg"), "image/png")
    _no_exception(at)
    assert any("model server (CXR_MODEL_SERVER) did not answer" in w.value for w in at.warning)
    assert "Most likely:" in texts(at) and len(_charts(at)) == 1
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "**Model server** not reachable" in sidebar


def test_missing_model_is_a_message_not_a_crash(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CXR_MODEL", str(tmp_path / "absent.keras"))
    monkeypatch.setenv("CXR_SEGMENTER", str(tmp_path / "absent_segmenter.keras"))
    at = new_app().run()
    _no_exception(at)
    _upload(at, "chest.png", png_of("covid_cxnet_330.jpg"), "image/png")
    _no_exception(at)
    assert any("classifier could not be loaded" in e.value for e in at.error)
    assert _charts(at) == []
    for page in PAGES[1:]:
        at.switch_page(page).run()
        _no_exception(at)


def test_display_controls_never_recompute_the_heatmap(app_env, heatmap_calls):
    at = new_app().run()
    _upload(at, "chest.png", png_of("covid_cxnet_265.jpg"), "image/png")
    _no_exception(at)
    computed = heatmap_calls["n"]
    assert computed >= 1
    counter = COUNTERS["heatmaps"]
    url = _overlay_url(at)

    at.slider(key="diag_opacity").set_value(0.9).run()
    _no_exception(at)
    after_opacity = _overlay_url(at)
    assert after_opacity != url, "the overlay did not change with the opacity"
    at.selectbox(key="diag_cmap").set_value("viridis").run()
    after_cmap = _overlay_url(at)
    assert after_cmap != after_opacity
    at.checkbox(key="diag_hottest").check().run()
    assert _overlay_url(at) != after_cmap
    _no_exception(at)
    assert heatmap_calls["n"] == computed, "a display control recomputed a heatmap"
    assert COUNTERS["heatmaps"] == counter

    # A new method is a new heatmap (so the counter above can fail).
    at.selectbox(key="diag_method").set_value("layercam").run()
    _no_exception(at)
    assert heatmap_calls["n"] == computed + 1
    assert "LayerCAM for" in " ".join(c for img in at.image for c in img.captions)
    # ...and going back to Grad-CAM is served from the cache.
    at.selectbox(key="diag_method").set_value("gradcam").run()
    assert heatmap_calls["n"] == computed + 1


def test_display_settings_carry_over_to_the_next_image(app_env):
    at = new_app().run()
    _upload(at, "first.png", png_of("covid_cxnet_265.jpg"), "image/png")
    at.slider(key="diag_opacity").set_value(0.8).run()
    at.selectbox(key="diag_cmap").set_value("viridis").run()
    # Replacing an upload runs the page once with no file, so without the controls.
    at.file_uploader(key="diag_upload").set_value(None).run()
    _no_exception(at)
    assert not at.slider
    _upload(at, "second.png", png_of("normal_nih_00002576_008.jpg"), "image/png")
    _no_exception(at)
    assert at.slider(key="diag_opacity").value == 0.8
    assert at.selectbox(key="diag_cmap").value == "viridis"


def test_comparing_all_methods_computes_each_once(app_env, heatmap_calls):
    # An image no other test opens: the heatmap cache lives as long as the process.
    flipped = Image.open(io.BytesIO(png_of("covid_cxnet_265.jpg"))).transpose(
        Image.Transpose.FLIP_LEFT_RIGHT
    )
    buf = io.BytesIO()
    flipped.save(buf, "PNG")
    at = new_app().run()
    _upload(at, "mirrored.png", buf.getvalue(), "image/png")
    before = heatmap_calls["n"]
    at.toggle(key="diag_compare").set_value(True).run()
    _no_exception(at)
    # Grad-CAM was already there; the other four are computed once each.
    assert heatmap_calls["n"] == before + len(METHOD_LABELS) - 1
    captions = [c for img in at.image for c in img.captions]
    for label in METHOD_LABELS.values():
        assert any(c.startswith(label + " · ") and "in the lungs" in c for c in captions), label
    page = texts(at)
    assert "regions overlap by" in page
    # This model's head (global average pooling, one dense layer) makes these two coincide.
    assert "Grad-CAM++ and LayerCAM mark the same region" in page
    shown = [img.value[0] for img in at.image]
    at.slider(key="diag_opacity").set_value(0.8).run()
    _no_exception(at)
    assert heatmap_calls["n"] == before + len(METHOD_LABELS) - 1
    assert [img.value[0] for img in at.image] != shown


def test_explaining_another_class(app_env, heatmap_calls):
    at = new_app().run()
    _upload(at, "chest.png", png_of("normal_nih_00002576_008.jpg"), "image/png")
    box = next(s for s in at.selectbox if s.key.startswith("diag_target_"))
    predicted = next(o for o in box.options if o.startswith("predicted"))
    other = next(o for o in box.options if not o.startswith("predicted") and o not in predicted)
    before = heatmap_calls["n"]
    box.set_value(box.options.index(other) - 1).run()
    _no_exception(at)
    assert heatmap_calls["n"] == before + 1
    captions = " ".join(c for img in at.image for c in img.captions)
    assert f"for '{other}'" in captions


@pytest.mark.parametrize(
    "name, data",
    [
        ("scan.png", b"%PDF-1.4\n1 0 obj << >> endobj\n"),
        ("scan.png", b""),
        ("scan.dcm", b"\x00" * 300),
        ("scan.jpg", png_of("covid_cxnet_265.jpg")[:400]),
    ],
)
def test_a_bad_file_shows_an_error_not_an_exception(app_env, name, data):
    at = new_app().run()
    _upload(at, name, data, "application/octet-stream")
    _no_exception(at)
    errors = [e.value for e in at.error]
    assert any("This file cannot be used" in e for e in errors), errors
    assert _charts(at) == []
    assert "Traceback" not in texts(at)


@pytest.mark.parametrize("fmt, mime", [("TIFF", "image/tiff"), ("JPEG", "image/jpeg")])
def test_tiff_and_jpeg_uploads(app_env, fmt, mime):
    buf = io.BytesIO()
    Image.open(SAMPLES / "normal_kermany_tr_IM-0675-0001.jpg").convert("L").save(buf, format=fmt)
    at = new_app().run()
    _upload(at, f"chest.{fmt.lower()}", buf.getvalue(), mime)
    _no_exception(at)
    assert f"{fmt}, 384 x 325 px" in texts(at)
    assert len(_charts(at)) == 1


def test_dicom_upload(app_env):
    at = new_app().run()
    _upload(at, "study.dcm", (SAMPLES / DICOM).read_bytes(), "application/dicom")
    _no_exception(at)
    page = texts(at)
    assert "DICOM display window applied" in page
    assert "DICOM, 384 x 384 px" in page
    assert "The DICOM header" not in page
    assert len(_charts(at)) == 1


def test_dicom_header_of_a_lateral_view_is_a_warning(app_env):
    import pydicom

    ds = pydicom.dcmread(SAMPLES / DICOM)
    ds.ViewPosition = "LL"
    buf = io.BytesIO()
    ds.save_as(buf)
    at = new_app().run()
    _upload(at, "lateral.dcm", buf.getvalue(), "application/dicom")
    _no_exception(at)
    warnings = [w.value for w in at.warning]
    assert any("lateral view (View Position LL)" in w for w in warnings), warnings
    assert len(_charts(at)) == 1  # a warning, not a refusal: headers are often wrong


def test_gallery_sample_opens(app_env):
    at = new_app().run()
    samples = list_samples()
    assert len(samples) >= 12 and {s.label for s in samples} == {"covid", "normal", "pneumonia"}
    at.session_state["diag_gallery"] = True  # the user opens the gallery
    at.run()
    at.button(key=f"sample_{samples[0].file}").click().run()
    _no_exception(at)
    page = texts(at)
    assert "Most likely:" in page
    assert f"dataset label: **{samples[0].label}**" in page


def _gallery_buttons(at) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith("sample_")]


def test_the_gallery_draws_its_thumbnails_only_while_open(app_env):
    at = new_app().run()
    assert [e.label for e in at.expander] == ["Sample gallery: real test-set images"]
    assert not _gallery_buttons(at)  # closed on the first view, thumbnails not drawn
    at.session_state["diag_gallery"] = True
    at.run()
    assert len(_gallery_buttons(at)) == len(list_samples())
    # A new upload closes it ...
    _upload(at, "chest.png", png_of("covid_cxnet_330.jpg"), "image/png")
    _no_exception(at)
    assert "Most likely:" in texts(at) and not _gallery_buttons(at)
    # ... and replacing the upload (a run without a file, then one with) leaves it closed.
    at.file_uploader(key="diag_upload").set_value(None).run()
    _no_exception(at)
    assert "Upload an image or pick one from the gallery" in texts(at)
    assert not _gallery_buttons(at)
    # Opened again, picking a sample closes it.
    at.session_state["diag_gallery"] = True
    at.run()
    at.button(key=_gallery_buttons(at)[0]).click().run()
    _no_exception(at)
    assert "Most likely:" in texts(at) and not _gallery_buttons(at)


def test_the_empty_page_loads_the_results_frontend_code(app_env):
    """While the page waits for an image it imports the result's widget code (one st.html
    script), once per session: the modules stay loaded in the browser."""
    from pages import _compat

    at = new_app().run()
    scripts = [h.value for h in at.html if "import(" in h.value]
    assert len(scripts) == 1
    for name in _compat.frontend_chunks(_compat.RESULT_CHUNKS):
        assert f'"{name}"' in scripts[0]
    _upload(at, "chest.png", png_of("covid_cxnet_330.jpg"), "image/png")
    assert not [h for h in at.html if "import(" in h.value]
    at.file_uploader(key="diag_upload").set_value(None).run()
    assert "Upload an image or pick one from the gallery" in texts(at)
    assert not [h for h in at.html if "import(" in h.value]


def test_missing_segmenter_degrades(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CXR_SEGMENTER", str(tmp_path / "absent.keras"))
    at = new_app().run()
    _upload(at, "chest.png", png_of("covid_cxnet_330.jpg"), "image/png")
    _no_exception(at)
    assert "No lung segmenter is loaded" in texts(at)
    assert at.checkbox(key="diag_outline").disabled
    assert len(_charts(at)) == 1


def test_rejected_image_needs_analyse_anyway(app_env, monkeypatch):
    """The input check's verdict gates the probabilities (the gate itself is stubbed here)."""
    res = get_resources()
    reason = "This does not look like a frontal chest X-ray (it looks like a photograph)."

    def reject_all(gray, colourfulness=None):
        return GateVerdict(False, 3.2, reason)

    monkeypatch.setattr(res, "gate", reject_all)
    at = new_app().run()
    # A fresh image (not cached with another verdict).
    _upload(
        at, "photo.png", png_of("pneumonia_kermany_tr_person405_bacteria_1817.jpg"), "image/png"
    )
    _no_exception(at)
    assert reason in texts(at)
    assert "No class probabilities are shown" in texts(at)
    assert _charts(at) == []
    box = next(c for c in at.checkbox if c.label == "Analyse anyway")
    box.check().run()
    _no_exception(at)
    assert len(_charts(at)) == 1
    assert "Analysed although the input check rejected this image" in texts(at)
    assert f"Rejected by the input check: {reason}" in texts(at)


@pytest.mark.skipif(
    not (ROOT / "models" / "ood.npz").exists(), reason="no committed OOD gate (models/ood.npz)"
)
def test_the_real_gate_rejects_noise_and_accepts_a_chest_xray(app_env, monkeypatch):
    monkeypatch.delenv("CXR_OOD", raising=False)
    res = get_resources()
    assert res.gate is not None, res.errors.get("gate")
    at = new_app().run()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 300), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    _upload(at, "noise.png", buf.getvalue(), "image/png")
    _no_exception(at)
    assert "No class probabilities are shown" in texts(at)
    assert _charts(at) == []
    _upload(at, "chest.png", png_of("normal_nih_00002576_008.jpg"), "image/png")
    _no_exception(at)
    assert "Looks like a frontal chest X-ray" in texts(at)
    assert "over 1.00 is refused" in texts(at)  # the score with its limit, not bare
    assert len(_charts(at)) == 1


def test_batch_scores_good_files_and_lists_bad_ones(app_env):
    at = new_app().run()
    at.switch_page("pages/batch.py").run()
    files = [
        ("a.png", png_of("covid_cxnet_265.jpg"), "image/png"),
        ("b.dcm", (SAMPLES / DICOM).read_bytes(), "application/dicom"),
        ("c.png", b"not an image at all", "image/png"),
    ]
    at.file_uploader(key="batch_upload").set_value(files).run()
    at.button(key="batch_run").click().run()
    _no_exception(at)
    stored = at.session_state["batch_results"]
    rows = list(csv.DictReader(io.StringIO(stored["csv"])))
    assert [r["file"] for r in rows] == ["a.png", "b.dcm", "c.png"]
    assert rows[0]["predicted"] in ("covid", "normal", "pneumonia")
    assert rows[1]["predicted"] in ("covid", "normal", "pneumonia")
    assert rows[2]["error"] and not rows[2]["predicted"]
    assert any("could not be read" in e.value for e in at.error)
    assert any(b.label == "Download results (CSV)" for b in at.get("download_button"))


def _metrics_tab(at, tab: str):
    """The Metrics page opened on ``tab`` through its query parameter, as a link opens it."""
    at.query_params["tab"] = tab
    at.switch_page("pages/metrics.py").run()
    _no_exception(at)
    return at


def test_the_metrics_page_opens_on_its_headline_and_overview(app_env):
    at = new_app().run()
    at.switch_page("pages/metrics.py").run()
    _no_exception(at)
    page = texts(at)
    # The headline: its figures with their intervals, the split and its sources.
    assert "On the **internal test split**, 12 images from" in page and "95% CI" in page
    assert "Balanced accuracy" in [m.label for m in at.metric]
    # The nih held-out sentence is not there (the fixture's loso has no nih) ...
    assert "For an adult patient" not in page
    # ... the Overview tab is: the confusion matrices, the per-class table, and the ROC and
    # precision-recall curves in a closed expander; no other tab's content.
    charts = at.get("plotly_chart")
    assert [c.key for c in charts if c.key] == ["cm_counts", "cm_norm"] and len(charts) == 4
    assert [e.label for e in at.expander] == ["ROC and precision-recall curves"]
    assert any("sensitivity" in d.value.columns for d in at.dataframe)
    assert "Lung focus of the heatmaps" not in page and not at.slider
    # The Model card is one click away ...
    assert [p.proto.label for p in at.get("page_link")] == ["Model card: when not to trust it"]
    # ... and so is the validation split.
    at.radio(key="metrics_split").set_value("val").run()
    assert "On the **validation split**" in texts(at)


def test_metrics_threshold_slider_updates_numbers(app_env):
    at = _metrics_tab(new_app().run(), "Threshold")
    sens = lambda: next(m.value for m in at.metric if m.label == "COVID sensitivity")  # noqa: E731
    at.slider(key="covid_threshold").set_value(0.05).run()
    low = sens()
    at.slider(key="covid_threshold").set_value(0.95).run()
    high = sens()
    _no_exception(at)
    assert low == "100.0%" and low != high
    assert len(at.get("plotly_chart")) == 2  # the live confusion matrix, counts and rows


@pytest.mark.parametrize(
    "tab, shown",
    [
        ("Calibration", ("Expected calibration error",)),
        ("By source", ("Sources differ in age group",)),
        ("Heatmaps", ("Lung focus of the heatmaps",)),
        ("Shortcut audit", ("Ablation: lungs erased, lungs only", "Fixture verdict sentence.")),
        ("Outside data", ("Leave one source out",)),
    ],
)
def test_each_metrics_tab_opens_from_its_link(app_env, tab, shown):
    at = _metrics_tab(new_app().run(), tab)
    page = texts(at)
    for text in shown:
        assert text in page, (tab, text)
    assert "Confusion matrix (counts)" not in str([c.proto for c in at.get("plotly_chart")])
    assert DISCLAIMER in page


def test_a_link_may_name_the_tab_in_lower_case(app_env):
    at = _metrics_tab(new_app().run(), "shortcut-audit")
    assert "Fixture verdict sentence." in texts(at)


def test_the_model_card_answers_its_three_questions_first(app_env):
    from cxrlib.describe.prose import caveats

    at = new_app().run()
    at.switch_page("pages/model_card.py").run()
    _no_exception(at)
    page = texts(at)
    assert "Not for diagnosis." in page and "What it is for:" in page
    table = next(d.value for d in at.dataframe if "what it is" in d.value.columns)
    assert list(table.index)[-1] == "total" and "quex" in table.index
    links = [(p.proto.label, p.proto.page) for p in at.get("page_link")]
    for c in caveats():
        assert f"**{c.title}.**" in page
        assert any(label == f"Evidence: Metrics › {c.tab}" for label, _ in links), links
    # No figure of the Metrics page here; the other sections are closed.
    assert not at.get("plotly_chart")
    assert "a source of n images weighs n^" not in page
    # The training recipe, read from the model's JSON, under "Model details".
    at.segmented_control(key="section").set_value("Model details").run()
    _no_exception(at)
    assert "a source of n images weighs n^" in texts(at) and "rotation ±" in texts(at)


@pytest.mark.parametrize(
    "section, text",
    [
        ("Metrics", "metrics_chosen"),
        ("Evaluation data", "evaluation_data"),
        ("Ethical considerations", "ethics"),
        ("Recommendations", "recommendations"),
        ("Licences and citations", "citations"),
    ],
)
def test_each_model_card_section_opens_from_its_link(app_env, section, text):
    from cxrlib.describe.prose import prose

    at = new_app().run()
    at.query_params["section"] = section
    at.switch_page("pages/model_card.py").run()
    _no_exception(at)
    assert at.segmented_control(key="section").value == section
    page = texts(at)
    assert prose(text).splitlines()[0] in page
    for other in ("metrics_chosen", "ethics", "citations"):
        assert (prose(other).splitlines()[0] in page) == (other == text)


def test_the_model_card_downloads_as_one_markdown_file(app_env):
    at = new_app().run()
    at.switch_page("pages/model_card.py").run()
    button = next(b for b in at.get("download_button") if "model card" in b.proto.label)
    assert button.proto.label == "Download the model card"
    # A Markdown file (its text is cxrlib.describe.card's: tests/describe/test_card.py; the
    # browser test downloads it).
    assert button.proto.url.endswith(".md")


def test_validation_browser_opens_an_image_in_diagnose(app_env):
    at = new_app().run()
    at.switch_page("pages/validation.py").run()
    _no_exception(at)
    buttons = [b for b in at.button if b.key and b.key.startswith("open_")]
    assert buttons, texts(at)
    # Misclassified first.
    first_text = texts(at)
    assert "images, of which" in first_text
    buttons[0].click().run()
    _no_exception(at)
    page = texts(at)
    assert "dataset label:" in page and "Most likely:" in page


def test_validation_browser_says_when_the_folder_is_absent(app_env, monkeypatch):
    monkeypatch.setenv("CXR_DATA", "/nonexistent/cxr")
    at = new_app().run()
    at.switch_page("pages/validation.py").run()
    _no_exception(at)
    assert any("does not exist" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key and b.key.startswith("open_")]
    at.text_input(key="val_folder").set_value(str(ROOT / "samples")).run()
    _no_exception(at)
    assert any("not the shared CXR data folder" in w.value for w in at.warning)


def _metrics_with(app_env, monkeypatch, tmp_path, page="pages/model_card.py", tab=None, **sections):
    """A page of a copy of the test model whose metrics file has ``sections`` added."""
    import json
    import shutil

    model = tmp_path / "cxr_classifier.keras"
    for suffix in (".keras", ".json"):
        shutil.copyfile(app_env.with_suffix(suffix), model.with_suffix(suffix))
    metrics = json.loads(app_env.with_suffix(".metrics.json").read_text())
    model.with_suffix(".metrics.json").write_text(json.dumps({**metrics, **sections}))
    monkeypatch.setenv("CXR_MODEL", str(model))
    at = new_app().run()
    if tab:
        at.query_params["tab"] = tab
    at.switch_page(page).run()
    _no_exception(at)
    return at


def test_the_method_check_shows_under_heatmaps_and_under_the_comparison(
    app_env, monkeypatch, tmp_path
):
    from saved_metrics import METHODS_SECTION

    at = _metrics_with(
        app_env,
        monkeypatch,
        tmp_path,
        "pages/metrics.py",
        "Heatmaps",
        explain_methods=METHODS_SECTION,
    )
    page = texts(at)
    assert "Do the heatmap methods agree, and do they explain the model?" in page
    assert "changed little for SmoothGrad (0.59)" in page
    assert any("random weights: rank correlation" in d.value for d in at.dataframe)
    at.switch_page("pages/diagnose.py").run()
    _upload(at, "chest.png", png_of("covid_cxnet_265.jpg"), "image/png")
    at.toggle(key="diag_compare").set_value(True).run()
    _no_exception(at)
    assert "the maps of SmoothGrad (0.59) kept a rank correlation of 0.5 or more" in texts(at)


FULL_RECIPE_NIH = {
    "schedule": {"epochs": 14, "steps_per_epoch": 0},
    "sources": {
        "nih": {
            "n": 501,
            "accuracy": 0.35,
            "balanced_accuracy": 0.35,
            "per_class_accuracy": {"normal": 0.6, "pneumonia": 0.1},
            "auc": {"pneumonia": 0.64},
            "internal_test_balanced_accuracy": 0.91,
        }
    },
}


def test_outside_data_shows_the_full_recipe_held_out(app_env, monkeypatch, tmp_path):
    at = _metrics_tab(new_app().run(), "Outside data")
    assert "Leave one source out, the full recipe" not in texts(at)  # not measured yet

    page = texts(
        _metrics_with(
            app_env,
            monkeypatch,
            tmp_path,
            "pages/metrics.py",
            "Outside data",
            loso_full=FULL_RECIPE_NIH,
        )
    )
    assert "Leave one source out, the full recipe" in page
    assert "**10%** of its pneumonia (AUC 0.64)" in page
    assert [s.value for s in at.subheader].count("Leave one source out") == 1  # the short runs


def test_the_adult_at_an_unseen_hospital_leads_the_metrics_page(app_env, monkeypatch, tmp_path):
    at = _metrics_with(
        app_env, monkeypatch, tmp_path, "pages/metrics.py", loso_full=FULL_RECIPE_NIH
    )
    (warning,) = [w.value for w in at.warning if "For an adult patient" in w.value]
    assert "Trained without the adult NIH Clinical Center images (14 epochs)" in warning
    assert "**10%** of its pneumonia" in warning
    # The Model card says it in the same words, under Quantitative analyses.
    at.switch_page("pages/model_card.py").run()
    at.segmented_control(key="section").set_value("Quantitative analyses").run()
    _no_exception(at)
    assert warning.split("did not train on.** ", 1)[1] in texts(at)


def test_the_model_card_says_why_a_higher_scoring_model_is_not_used(app_env, monkeypatch, tmp_path):
    import json

    at = new_app().run()
    at.query_params["section"] = "Quantitative analyses"
    at.switch_page("pages/model_card.py").run()
    _no_exception(at)
    assert "On the **internal test split**" in texts(at)  # the section is open ...
    assert "Why not a model that scores higher?" not in texts(at)  # ... nothing recorded yet

    metrics = json.loads(app_env.with_suffix(".metrics.json").read_text())
    ours = metrics["splits"]["test"]["balanced_accuracy"]
    alternatives = {
        "whole-image ResNet": {
            "preprocess": {"size": 128, "lung_crop": False},
            "train_config": {"arch": "resnet", "width": 64},
            "params": 2846787,
            "split": "test",
            "balanced_accuracy": ours + 0.1,
            "covid_sensitivity": 0.9,
            "lungs_erased": {"balanced_accuracy": 0.65, "covid_auc": 0.8},
        }
    }
    at = _metrics_with(app_env, monkeypatch, tmp_path, alternatives=alternatives)
    at.segmented_control(key="section").set_value("Quantitative analyses").run()
    page = texts(at)
    assert "Why not a model that scores higher?" in page
    assert "**whole-image ResNet** (the whole image, ResNet (64 filters first), 128 px)" in page
    assert "65% with the lungs erased" in page and "Not the model used here" in page
    assert "Why that counts against a model" in page
    table = next(d.value for d in at.dataframe if "lungs erased: bal. accuracy" in d.value)
    assert list(table.index) == ["this app's model", "whole-image ResNet"]


def test_outside_data_shows_the_collection_it_never_trained_on(app_env, monkeypatch, tmp_path):
    at = _metrics_tab(new_app().run(), "Outside data")
    assert "A collection it never trained on" not in texts(at)  # not measured yet

    from cxrlib.evaluate.external import answers

    counts = np.repeat([0, 1], [116, 159])  # covid, normal
    external = {
        "views": 9,
        "collections": {
            "openist_normal": {
                "name": "OpenIST",
                "description": "normal adults",
                "label": "normal",
                "population": "adult",
                "n": 275,
                "subsets": {"all": answers(np.eye(3)[counts], ("covid", "normal", "pneumonia"))},
                "input_check_refused": 0,
            }
        },
    }
    at = _metrics_with(
        app_env, monkeypatch, tmp_path, "pages/metrics.py", "Outside data", external=external
    )
    page = texts(at)
    assert "A collection it never trained on" in page
    assert "'covid' for **42%** (95% CI 36-48%)" in page
    table = next(d.value for d in at.dataframe if "called covid" in d.value)
    assert table["n"].tolist() == [275]
    # Shown once: the Model card's page has no copy of it.
    at.switch_page("pages/model_card.py").run()
    _no_exception(at)
    assert "'covid' for **42%**" not in texts(at)


def test_the_model_card_says_in_words_whether_the_network_knows_the_collection(
    app_env, monkeypatch, tmp_path
):
    at = new_app().run()
    at.switch_page("pages/model_card.py").run()
    assert "reading the network's features names" not in texts(at)  # not measured yet
    at = _metrics_with(app_env, monkeypatch, tmp_path, shortcuts=saved_metrics.shortcuts())
    (caption,) = [c.value for c in at.caption if "reading the network's features names" in c.value]
    assert "normal X-ray's collection 71% of the time (guessing: 50%)" in caption


def test_the_shortcut_audit_shows_resolution_and_hospital(app_env, monkeypatch, tmp_path):
    shortcuts = saved_metrics.shortcuts()
    at = _metrics_with(
        app_env, monkeypatch, tmp_path, "pages/metrics.py", "Shortcut audit", shortcuts=shortcuts
    )
    page = texts(at)
    assert "Resolution and hospital" in [s.value for s in at.subheader]
    assert "re-saved at 256 px: **4%** of 84 answers changed" in page
    assert "Ablation: lungs erased, lungs only" in page  # the fixture's ablation stays

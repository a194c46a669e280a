"""The PACS worklist page and Diagnose's "Send to PACS", through AppTest against a real Orthanc
holding the demo studies (a synthetic patient, one study a day over the last days)."""

from __future__ import annotations

import pytest
from app_helpers import new_app, texts
from pacs_fixtures import client_of, running_orthanc

from cxrlib.app import worklist as wl
from cxrlib.app.resources import get_resources
from cxrlib.core.net import free_port
from cxrlib.pacs.demo import DEMO_PATIENT_NAME, load_demo
from cxrlib.pacs.results import SERIES_DESCRIPTION, read_report
from cxrlib.pacs.scoring import score_instance

WORKLIST = "pages/worklist.py"
COLUMNS = [
    "Accession", "Study date", "Time", "Modality", "View", "Body part",
    "Most likely", "Probability", "Not normal", "Input check",
]  # fmt: skip
#: What the demo headers say about the patient: none of it may be shown.
PATIENT_FIELDS = ("DEMO^SYNTHETIC", "SYNTHETIC", "DEMO-0")


@pytest.fixture(scope="module")
def demo_pacs(tmp_path_factory):
    """An Orthanc of this module's own, with the demo studies."""
    with running_orthanc(tmp_path_factory.mktemp("worklist_pacs")) as server:
        load_demo(client_of(server))
        yield server


@pytest.fixture
def pacs_env(app_env, demo_pacs, monkeypatch):
    """The app pointed at the demo PACS through the environment."""
    monkeypatch.setenv("CXR_PACS_URL", demo_pacs.dicomweb_url)
    monkeypatch.setenv("CXR_PACS_USER", demo_pacs.user)
    monkeypatch.setenv("CXR_PACS_PASSWORD", demo_pacs.password)
    return demo_pacs


@pytest.fixture
def no_pacs_env(app_env, monkeypatch):
    for name in ("CXR_PACS_URL", "CXR_PACS_USER", "CXR_PACS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _worklist(accession: str = ""):
    at = new_app().run()
    at.switch_page(WORKLIST).run()
    if accession:
        at.text_input(key="wl_accession").set_value(accession).run()
    _no_exception(at)
    return at


def _table(at):
    (table,) = at.dataframe
    return table.value


def _page_strings(at) -> str:
    tables = [d.value.to_csv() for d in at.dataframe]
    return "\n".join([texts(at), *tables, *(e.value for e in at.exception)])


def _choose_row(at, index: int):
    """Selects a row of the table, as a click on it does in the browser."""
    (table,) = at.dataframe
    at.session_state[table.key] = {"selection": {"rows": [index], "columns": [], "cells": []}}
    return at.run()


def test_without_a_pacs_the_page_says_how_to_set_one_up(no_pacs_env):
    at = _worklist()
    (info,) = at.info
    assert "No PACS is configured" in info.value
    for needed in ("make pacs", "CXR_PACS_URL", "CXR_PACS_USER", "CXR_PACS_PASSWORD"):
        assert needed in info.value
    assert ".streamlit/secrets.toml" in info.value
    assert not at.dataframe and not at.error


def test_the_demo_studies_are_listed_with_pseudonymous_columns_only(pacs_env):
    at = _worklist()
    table = _table(at)
    assert list(table.columns) == COLUMNS
    # The default dates (the last week) hold every demo study, none scored yet.
    assert sorted(table["Accession"]) == [f"DEMO{i:04d}" for i in range(1, 7)]
    assert set(table["Modality"]) == {"CR"} and set(table["Body part"]) == {"CHEST"}
    assert set(table["View"]) == {"PA", "AP"}
    assert set(table["Most likely"]) == {"not scored"}
    page = _page_strings(at)
    assert DEMO_PATIENT_NAME.startswith(PATIENT_FIELDS[0])
    for field in PATIENT_FIELDS:
        assert field not in page
    assert pacs_env.password not in page
    # The accession filter narrows the list to one study.
    at.text_input(key="wl_accession").set_value("DEMO0004").run()
    assert list(_table(at)["Accession"]) == ["DEMO0004"]


def test_settings_from_streamlit_secrets(no_pacs_env, demo_pacs):
    at = new_app()
    at.secrets["pacs"] = {
        "url": demo_pacs.dicomweb_url,
        "user": demo_pacs.user,
        "password": demo_pacs.password,
    }
    at.run()
    at.switch_page(WORKLIST).run()
    _no_exception(at)
    assert "DEMO0001" in set(_table(at)["Accession"])


def test_an_unreachable_pacs_is_a_message(app_env, monkeypatch):
    closed = free_port()
    monkeypatch.setenv("CXR_PACS_URL", f"http://127.0.0.1:{closed}/dicom-web")
    at = _worklist()
    (error,) = at.error
    assert "does not answer" in error.value and "CXR_PACS_URL" in error.value
    assert not at.dataframe


def test_refused_credentials_are_a_message_that_does_not_show_them(pacs_env, monkeypatch):
    monkeypatch.setenv("CXR_PACS_PASSWORD", "wrong-secret-4711")
    at = _worklist()
    (error,) = at.error
    assert "refused the credentials" in error.value
    assert "wrong-secret-4711" not in _page_strings(at)


def test_scored_images_come_first_least_normal_first(pacs_env):
    client = client_of(pacs_env)
    res = get_resources()
    model = wl.app_model(res)
    at = _worklist()
    rows = wl.worklist(client, *wl.default_dates(), model=model)
    for row in rows[:3]:
        score_instance(client, res, row.image, model)
    # The page searched once: it shows the new answers on Refresh.
    assert len(_table(at.run()).query("`Most likely` != 'not scored'")) < 3
    at.button(key="wl_refresh").click().run()
    _no_exception(at)
    table = _table(at)
    scored = table[table["Most likely"] != "not scored"]
    assert len(scored) >= 3
    assert list(scored.index) == list(range(len(scored)))  # all before the unscored ones
    not_normal = [float(v.rstrip("%")) for v in scored["Not normal"]]
    assert not_normal == sorted(not_normal, reverse=True)
    # Each answer is the one in the PACS's report.
    for row in wl.worklist(client, *wl.default_dates(), model=model):
        if row.report is not None:
            shown = table[table["Accession"] == row.study.accession].iloc[0]
            assert shown["Most likely"] == row.report.predicted
            assert shown["Input check"] in ("accepted", "refused")


def test_a_chosen_row_opens_its_image_in_diagnose_then_send_stores_once(pacs_env):
    client = client_of(pacs_env)
    at = _worklist("DEMO0006")
    (study,) = client.search_studies(accession="DEMO0006")
    before = client.search_instances(study.study_uid, modalities=None)
    _choose_row(at, 0)
    _no_exception(at)
    page = texts(at)
    assert "Analysing: PACS accession DEMO0006, CR" in page and "Most likely:" in page
    assert "DICOM" in page  # decoded as the upload of a DICOM file is
    (image,) = before
    choice = at.session_state["diag_choice"]
    assert choice["kind"] == "pacs"
    assert choice["image"].data == client.retrieve_bytes(
        study.study_uid, image.series_uid, image.sop_uid
    )

    # AppTest reruns the page it was last switched to: follow the app to Diagnose.
    at.switch_page("pages/diagnose.py").run()
    at.button(key=next(b.key for b in at.button if b.label == "Send to PACS")).click().run()
    _no_exception(at)
    assert any("Stored in the PACS" in s.value for s in at.success)
    after = client.search_instances(study.study_uid, modalities=None)
    written = [i for i in after if i.series_description == SERIES_DESCRIPTION]
    assert len(written) == 2 and "SR" in {i.modality for i in written}
    (sr,) = [i for i in written if i.modality == "SR"]
    report = read_report(client.retrieve(sr.study_uid, sr.series_uid, sr.sop_uid))
    assert report.source_sop_instance_uid == image.sop_uid
    assert f"Most likely: **{report.predicted}**" in texts(at)

    at.button(key=next(b.key for b in at.button if b.label == "Send to PACS")).click().run()
    _no_exception(at)
    assert any("Already in the PACS" in i.value for i in at.info)
    assert len(client.search_instances(study.study_uid, modalities=None)) == len(after)


# ----------------------------------------------------------------------------- no PACS needed


def test_settings_from_the_environment_win_over_the_secrets(monkeypatch):
    secrets = {
        "pacs": {"url": "https://pacs.example.org/dicom-web/", "user": "u", "password": "s3"}
    }
    for name in ("CXR_PACS_URL", "CXR_PACS_USER", "CXR_PACS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert wl.pacs_config({}) is None and wl.pacs_config({"pacs": {"url": " "}}) is None
    config = wl.pacs_config(secrets)
    assert config is not None
    assert (config.url, config.user, config.password) == (
        "https://pacs.example.org/dicom-web",
        "u",
        "s3",
    )
    assert "s3" not in repr(config)
    monkeypatch.setenv("CXR_PACS_URL", "http://127.0.0.1:8042/dicom-web")
    config = wl.pacs_config(secrets)
    assert config is not None and config.url == "http://127.0.0.1:8042/dicom-web"
    assert config.password == ""


def _row(accession: str, p_normal: float | None) -> wl.WorklistRow:
    from datetime import date

    from cxrlib.pacs.client import InstanceRow, StudyRow
    from cxrlib.pacs.results import ModelIdentity, ReportContent

    study = StudyRow(accession, accession, date(2001, 1, 1), None, ("CR",), "", 1)
    image = InstanceRow(accession, "1.2", accession + ".1", "", "CR", "PA", "CHEST", "", 1)
    if p_normal is None:
        return wl.WorklistRow(study, image, None)
    probabilities = {"covid": 0.0, "normal": p_normal, "pneumonia": 1.0 - p_normal}
    report = ReportContent(
        max(probabilities, key=probabilities.__getitem__), probabilities, {}, "normal",
        "gradcam", None, True, 0.5, ModelIdentity("m", "1", "ab"), image.sop_uid,
    )  # fmt: skip
    return wl.WorklistRow(study, image, report)


def test_least_normal_first_then_the_unscored_in_their_order():
    rows = [_row("A", None), _row("B", 0.9), _row("C", None), _row("D", 0.2), _row("E", 0.4)]
    ordered = wl.worklist_order(rows)
    assert [r.study.accession for r in ordered] == ["D", "E", "B", "A", "C"]
    table = wl.worklist_table(ordered)
    assert list(table.columns) == COLUMNS
    assert list(table["Not normal"]) == ["80%", "60%", "10%", "", ""]
    assert list(table["Most likely"]) == [
        "pneumonia",
        "pneumonia",
        "normal",
        "not scored",
        "not scored",
    ]
    assert list(table["Input check"][:3]) == ["accepted"] * 3

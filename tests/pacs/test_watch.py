"""The watcher against a real Orthanc of each test's own: every new chest X-ray scored once,
across restarts, crashes, a PACS that goes away, and a burst; nothing about the patient logged."""

from __future__ import annotations

import json
import logging
import threading
import time

import psutil
import pytest
from pacs_fixtures import client_of
from scoring_helpers import (
    PATIENT_DATA,
    broken_pixels,
    noise,
    own_pacs,
    results_in,
    without_pixels,
    xray,
)

from cxrlib.core.errors import PacsUnreachableError
from cxrlib.core.net import free_port
from cxrlib.pacs import cli, watch
from cxrlib.pacs.server import local_orthanc

FAST = watch.Retry(first=0.05, cap=0.2, tries=3)


def _watcher(client, models, identity, state) -> watch.Watcher:
    return watch.Watcher(client, watch.OrthancFeed(client), models, identity, state)


def _scored_once(client, datasets) -> None:
    """Each source has exactly one result series (an SR and an SC)."""
    for ds in datasets:
        rows = results_in(client, ds.StudyInstanceUID)
        assert sorted(r.modality for r in rows) == ["OT", "SR"], ds.SOPInstanceUID
        assert len({r.series_uid for r in rows}) == 1


def _no_patient_data(text: str) -> None:
    for value in PATIENT_DATA:
        assert value not in text


def _wait(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_once_scores_each_xray_and_counts_what_it_cannot(
    tmp_path, models, identity, caplog, capsys, monkeypatch, tiny_model_path
):
    caplog.set_level(logging.INFO, logger="cxrlib.pacs")
    state = tmp_path / "state" / "watch.json"
    with own_pacs(tmp_path / "pacs") as (orthanc, client):
        xrays = [xray(0), xray(1), xray(4)]
        client.store([*xrays, noise(), without_pixels(), broken_pixels()])
        counts = watch.watch(_watcher(client, models, identity, state), once=True)
        assert (counts.scored, counts.refused, counts.failed, counts.skipped) == (3, 1, 2, 0)
        _scored_once(client, xrays)
        saved = json.loads(state.read_text())
        assert set(saved) == {"position", "counts"} and saved["position"] > 0

        # The command line, again: only our own results are new, and they are not X-rays.
        password = tmp_path / "password"
        password.write_text(orthanc.password)
        monkeypatch.setenv("CXR_MODEL", str(tiny_model_path))
        args = ["watch", "--once", "--url", orthanc.dicomweb_url, "--user", orthanc.user]
        assert cli.main([*args, "--password-file", str(password), "--state", str(state)]) == 0
        out = capsys.readouterr()
        assert "scored 0, skipped 0, ignored 6, refused 0, failed 0" in out.out
        _scored_once(client, xrays)
        assert json.loads(state.read_text())["counts"]["scored"] == 3
    _no_patient_data(caplog.text + out.out + out.err)
    assert any(ds.SOPInstanceUID in caplog.text for ds in xrays)


def test_a_restart_after_a_crash_neither_skips_nor_repeats(tmp_path, models, identity, monkeypatch):
    """The watcher dies after storing the results of the third instance, before saving its
    position: the next run skips that one (its results are there) and scores the fourth."""
    state = tmp_path / "watch.json"
    real = watch.score_instance
    calls = []

    def dies_after_the_third(*args):
        outcome = real(*args)
        calls.append(outcome)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return outcome

    with own_pacs(tmp_path / "pacs") as (_, client):
        xrays = [xray(i) for i in range(4)]
        for ds in xrays:  # one change each, in order
            client.store([ds])
        monkeypatch.setattr(watch, "score_instance", dies_after_the_third)
        with pytest.raises(KeyboardInterrupt):
            watch.watch(_watcher(client, models, identity, state), once=True)
        assert json.loads(state.read_text())["counts"]["scored"] == 2
        monkeypatch.setattr(watch, "score_instance", real)
        counts = watch.watch(_watcher(client, models, identity, state), once=True)
        assert (counts.scored, counts.skipped, counts.failed) == (1, 1, 0)
        _scored_once(client, xrays)
        assert json.loads(state.read_text())["counts"]["scored"] == 3


def test_the_watcher_waits_for_a_pacs_that_stops_and_starts_again(
    tmp_path, models, identity, caplog
):
    caplog.set_level(logging.INFO, logger="cxrlib.pacs")
    storage, port, password = tmp_path / "pacs", free_port(), "secret-pw"
    stop = threading.Event()
    first, second = xray(0), xray(1)
    started = []
    with local_orthanc(storage, http_port=port, password=password) as orthanc:
        started.append(orthanc.process.pid)
        client = client_of(orthanc)
        client.store([first])
        watcher = _watcher(client, models, identity, tmp_path / "watch.json")
        thread = threading.Thread(
            target=watch.watch,
            args=(watcher,),
            kwargs={"interval": 0.1, "retry": FAST, "stop": stop},
        )
        thread.start()
        _wait(lambda: watcher.run_counts.scored == 1)
    try:
        _wait(lambda: "PACS unreachable, retrying in" in caplog.text)
        with local_orthanc(storage, http_port=port, password=password) as orthanc:
            started.append(orthanc.process.pid)
            client.store([second])
            _wait(lambda: watcher.run_counts.scored == 2)
            _scored_once(client, [first, second])
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert watcher.run_counts.failed == 0
    assert [pid for pid in started if psutil.pid_exists(pid)] == []  # both PACS runs stopped
    assert password not in caplog.text


def test_once_gives_up_on_a_pacs_that_does_not_answer(tmp_path, models, identity, caplog):
    with own_pacs(tmp_path / "pacs") as (_, client):
        pass  # stopped: nothing answers on its port now
    watcher = _watcher(client, models, identity, tmp_path / "watch.json")
    with pytest.raises(PacsUnreachableError, match="does not answer"):
        watch.watch(watcher, once=True, retry=FAST)
    assert caplog.text.count("PACS unreachable, retrying in") == FAST.tries - 1
    assert not (tmp_path / "watch.json").exists()


def test_the_command_exits_2_when_the_pacs_is_down(tmp_path, capsys, monkeypatch, tiny_model_path):
    monkeypatch.setenv("CXR_MODEL", str(tiny_model_path))
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    code = cli.main(["watch", "--once", "--url", url, "--state", str(tmp_path / "s.json")])
    assert code == 2
    assert "does not answer" in capsys.readouterr().err


def test_a_damaged_state_file_is_a_clear_error(tmp_path):
    state = tmp_path / "watch.json"
    state.write_text("{not json")
    with pytest.raises(watch.CxrError, match="damaged: delete it"):
        watch.WatchState.load(state)


@pytest.mark.slow
def test_a_burst_of_200_is_scored_each_once(tmp_path, models, identity):
    with own_pacs(tmp_path / "pacs") as (_, client):
        burst = [xray(i % 6, side=256) for i in range(200)]
        client.store(burst)
        counts = watch.watch(_watcher(client, models, identity, tmp_path / "w.json"), once=True)
        assert (counts.scored, counts.skipped, counts.failed, counts.refused) == (200, 0, 0, 0)
        _scored_once(client, burst)

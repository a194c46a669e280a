"""Score every chest X-ray stored in an Orthanc PACS, as it arrives: ``python -m cxrlib.pacs
watch``.

The watcher follows Orthanc's change feed (``GET /changes?since=N``): each change has a
sequence number that only grows, so the last one handled is an exact position. Saved after each
instance, it lets a restart go on where the last run stopped, neither skipping nor repeating;
QIDO has no such cursor (only dates, coarse and not ordered by arrival). Another PACS would
need QIDO polling by date with an overlap and the dedupe below; that is not built.

Each new CR or DX instance is scored by :func:`cxrlib.pacs.scoring.score_instance`, which skips
an instance this model already scored: that also covers a crash between storing the results
and saving the position. Everything else (the results written back, other modalities) is
ignored. An instance that cannot be scored (no pixels, corrupt, refused by the input gate) is
logged by its SOP Instance UID, counted and passed. When the PACS does not answer, the same
change is tried again after a growing pause. The log and the state file hold UIDs, counts and
the position, never a patient's name, ID or birth date.

One process scores one instance at a time: a model is loaded once and a CPU is kept busy by
one diagnosis. A large backfill is the same loop from position 0; spreading it over Ray
workers would load a model per worker and lose the single ordered position.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxrlib.core.errors import (
    CxrError,
    InputRefusedError,
    PacsAuthError,
    PacsError,
    PacsNotFoundError,
    PacsUnreachableError,
)
from cxrlib.infer.pipeline import Models
from cxrlib.pacs.client import (
    XRAY_MODALITIES,
    InstanceRow,
    PacsClient,
    PacsConfig,
    instance_row,
)
from cxrlib.pacs.results import ModelIdentity, model_identity
from cxrlib.pacs.scoring import score_instance

logger = logging.getLogger(__name__)

#: Changes asked for at a time (Orthanc's default page).
PAGE = 100
#: Where the watcher keeps its position (beside ``make pacs``'s storage, git-ignored).
DEFAULT_STATE = Path(".pacs/watch-state.json")


@dataclass
class Counts:
    """Instances handled: scored, skipped (this model's result was there), ignored (not CR or
    DX, or gone), refused by the input gate, failed (no usable image, or the PACS refused)."""

    scored: int = 0
    skipped: int = 0
    ignored: int = 0
    refused: int = 0
    failed: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items())


@dataclass
class WatchState:
    """Where the watcher is in the change feed, and what it did so far (all runs)."""

    position: int = 0
    counts: Counts = field(default_factory=Counts)

    @classmethod
    def load(cls, path: Path) -> WatchState:
        """The state saved at ``path``; a fresh one (position 0) when there is none."""
        if not path.exists():
            return cls()
        try:
            saved = json.loads(path.read_text())
            return cls(int(saved["position"]), Counts(**saved["counts"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CxrError(
                f"The watcher's state file {path} is damaged: delete it to score everything "
                "in the PACS again (results already there are skipped)."
            ) from exc

    def save(self, path: Path) -> None:
        """Writes the state atomically: a crash leaves the old file or the new one."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w") as f:
            json.dump({"position": self.position, "counts": asdict(self.counts)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def orthanc_root(dicomweb_url: str) -> str:
    """Orthanc's REST root from its DICOMweb root (``.../dicom-web``)."""
    url = dicomweb_url.rstrip("/")
    if not url.endswith("/dicom-web"):
        raise CxrError(f"{url} is not Orthanc's DICOMweb root (…/dicom-web): pass --orthanc-url.")
    return url.removesuffix("/dicom-web")


class OrthancFeed:
    """Orthanc's change feed and instance tags, over its REST API with the client's login."""

    def __init__(self, client: PacsClient, url: str | None = None) -> None:
        self.client = client
        self.url = (url or orthanc_root(client.config.url)).rstrip("/")

    def _get(self, path: str, missing: str = "", **params: Any) -> Any:
        with self.client.answering(missing):
            answer = self.client.session.get(
                self.url + path, params=params, timeout=self.client.config.timeout
            )
            answer.raise_for_status()
            return answer.json()

    def changes(self, since: int) -> Iterator[dict[str, Any]]:
        """The changes after position ``since``, oldest first, page by page."""
        while True:
            page = self._get("/changes", since=since, limit=PAGE)
            yield from page["Changes"]
            if page["Done"] or not page["Changes"]:
                return
            since = int(page["Changes"][-1]["Seq"])

    def instance(self, orthanc_id: str) -> InstanceRow:
        """The UIDs, modality and view of an instance, by Orthanc's ID.

        Raises:
            PacsNotFoundError: It was deleted since.
        """
        tags = self._get(f"/instances/{orthanc_id}/tags", "gone", simplify="")
        return instance_row(tags)


@dataclass
class Watcher:
    """Scores what arrives in the PACS with one model and keeps its place in ``state_path``."""

    client: PacsClient
    feed: OrthancFeed
    models: Models
    identity: ModelIdentity
    state_path: Path | None = None
    state: WatchState = field(default_factory=WatchState)
    run_counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        if self.state_path is not None:
            self.state = WatchState.load(self.state_path)

    def _save(self) -> None:
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.state.save(self.state_path)

    def handle(self, orthanc_id: str) -> str:
        """Scores one new instance; returns its outcome (a :class:`Counts` field).

        Raises:
            PacsUnreachableError, PacsAuthError: Nothing was counted: try it again later.
        """
        try:
            ref = self.feed.instance(orthanc_id)
        except PacsNotFoundError:
            logger.info("instance %s: deleted before it was scored", orthanc_id)
            return "ignored"
        if ref.modality not in XRAY_MODALITIES:
            return "ignored"
        try:
            outcome = score_instance(self.client, self.models, ref, self.identity)
        except (PacsUnreachableError, PacsAuthError):
            raise  # nothing is wrong with this instance: try it again later
        except CxrError as exc:  # our messages hold UIDs, never patient data
            logger.warning("instance %s: %s", ref.sop_uid, exc)
            return "refused" if isinstance(exc, InputRefusedError) else "failed"
        except Exception as exc:  # a bug or an odd header: the next instances still count
            logger.warning("instance %s: failed (%s)", ref.sop_uid, type(exc).__name__)
            return "failed"
        if not outcome.stored:
            logger.info("instance %s: already scored by this model", ref.sop_uid)
            return "skipped"
        logger.info("instance %s: scored, results in series %s", ref.sop_uid, outcome.series_uid)
        return "scored"

    def drain(self) -> None:
        """Handles every change after the saved position, saving it after each instance."""
        for change in self.feed.changes(self.state.position):
            if change["ChangeType"] == "NewInstance":
                outcome = self.handle(change["ID"])
                self.state.counts.add(outcome)
                self.run_counts.add(outcome)
            self.state.position = int(change["Seq"])
            if change["ChangeType"] == "NewInstance":
                self._save()
        self._save()


@dataclass(frozen=True)
class Retry:
    """Pauses while the PACS does not answer: ``first`` seconds, doubled each time up to
    ``cap``; ``tries``: how many times ``--once`` asks before it gives up."""

    first: float = 1.0
    cap: float = 30.0
    tries: int = 4

    def pause(self, failures: int) -> float:
        return min(self.cap, self.first * 2 ** (failures - 1))


def watch(
    watcher: Watcher,
    *,
    once: bool = False,
    interval: float = 5.0,
    retry: Retry = Retry(),
    stop: threading.Event | None = None,
) -> Counts:
    """Follows the PACS until ``stop`` is set (or, ``once``, until it has caught up); returns
    this run's counts.

    Raises:
        PacsError: ``once``, and the PACS failed ``retry.tries`` times in a row (not
            answering: PacsUnreachableError).
        PacsAuthError: The PACS refused the credentials.
    """
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            watcher.drain()
        except PacsAuthError:
            raise
        except PacsError as exc:  # down, or answering errors while it stops or starts
            failures += 1
            if once and failures >= retry.tries:
                raise
            pause = retry.pause(failures)
            what = "unreachable" if isinstance(exc, PacsUnreachableError) else f"error ({exc})"
            logger.warning("PACS %s, retrying in %gs", what, pause)
            stop.wait(pause)
            continue
        failures = 0
        if once:
            break
        stop.wait(interval)
    return watcher.run_counts


def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    """The watcher's options (the connection's are the CLI's)."""
    p.add_argument("--once", action="store_true", help="score what is new, then stop")
    p.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"its position (default {DEFAULT_STATE})"
    )
    p.add_argument("--interval", type=float, default=5.0, help="seconds between looks (5)")
    p.add_argument("--orthanc-url", help="Orthanc's REST root (default: the URL minus /dicom-web)")


def run_watch(a: argparse.Namespace, config: PacsConfig) -> int:
    """Loads the models (``$CXR_MODEL``, ``$CXR_SEGMENTER``, ``$CXR_OOD``) and watches; exit
    code 2 when ``--once`` finds the PACS down."""
    from cxrlib.predict.rows import load_models  # imports TensorFlow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    client = PacsClient(config)
    feed = OrthancFeed(client, a.orthanc_url)
    models = load_models()
    assert models.classifier is not None
    identity = model_identity(models.classifier.meta, str(models.model_path))
    watcher = Watcher(client, feed, models, identity, a.state)
    logger.info("watching %s from position %d", feed.url, watcher.state.position)
    try:
        counts = watch(watcher, once=a.once, interval=a.interval)
    except PacsError as exc:
        if isinstance(exc, PacsAuthError):
            raise
        print(f"{exc} Gave up; the next run starts where this one stopped.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        counts = watcher.run_counts
    print(f"watch: {counts} (position {watcher.state.position})")
    return 0

"""What the PACS worklist page and Diagnose's "Send to PACS" need: where the PACS is, the chest
X-rays of a date range with this model's answer on each (read from its reports in the PACS),
least normal first, an image handed to Diagnose in memory, and its results sent back.

Rows hold pseudonymous fields only (accession number, date, modality, view, body part): a
patient's name, ID or birth date never leaves the PACS client.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pydicom

from cxrlib.app.gallery import Chosen
from cxrlib.app.model_files import model_meta
from cxrlib.app.resources import Resources, resources_ready
from cxrlib.core.errors import PacsNotFoundError
from cxrlib.core.formatting import pct
from cxrlib.core.settings import model_path
from cxrlib.infer.pipeline import Analysis
from cxrlib.pacs.client import XRAY_MODALITIES, InstanceRow, PacsClient, PacsConfig, StudyRow
from cxrlib.pacs.results import ModelIdentity, ReportContent, model_identity
from cxrlib.pacs.scoring import send_results, study_results

#: The days before today that the worklist shows at first.
DEFAULT_DAYS = 7
#: The class whose probability says "nothing found": the worklist puts the least likely first.
NORMAL = "normal"
SETUP_HELP = """\
**No PACS is configured.** To try one on this machine, `make pacs` starts a local Orthanc with
a few demo studies and prints the line to start the app with, such as

```
CXR_PACS_URL=http://127.0.0.1:8042/dicom-web CXR_PACS_USER=cxrlens \\
CXR_PACS_PASSWORD="$(cat .pacs/password)" make run
```

For a hospital PACS, set `CXR_PACS_URL` (its DICOMweb root), `CXR_PACS_USER` and
`CXR_PACS_PASSWORD`, or put them in `.streamlit/secrets.toml` (never commit that file):

```toml
[pacs]
url = "https://pacs.example.org/dicom-web"
user = "cxrlens"
password = "..."
```

docs/pacs.md has the details."""


def pacs_config(secrets: Mapping[str, Any] | None = None) -> PacsConfig | None:
    """The PACS of ``$CXR_PACS_URL`` (and user, password), else the ``[pacs]`` table (``url``,
    ``user``, ``password``) of the app's secrets; None when neither names one."""
    config = PacsConfig.from_env()
    table = (secrets or {}).get("pacs") or {}
    url = str(table.get("url", "")).strip().rstrip("/")
    if config is not None or not url:
        return config
    return PacsConfig(url, str(table.get("user", "")), str(table.get("password", "")))


def default_dates(today: date | None = None) -> tuple[date, date]:
    """The first date range shown: the last :data:`DEFAULT_DAYS` days up to today."""
    end = today or date.today()
    return end - timedelta(days=DEFAULT_DAYS), end


def app_model(res: Resources | None = None) -> ModelIdentity:
    """The identity of the app's classifier, whose results count: that of ``res`` (loaded here
    or on a model server), else that of ``$CXR_MODEL``'s JSON (no TensorFlow needed).

    Raises:
        ModelError: The model's JSON has no weights hash.
    """
    res = res or resources_ready()
    return model_identity(res.model_meta if res else model_meta(model_path()))


@dataclass(frozen=True)
class WorklistRow:
    """One chest X-ray of the worklist and this model's report on it (None: not scored)."""

    study: StudyRow
    image: InstanceRow
    report: ReportContent | None

    @property
    def not_normal(self) -> float | None:
        """1 - p(normal): how far from normal the model finds the image; None if unscored."""
        return None if self.report is None else 1.0 - self.report.probabilities.get(NORMAL, 0.0)

    @property
    def input_check(self) -> str:
        if self.report is None:
            return ""
        return {True: "accepted", False: "refused", None: "not run"}[self.report.input_accepted]

    @property
    def name(self) -> str:
        """What Diagnose calls the image: pseudonymous, like the row."""
        image = " ".join(filter(None, (self.image.modality, self.image.view)))
        return f"PACS accession {self.study.accession or '(none)'}, {image}"


def worklist(
    client: PacsClient,
    date_from: date | None,
    date_to: date | None,
    accession: str = "",
    model: ModelIdentity | None = None,
) -> list[WorklistRow]:
    """The CR and DX images of the studies dated ``date_from`` to ``date_to`` (and of
    ``accession`` if given), with ``model``'s reports on them, in :func:`worklist_order`.

    Raises:
        PacsError: The PACS cannot be reached or refuses the credentials.
    """
    rows = []
    for study in client.search_studies(date_from, date_to, accession.strip() or None):
        try:
            images = client.search_instances(study.study_uid, XRAY_MODALITIES)
            stored = study_results(client, study.study_uid, model) if model and images else []
        except PacsNotFoundError:  # deleted since the search
            continue
        reports: dict[str, ReportContent] = {}
        for result in stored:  # the first of this model's reports on an image, as scoring finds
            reports.setdefault(result.report.source_sop_instance_uid, result.report)
        rows += [WorklistRow(study, image, reports.get(image.sop_uid)) for image in images]
    return worklist_order(rows)


def worklist_order(rows: Sequence[WorklistRow]) -> list[WorklistRow]:
    """Scored images first, least normal first; then those not scored yet (each part keeps
    the order it had: newest study first, as the PACS client lists them)."""
    return sorted(rows, key=lambda r: (r.not_normal is None, -(r.not_normal or 0.0)))


def worklist_table(rows: Sequence[WorklistRow]) -> pd.DataFrame:
    """The rows as the page shows them: pseudonymous columns and the model's answer."""
    records = []
    for row in rows:
        s, r = row.study, row.report
        records.append(
            {
                "Accession": s.accession,
                "Study date": s.study_date.isoformat() if s.study_date else "",
                "Time": s.study_time.strftime("%H:%M") if s.study_time else "",
                "Modality": row.image.modality,
                "View": row.image.view,
                "Body part": row.image.body_part,
                "Most likely": r.predicted if r else "not scored",
                "Probability": pct(r.probabilities[r.predicted]) if r else "",
                "Not normal": pct(row.not_normal) if row.not_normal is not None else "",
                "Input check": row.input_check,
            }
        )
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class PacsImage:
    """An image fetched from the PACS for Diagnose: its DICOM bytes (in memory only) and
    the row it came from."""

    row: WorklistRow
    data: bytes

    @property
    def chosen(self) -> Chosen:
        """The image as Diagnose takes an upload."""
        return Chosen(self.row.name, self.data, "", f"pacs:{self.row.image.sop_uid}")


def fetch(client: PacsClient, row: WorklistRow) -> PacsImage:
    """The image of ``row``, fetched into memory.

    Raises:
        PacsNotFoundError: It is no longer in the PACS.
        NotAnImageError: It holds no pixel data.
    """
    image = row.image
    return PacsImage(row, client.retrieve_bytes(image.study_uid, image.series_uid, image.sop_uid))


def send(
    config: PacsConfig, image: PacsImage, analysis: Analysis, model: ModelIdentity
) -> tuple[bool, str]:
    """Stores the report and overlay of ``analysis`` (of ``image``, as shown) in its study,
    unless this model's result is there already: (stored?, what happened in words).

    Raises:
        PacsError: The PACS cannot be reached, refuses, or lost the study.
    """
    source = pydicom.dcmread(io.BytesIO(image.data), stop_before_pixels=True)
    if send_results(PacsClient(config), source, analysis, model).stored:
        return True, "Stored in the PACS: a report and the overlay, in a new CXR Lens series."
    return False, "Already in the PACS: this model's result for this image is there."

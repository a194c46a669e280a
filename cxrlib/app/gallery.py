"""Images on disk the app shows (the committed sample gallery, dataset images), and how a
page's choice of one becomes bytes to analyse."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cxrlib.core.settings import SAMPLES_DIR


@dataclass(frozen=True)
class Sample:
    """One committed gallery image (see samples/PROVENANCE.md)."""

    file: str
    label: str
    source: str
    license: str
    original: str = ""
    note: str = ""

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / self.file

    @property
    def title(self) -> str:
        """Its caption in the gallery."""
        kind = "DICOM, " if self.file.lower().endswith(".dcm") else ""
        return f"{self.label} ({kind}{self.source})"


def list_samples(folder: str | os.PathLike[str] = SAMPLES_DIR) -> list[Sample]:
    """The gallery, from ``samples.csv`` in ``folder`` (empty if absent)."""
    index = Path(folder) / "samples.csv"
    if not index.exists():
        return []
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = [f.name for f in fields(Sample)]
    samples = [Sample(**{k: v for k, v in r.items() if k in names}) for r in rows]
    return [s for s in samples if (Path(folder) / s.file).exists()]


def thumbnail(gray: np.ndarray, side: int = 192) -> np.ndarray:
    """A square-padded uint8 thumbnail of ``gray`` (for a tidy gallery grid)."""
    h, w = gray.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(
        gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    out = np.zeros((side, side), np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def safe_image_path(folder: str | os.PathLike[str], relative: str) -> Path | None:
    """``folder / relative`` if it stays inside ``folder`` and exists, else None."""
    base = Path(folder).resolve()
    try:
        p = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    if base not in p.parents or not p.is_file():
        return None
    return p


@dataclass(frozen=True)
class Chosen:
    """An image picked for the Diagnose page: ``name`` is user text (escape it), ``label``
    the dataset's or "", ``key`` a stable identity (the page hashes the bytes once per key)."""

    name: str
    data: bytes
    label: str
    key: str


def open_sample(file: str) -> Chosen | None:
    """The gallery sample ``file``, or None when it is not in the gallery."""
    sample = next((s for s in list_samples() if s.file == file), None)
    if sample is None:
        return None
    return Chosen(f"sample {sample.file}", sample.path.read_bytes(), sample.label, f"sample:{file}")


def open_dataset_image(choice: dict[str, Any]) -> Chosen:
    """A dataset image the Validation browser sent (``path``, ``source``, ``rel``, ``label``);
    FileNotFoundError when it is no longer there."""
    path = Path(choice["path"])
    if not path.is_file():
        raise FileNotFoundError(f"The dataset image is no longer available: {path}")
    name = f"{choice.get('source', '')} {choice.get('rel', path.name)}"
    return Chosen(name, path.read_bytes(), choice.get("label", ""), f"dataset:{path}")

"""Reading a DICOM header safely: typed fields, the transfer syntax, the metadata allow-list.

Only technical fields are ever read into the result: no patient, study or
institution field, and a code-string field only when it looks like a code (never
a name or free text). pydicom is imported inside functions: it is an optional,
heavy dependency only DICOM uploads need.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_CS_VALUE = re.compile(r"[A-Z0-9 _]{1,16}")
_UID_VALUE = re.compile(r"[0-9.]{1,64}")
_CODE_FIELDS = ("Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined")
_NUMBER_FIELDS = ("Rows", "Columns", "BitsStored", "BitsAllocated", "SamplesPerPixel")


def dicom_int(ds: Any, keyword: str) -> int | None:
    """An integer field, or None when absent or invalid."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(value)
    except Exception:  # noqa: BLE001
        return None


def dicom_float(ds: Any, keyword: str) -> float | None:
    """First value of a numeric field, or None when absent, invalid or not finite."""
    from pydicom.multival import MultiValue  # heavy; only DICOM uploads load it

    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple | MultiValue):
            value = value[0]
        out = float(value)
        return out if np.isfinite(out) else None
    except Exception:  # noqa: BLE001
        return None


def dicom_code(ds: Any, keyword: str) -> str | None:
    """A code-string field, only if it looks like a code (never a name or free text)."""
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        text = str(value).strip().upper()
    except Exception:  # noqa: BLE001
        return None
    return text if _CS_VALUE.fullmatch(text) else None


def dicom_meta(ds: Any, ts_name: str) -> dict[str, Any]:
    """The allow-listed technical fields of a dataset, for :attr:`DecodedImage.meta`."""
    meta: dict[str, Any] = {"TransferSyntax": ts_name}
    for keyword in _CODE_FIELDS:
        value = dicom_code(ds, keyword)
        if value is not None:
            meta[keyword] = value
    for keyword in _NUMBER_FIELDS:
        number = dicom_int(ds, keyword)
        if number is not None:
            meta[keyword] = number
    return meta


def transfer_syntax(ds: Any) -> tuple[Any, str]:
    """The dataset's transfer syntax (filled in when absent) and a safe display name."""
    # pydicom is heavy; only DICOM uploads load it.
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    file_meta = getattr(ds, "file_meta", None)
    ts = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not ts:
        encoding = getattr(ds, "original_encoding", None) or (True, True)
        implicit = encoding[0] is not False
        ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        if file_meta is None:
            from pydicom.dataset import FileMetaDataset  # heavy; only DICOM uploads load it

            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    ts = UID(str(ts))
    if ts.is_transfer_syntax and ts.name != str(ts):
        name = ts.name
    elif _UID_VALUE.fullmatch(str(ts)):
        name = f"transfer syntax {ts}"
    else:
        name = "an unknown transfer syntax"
    return ts, name

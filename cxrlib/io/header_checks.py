"""What a DICOM header says against a frontal chest X-ray: another modality, view or body part.

The pixel gate (:mod:`cxrlib.infer.gate`) sees only pixels and has no rule for
lateral views; the header often says so plainly. Headers are often incomplete or
wrong, so these are warnings, never refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "OT", "SC"})
"""Modalities that are radiographs (or may wrap one: other, secondary capture)."""
_MODALITY_NAMES = {
    "CT": "computed tomography",
    "MR": "magnetic resonance",
    "US": "ultrasound",
    "MG": "mammography",
    "NM": "nuclear medicine",
    "PT": "PET",
    "XA": "angiography",
    "RF": "fluoroscopy",
    "IO": "intra-oral radiography",
    "PX": "panoramic dental radiography",
}
_LATERAL_VIEWS = frozenset({"LL", "RL", "LLD", "RLD", "LAT", "LATERAL"})
_OBLIQUE_VIEWS = frozenset({"LAO", "RAO", "LPO", "RPO", "LLO", "RLO", "OBL", "OBLIQUE"})
_CHEST_WORDS = ("CHEST", "THORAX", "TORAX", "THORAKS", "LUNG", "BRUST", "PECHO", "POITRINE")


def header_concerns(meta: Mapping[str, Any]) -> list[str]:
    """What a DICOM header says against a frontal chest X-ray, as sentences to show.

    Only the code-string fields that :func:`cxrlib.io.decode.decode_image` keeps are
    read (``Modality``, ``ViewPosition``, ``BodyPartExamined``); absent or unknown
    values say nothing.

    Args:
        meta: ``DecodedImage.meta`` (any image; only DICOM files carry these fields).

    Returns:
        Plain sentences, empty when the header raises no concern.
    """
    found = (_modality_concern(meta), _view_concern(meta), _body_part_concern(meta))
    return [concern for concern in found if concern]


def _field(meta: Mapping[str, Any], key: str) -> str:
    return str(meta.get(key) or "").strip().upper()


def _modality_concern(meta: Mapping[str, Any]) -> str:
    modality = _field(meta, "Modality")
    if not modality or modality in RADIOGRAPH_MODALITIES:
        return ""
    what = _MODALITY_NAMES.get(modality)
    named = f"{modality} ({what})" if what else modality
    return (
        f"The DICOM header gives the modality as {named}, not a radiograph "
        "(CR or DX): the model only knows chest X-rays."
    )


def _view_concern(meta: Mapping[str, Any]) -> str:
    view = _field(meta, "ViewPosition")
    kind = "lateral" if view in _LATERAL_VIEWS else "oblique" if view in _OBLIQUE_VIEWS else ""
    if not kind:
        return ""
    return (
        f"The DICOM header says this is a {kind} view (View Position {view}): the "
        "model was trained on frontal (PA or AP) chest X-rays only."
    )


def _body_part_concern(meta: Mapping[str, Any]) -> str:
    part = _field(meta, "BodyPartExamined")
    if not part or any(word in part for word in _CHEST_WORDS):
        return ""
    return (
        f"The DICOM header gives the body part as {part}, not the chest: the model "
        "only knows chest X-rays."
    )

"""What a DICOM header says against a frontal chest X-ray: another modality, view or body part
(the pixel gate has no rule for lateral views). Headers are often wrong: warnings, not refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Radiographs, or what may wrap one (other, secondary capture).
_RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "OT", "SC"})
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
    """Sentences to show for what a DICOM header (``DecodedImage.meta``) says against a
    frontal chest X-ray; absent or unknown values say nothing."""
    modality, view, part = (
        str(meta.get(key) or "").strip().upper()
        for key in ("Modality", "ViewPosition", "BodyPartExamined")
    )
    concerns = []
    if modality and modality not in _RADIOGRAPH_MODALITIES:
        what = _MODALITY_NAMES.get(modality)
        named = f"{modality} ({what})" if what else modality
        concerns.append(
            f"The DICOM header gives the modality as {named}, not a radiograph "
            "(CR or DX): the model only knows chest X-rays."
        )
    kind = "lateral" if view in _LATERAL_VIEWS else "oblique" if view in _OBLIQUE_VIEWS else ""
    if kind:
        concerns.append(
            f"The DICOM header says this is a {kind} view (View Position {view}): the "
            "model was trained on frontal (PA or AP) chest X-rays only."
        )
    if part and not any(word in part for word in _CHEST_WORDS):
        concerns.append(
            f"The DICOM header gives the body part as {part}, not the chest: the model "
            "only knows chest X-rays."
        )
    return concerns

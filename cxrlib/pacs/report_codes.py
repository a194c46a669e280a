"""The coded concepts of a CXR Lens report: standard codes (SNOMED CT, DICOM) where they exist,
else the local coding scheme :data:`LOCAL_SCHEME`, which the report declares."""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.coding import Code

from cxrlib.core.methods import METHOD_LABELS

#: The local coding scheme (a "99" prefix marks a private scheme in DICOM).
LOCAL_SCHEME = "99CXRLENS"


def local(value: str, meaning: str) -> Code:
    """A concept of the local coding scheme."""
    return Code(value, LOCAL_SCHEME, meaning)


#: Classes with a SNOMED CT concept; any other class is a local code named after it.
CLASS_CODES: dict[str, Code] = {
    "covid": Code("840539006", "SCT", "COVID-19"),
    "normal": Code("17621005", "SCT", "Normal"),
    "pneumonia": Code("233604007", "SCT", "Pneumonia"),
}
CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")

PREDICTED_CLASS = local("predicted-class", "Predicted class")
HEATMAP_CLASS = local("heatmap-class", "Class the heatmap explains")
HEATMAP_METHOD = local("heatmap-method", "Heatmap method")
LUNG_FOCUS = local("lung-focus", "Share of the heatmap inside the lungs")
INPUT_CHECK = local("input-check", "Chest X-ray input check")
INPUT_SCORE = local("input-score", "Input check distance (1 = threshold)")
ACCEPTED = local("accepted", "Accepted")
REFUSED = local("refused", "Refused")


def class_code(name: str) -> Code:
    """The coded concept of a class name."""
    return CLASS_CODES.get(name) or local(name, name)


def class_name(concept: Code | CodedConcept) -> str:
    """The class name of a coded concept written by :func:`class_code`."""
    for name, code in CLASS_CODES.items():
        if (code.value, code.scheme_designator) == (concept.value, concept.scheme_designator):
            return name
    return str(concept.value)


def method_code(method: str) -> Code:
    """The coded concept of a heatmap method key (``"gradcam"``)."""
    return local(method, METHOD_LABELS.get(method, method))

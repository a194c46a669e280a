"""The heatmap methods CXR Lens offers: their keys and the names the app shows.

This is the one list every consumer reads (the Diagnose menu, "Compare all
methods", the PDF, ``evaluate methods`` and the audit tables). The code of each
method lives in :mod:`cxrlib.infer.heatmaps`, which registers one class per key
listed here; this module holds only names, so it imports no TensorFlow.
"""

from __future__ import annotations

#: Method key -> the name shown in the app, in menu order.
METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "layercam": "LayerCAM",
    "scorecam": "Faster Score-CAM",
    "smoothgrad": "SmoothGrad",
}

#: Method keys in menu order.
METHODS: tuple[str, ...] = tuple(METHOD_LABELS)


def method_label(method: str) -> str:
    """The name shown for ``method`` (the key itself when unknown)."""
    return METHOD_LABELS.get(method, method)

"""The registry of heatmap methods: each method's key, the name the app shows, its class.

Classes are named by import path and loaded only when used, so this module imports no
TensorFlow. Adding a method is one module in :mod:`cxrlib.infer.heatmaps` plus one line here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """One method: the name shown everywhere and its class's ``"module:Class"``."""

    label: str
    target: str


_PKG = "cxrlib.infer.heatmaps"

#: Method key -> its spec, in menu order.
REGISTRY: dict[str, MethodSpec] = {
    "gradcam": MethodSpec("Grad-CAM", f"{_PKG}.gradcam:GradCAM"),
    "gradcampp": MethodSpec("Grad-CAM++", f"{_PKG}.gradcampp:GradCAMPlusPlus"),
    "layercam": MethodSpec("LayerCAM", f"{_PKG}.layercam:LayerCAM"),
    "scorecam": MethodSpec("Faster Score-CAM", f"{_PKG}.scorecam:ScoreCAM"),
    "smoothgrad": MethodSpec("SmoothGrad", f"{_PKG}.smoothgrad:SmoothGrad"),
    "occlusion": MethodSpec("Occlusion sensitivity", f"{_PKG}.occlusion:OcclusionSensitivity"),
}

#: Method key -> the name shown in the app, in menu order.
METHOD_LABELS: dict[str, str] = {key: spec.label for key, spec in REGISTRY.items()}

#: Method keys in menu order.
METHODS: tuple[str, ...] = tuple(REGISTRY)


def check_method(method: str) -> str:
    """``method`` itself when it is registered; a ValueError for an unknown key."""
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return method

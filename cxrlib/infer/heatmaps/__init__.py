"""Heatmap methods as plug-ins, one module each, listed in :data:`cxrlib.core.methods.REGISTRY`;
importing this package loads neither TensorFlow nor any method."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from cxrlib.core.methods import REGISTRY, check_method

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.heatmaps.base import HeatmapMethod


def method_class(method: str) -> type[HeatmapMethod]:
    """The class of a registered method (ValueError for an unknown key), imported on use."""
    module, _, name = REGISTRY[check_method(method)].target.partition(":")
    cls: type[HeatmapMethod] = getattr(import_module(module), name)
    return cls

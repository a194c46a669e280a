"""Heatmap methods as plug-ins: one small class per method, under one base class.

The methods are listed once, in :data:`cxrlib.core.methods.REGISTRY` (key, label and
``"module:Class"``); this package turns a key into its class on first use, so
importing it loads neither TensorFlow nor any method. The shared work (targets,
mapping back onto the image, normalisation, the compiled pass of the CAM family,
the tf-keras-vis reference) is in :mod:`cxrlib.infer.heatmaps.base`.

Adding a method: a module here with a subclass of
:class:`~cxrlib.infer.heatmaps.base.HeatmapMethod` that implements ``compute``
(or a CAM that overrides ``weights``), and one line in the registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from cxrlib.core.methods import REGISTRY, check_method

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.heatmaps.base import HeatmapMethod


def method_class(method: str) -> type[HeatmapMethod]:
    """The class of a registered method (its module imported on first use).

    Raises:
        ValueError: For an unknown key.
    """
    module, _, name = REGISTRY[check_method(method)].target.partition(":")
    cls: type[HeatmapMethod] = getattr(import_module(module), name)
    return cls

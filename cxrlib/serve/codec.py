"""The JSON the model server and its client exchange: dataclasses with NumPy arrays, exactly.

An array travels as ``{"__npy__": base64 of its .npy bytes}`` (dtype and shape
kept, float32 bit for bit), a tuple as ``{"__tuple__": [...]}``, a NumPy scalar
as its Python value; everything else is plain JSON. Decoding gives back equal
values, so a served diagnosis compares equal, array for array, with one made in
this process.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import numpy as np

NPY = "__npy__"
TUPLE = "__tuple__"


def encode(value: Any) -> Any:
    """A JSON-able copy of ``value`` (arrays, tuples, dataclasses and dicts inside it too)."""
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {NPY: base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return {TUPLE: [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (dataclasses come back as dicts: see :func:`build`)."""
    if isinstance(value, dict):
        if set(value) == {NPY}:
            return np.load(io.BytesIO(base64.b64decode(value[NPY])), allow_pickle=False)
        if set(value) == {TUPLE}:
            return tuple(decode(v) for v in value[TUPLE])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def build(cls: type, value: Any) -> Any:
    """An instance of the dataclass ``cls`` from its :func:`encode` d form (None stays None)."""
    if value is None:
        return None
    fields = decode(value)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in fields.items() if k in names})

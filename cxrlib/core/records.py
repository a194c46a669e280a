"""Frozen records read from and written back to JSON without loss.

A :class:`Record` subclass declares its JSON keys as dataclass fields. A field without a
default is required; one with a default is optional. Keys a record does not declare are
kept in ``extra``, and the order the keys came in is kept, so that writing a record back
gives the JSON it was read from.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from cxrlib.core.errors import CxrError

R = TypeVar("R", bound="Record")

#: The fields every record has that are not JSON keys of their own.
_BOOKKEEPING = ("extra", "key_order")


class SchemaError(CxrError):
    """A JSON record lacks a required key or holds a value of the wrong type.

    Attributes:
        key: The key path, e.g. ``splits.test.confusion_matrix.labels``.
        problem: What is wrong with it.
        source: The file (or other origin) it was read from, or "".
    """

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        self.key, self.problem, self.source = key, problem, source
        where = f" in {source}" if source else ""
        super().__init__(f"'{key}'{where}: {problem}")


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON object with declared keys.

    Attributes:
        extra: The keys this record does not declare, as read.
        key_order: The keys in the order they were read (writing keeps it).
    """

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    key_order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Any, path: str = "") -> R:
        """The record of one JSON object; raises :class:`SchemaError` naming the key."""
        if not isinstance(data, Mapping):
            raise SchemaError(path or "(top level)", f"expected an object, got {_kind(data)}")
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in _BOOKKEEPING:
                continue
            key = f"{path}.{f.name}" if path else f.name
            if f.name in data:
                values[f.name] = _convert(hints[f.name], data[f.name], key)
            elif f.default is MISSING and f.default_factory is MISSING:
                raise SchemaError(key, "required key is missing")
        declared = set(values) | set(_declared(cls))
        extra = {k: v for k, v in data.items() if k not in declared}
        return cls(**values, extra=extra, key_order=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (the one it was read from, if unchanged)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _BOOKKEEPING:
                continue
            value = getattr(self, f.name)
            if f.name in self.key_order or not _is_default(f, value):
                out[f.name] = _dump(value)
        out.update(self.extra)
        rank = {k: i for i, k in enumerate(self.key_order)}
        return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _declared(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name not in _BOOKKEEPING]


def _is_default(f: Any, value: Any) -> bool:
    if f.default is not MISSING:
        return bool(value == f.default)
    if f.default_factory is not MISSING:
        return bool(value == f.default_factory())
    return False


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _convert(tp: Any, value: Any, path: str) -> Any:
    """``value`` read as type ``tp`` (records, tuples, mappings, scalars, unions with None)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SchemaError(path, f"expected a list, got {_kind(value)}")
        return tuple(_convert(get_args(tp)[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise SchemaError(path, f"expected an object, got {_kind(value)}")
        inner = get_args(tp)[1]
        return {k: _convert(inner, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    """``value`` itself, checked against ``tp`` (an int counts as a float; no bool does)."""
    ok = {
        float: isinstance(value, int | float) and not isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported schema type {tp!r} at {path}")
    if not ok:
        raise SchemaError(path, f"expected {tp.__name__}, got {_kind(value)}")
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value

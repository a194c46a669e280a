"""Frozen pydantic records read from and written back to JSON without loss.

A :class:`Record` subclass declares its JSON keys as fields; a field without a default is
required. Keys a record does not declare are kept (``extra``), and so is the order the keys
came in, so that writing a record back gives the JSON it was read from. Scalars are checked
as JSON has them and kept as read: an int stays an int in a float field, and a bool is not
a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cxrlib.core.errors import CxrError


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

    @classmethod
    def first_of(cls, error: ValidationError) -> SchemaError:
        """The first problem pydantic found, named by its key path."""
        e = error.errors()[0]
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        if e["type"] == "missing":
            problem = "required key is missing"
        elif e["type"] in ("model_type", "dict_type", "mapping_type"):
            problem = f"expected an object, got {_kind(e['input'])}"
        elif e["type"] in ("tuple_type", "list_type"):
            problem = f"expected a list, got {_kind(e['input'])}"
        else:
            problem = e["msg"]
        return cls(key or "(top level)", problem)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _checked(tp: type) -> PlainValidator:
    """A validator that accepts a JSON value of type ``tp`` as it is (an int counts as a
    float; no bool counts as a number)."""

    def check(value: Any) -> Any:
        ok = isinstance(value, int | float) if tp is float else isinstance(value, tp)
        if not ok or (tp in (int, float) and isinstance(value, bool)):
            raise PydanticCustomError(
                "json_type", "expected {tp}, got {kind}", {"tp": tp.__name__, "kind": _kind(value)}
            )
        return value

    return PlainValidator(check)


Int = Annotated[int, _checked(int)]
Float = Annotated[float, _checked(float)]
Str = Annotated[str, _checked(str)]


class Record(BaseModel):
    """A JSON object with declared keys; ``extra`` holds the ones it does not declare."""

    model_config = ConfigDict(frozen=True, extra="allow")

    _key_order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        record = handler(data)
        if isinstance(data, Mapping):
            record._key_order = tuple(data)
        return record

    @model_serializer(mode="wrap")
    def _in_key_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        rank = {k: i for i, k in enumerate(self._key_order)}
        return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))

    @property
    def extra(self) -> Mapping[str, Any]:
        """The keys this record does not declare, as read."""
        return self.model_extra or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (the one it was read from, if unchanged)."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude_unset=True)
        return out

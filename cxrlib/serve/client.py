"""The model server's client (``Models.remote``) and wire format: the in-process answers,
computed by ``python -m cxrlib.serve``. No Ray, no TensorFlow.

In JSON an array travels as ``{"__npy__": base64 of its .npy bytes}`` and a tuple as
``{"__tuple__": [...]}``, so a served diagnosis equals one made in process."""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import numpy as np
import requests

from cxrlib.core.errors import ImageError, ModelServerError
from cxrlib.core.timings import timed
from cxrlib.infer.pipeline import Diagnosis, GateVerdict
from cxrlib.predict.rows import BatchRow

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
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in decode(value).items() if k in names})


class RemoteAnalyser:
    """A client of the model server at ``url`` (``$CXR_MODEL_SERVER``); a bad image raises
    ImageError as in process, a server that is down or answers nonsense ModelServerError."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(
        self, path: str, data: bytes = b"", params: dict[str, str] | None = None, timeout: float = 0
    ) -> dict[str, Any]:
        try:
            resp = requests.request(
                "POST" if data else "GET",
                self.url + path,
                params=params,
                data=data or None,
                headers={"Content-Type": "application/octet-stream"} if data else None,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as exc:
            raise ModelServerError(
                f"the model server at {self.url} is not reachable ({exc})"
            ) from exc
        if resp.status_code >= 400 and resp.status_code not in (400, 422):
            raise ModelServerError(f"the model server at {self.url} answered {resp.status_code}")
        try:
            answer = resp.json()
        except ValueError as exc:
            raise ModelServerError(f"the model server at {self.url} sent no JSON") from exc
        if not isinstance(answer, dict):
            raise ModelServerError(f"the model server at {self.url} sent {type(answer).__name__}")
        return answer

    def health(self) -> dict[str, Any]:
        """What the server serves (``model_id``, ``class_names``); raises ModelServerError."""
        # Short: the app asks this at start-up and falls back to its own model.
        return self._request("/health", timeout=5.0)

    def diagnose(
        self,
        data: bytes,
        filename: str = "",
        method: str = "gradcam",
        class_index: int | None = None,
    ) -> tuple[GateVerdict | None, Diagnosis, str]:
        """``(gate verdict, diagnosis, image sha256)`` computed by the server."""
        query = {"method": method, "filename": filename}
        if class_index is not None:
            query["class_index"] = str(int(class_index))
        with timed("remote"):
            answer = self._request("/analyse", data or b" ", query)
        if "error" in answer:
            err = answer["error"]
            message = str(err.get("message", "the request could not be answered"))
            if err.get("type") == "ImageError":
                raise ImageError(message)
            if err.get("type") == "ValueError":
                raise ValueError(message)  # e.g. an unknown heatmap method or class
            raise ModelServerError(f"the model server failed: {err.get('message', err)}")
        try:
            gate = build(GateVerdict, answer["gate"])
            return gate, build(Diagnosis, answer["diagnosis"]), str(answer["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelServerError(f"the model server's answer is incomplete ({exc})") from exc

    def score(self, name: str, data: bytes, with_focus: bool = False) -> list[BatchRow]:
        """The Batch page's rows of one upload (a zip: one per member), computed by the server."""
        query = {"name": name, "focus": "1" if with_focus else "0"}
        answer = self._request("/score", data or b" ", query)
        try:
            return [build(BatchRow, r) for r in answer["rows"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelServerError(f"the model server's answer is incomplete ({exc})") from exc

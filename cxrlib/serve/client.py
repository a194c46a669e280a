"""The model server's client: the in-process pipeline's answers, computed by the server.

:class:`RemoteAnalyser` sends image bytes to ``python -m cxrlib.serve`` and returns the
input gate's verdict and the diagnosis; as ``Models.remote`` it is how
:func:`cxrlib.infer.pipeline.diagnose_image` reaches the server. ``requests`` talks HTTP;
no Ray, no TensorFlow at import.

Errors: a bad image raises :class:`cxrlib.core.errors.ImageError` (as in process);
a server that is down, times out or answers nonsense raises
:class:`cxrlib.core.errors.ModelServerError`.
"""

from __future__ import annotations

from typing import Any

import requests

from cxrlib.core.errors import ImageError, ModelServerError
from cxrlib.core.timings import timed
from cxrlib.infer.pipeline import Diagnosis, GateVerdict
from cxrlib.predict.rows import BatchRow
from cxrlib.serve.codec import build

TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 5.0


class RemoteAnalyser:
    """A client of one model server.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000`` (``$CXR_MODEL_SERVER``).
        timeout: Seconds to wait for one answer.
    """

    def __init__(self, url: str, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(
        self,
        path: str,
        data: bytes | None = None,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            resp = requests.request(
                "POST" if data else "GET",
                self.url + path,
                params=params,
                data=data,
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
        return self._request("/health", timeout=HEALTH_TIMEOUT_S)

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
            answer = self._request("/analyse", data or b" ", params=query)
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

    def score(
        self, name: str, data: bytes, with_focus: bool = False
    ) -> tuple[list[BatchRow], bool]:
        """The Batch page's rows of one upload (a zip: one per member) and whether they
        have a lung focus, computed by the server (raises ModelServerError)."""
        query = {"name": name, "focus": "1" if with_focus else "0"}
        answer = self._request("/score", data or b" ", params=query)
        try:
            rows = [build(BatchRow, r) for r in answer["rows"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelServerError(f"the model server's answer is incomplete ({exc})") from exc
        return rows, bool(answer.get("focus"))

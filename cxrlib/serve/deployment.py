"""The Ray Serve deployment: one shared model behind HTTP, requests batched (``@serve.batch``).

Routes (under the application's route prefix, ``/`` by default):

* ``POST /analyse?method=gradcam&class_index=2&filename=x.png`` with the image
  bytes as the body: ``{"sha256", "gate", "diagnosis"}`` as :mod:`cxrlib.serve.codec`
  encodes them, or ``{"error": {"type", "message"}}`` (HTTP 422) for a bad image;
* ``POST /score?name=x.zip&focus=1`` with one upload (an image or a zip) as the
  body: ``{"rows": [...], "focus"}``, the Batch page's rows of
  :func:`cxrlib.predict.local.score_items` (unreadable files are error rows);
* ``GET /health``: ``{"ok": true, "model_id", "class_names", ...}``.

Each replica holds the classifier, its heatmap code, the lung segmenter and the
input gate (:class:`cxrlib.serve.service.DiagnosisService`); concurrent requests
are gathered into batches of up to ``max_batch_size`` that the replica answers
together in a worker thread, so its event loop keeps accepting requests meanwhile.

``ray`` is imported inside :func:`build_app`: it is an optional heavy dependency
that the client and the app never import.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cxrlib.core import settings
from cxrlib.serve.service import AnalyseRequest, DiagnosisService

MAX_BATCH_SIZE = 8
BATCH_WAIT_S = 0.02


def parse_request(query: dict[str, str], body: bytes) -> AnalyseRequest:
    """An :class:`AnalyseRequest` from the query parameters and body; raises ValueError."""
    raw = query.get("class_index", "")
    return AnalyseRequest(
        data=body,
        filename=query.get("filename", ""),
        method=query.get("method", "gradcam"),
        class_index=int(raw) if raw not in ("", "none", "None") else None,
    )


def build_app(
    model: str | None = None,
    segmenter: str | None = None,
    gate: str | None = None,
    replicas: int = 1,
    cpus_per_replica: float = 1.0,
    max_batch_size: int = MAX_BATCH_SIZE,
) -> Any:
    """The bound Serve application (``serve.run(build_app(...))``).

    Paths not given are :mod:`cxrlib.core.settings`'s, read here in the starting process
    (``$CXR_MODEL``, ``$CXR_SEGMENTER``, ``$CXR_OOD``) and sent to every replica.
    """
    from ray import serve  # optional heavy dependency (module docstring)
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    model = str(settings.resolve(model) if model else settings.model_path())
    segmenter = str(settings.resolve(segmenter) if segmenter else settings.segmenter_path())
    gate = str(settings.resolve(gate) if gate else settings.gate_path())

    @serve.deployment(
        name="cxr_diagnosis",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=4 * max_batch_size,
    )
    class DiagnosisDeployment:
        """One replica: the models, a batched analyse, and the HTTP routes."""

        def __init__(self) -> None:
            self.service = DiagnosisService(model, segmenter, gate)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=BATCH_WAIT_S)
        async def analyse(self, requests: list[AnalyseRequest]) -> list[dict[str, Any]]:
            return await asyncio.to_thread(self.service.answer_many, requests)

        async def __call__(self, request: Request) -> JSONResponse:
            path = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            if request.method == "GET" and path == "health":
                return JSONResponse(self.service.health())
            if request.method == "POST" and path == "score":
                query = dict(request.query_params)
                rows = await asyncio.to_thread(
                    self.service.score,
                    query.get("name", ""),
                    await request.body(),
                    query.get("focus", "") in ("1", "true"),
                )
                return JSONResponse(rows)
            if request.method != "POST" or path != "analyse":
                return JSONResponse({"error": {"type": "NotFound", "message": path}}, 404)
            try:
                req = parse_request(dict(request.query_params), await request.body())
            except ValueError as exc:
                return JSONResponse({"error": {"type": "ValueError", "message": str(exc)}}, 400)
            answer = await self.analyse(req)
            return JSONResponse(answer, 422 if "error" in answer else 200)

    return DiagnosisDeployment.bind()  # type: ignore[attr-defined]

"""The model server: one shared model on Ray Serve, concurrent requests batched.

* ``POST /analyse?method=gradcam&class_index=2&filename=x.png`` (body: the image): the encoded
  ``{"sha256", "gate", "diagnosis"}``, or ``{"error": {"type", "message"}}`` (HTTP 422);
* ``POST /score?name=x.zip&focus=1`` (body: one upload): ``{"rows": [...], "focus"}``;
* ``GET /health``: ``{"ok": true, "model_id", "class_names", ...}``.

Analyse requests are batched (``@serve.batch``), their images segmented in one call, and
answered in a worker thread, so that the replica's event loop keeps accepting requests."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from cxrlib.core import settings
from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import CxrError
from cxrlib.infer.pipeline import Decoded, analyse, decode, diagnose_image
from cxrlib.predict.ray_engine import init_ray
from cxrlib.predict.rows import load_models, score_items
from cxrlib.serve.client import encode

Query = dict[str, str]


@serve.deployment(name="cxr_diagnosis")
class DiagnosisServer:
    """One replica: the models, a batched analyse, and the HTTP routes."""

    def __init__(self, model: str, segmenter: str, gate: str, max_batch_size: int) -> None:
        from cxrlib.infer.runtime import device_description  # imports TensorFlow

        self.models = load_models(model, segmenter, gate)
        self.cache = LRUCache(max_items=128)
        self.device = device_description()
        self.analyse.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]
        # Traces the compiled model paths now, not at the first request.
        synthetic = np.tile(np.linspace(0, 255, 256), (256, 1)).astype(np.uint8)
        diagnose_image(self.models, Decoded("", synthetic))

    def health(self) -> dict[str, Any]:
        """What this replica serves: what the pages show about the model, in plain JSON."""
        clf = self.models.classifier
        assert clf is not None
        return {
            "ok": True,
            "model_id": self.models.model_id,
            "class_names": list(clf.class_names),
            "model_path": str(self.models.model_path),
            "weights_sha256": clf.weights_sha256,
            "meta": encode(clf.meta),
            "segmenter": self.models.segmenter is not None,
            "gate": self.models.gate is not None,
            "device": self.device,
        }

    def answer(self, data: bytes, query: Query) -> dict[str, Any]:
        """The encoded gate verdict and diagnosis of one request, or its typed error."""
        try:
            m, name = query.get("method", "gradcam"), query.get("filename", "")
            a = analyse(data, self.models, name, m, class_index(query), self.cache)
        except (CxrError, ValueError) as exc:
            return {"error": {"type": type(exc).__name__, "message": str(exc)}}
        return {
            "sha256": a.decoded.sha256,
            "gate": encode(a.gate),
            "diagnosis": encode(a.diagnosis),
        }

    def answer_many(self, requests: list[tuple[bytes, Query]]) -> list[dict[str, Any]]:
        """The answers of a batch of requests, their lung frames found in one call first."""
        clf = self.models.classifier
        decoded = [decode(data, q.get("filename", ""), cache=self.cache) for data, q in requests]
        grays = [d.pixels for d in decoded if d.pixels is not None]
        if clf is not None and grays and clf.preprocess.lung_crop:
            clf.crop_boxes(grays)
        return [self.answer(data, query) for data, query in requests]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def analyse(self, requests: list[tuple[bytes, Query]]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.answer_many, requests)

    def score(self, data: bytes, query: Query) -> dict[str, Any]:
        """The Batch page's rows of one upload (a zip gives one per member), encoded."""
        focus = query.get("focus", "") in ("1", "true")
        rows = score_items([(query.get("name", ""), data)], self.models, focus)
        return {"rows": encode(rows), "focus": focus}

    async def __call__(self, request: Request) -> JSONResponse:
        route = request.method, request.url.path.rstrip("/").rsplit("/", 1)[-1]
        query = dict(request.query_params)
        if route == ("GET", "health"):
            return JSONResponse(self.health())
        if route == ("POST", "score"):
            return JSONResponse(await asyncio.to_thread(self.score, await request.body(), query))
        if route != ("POST", "analyse"):
            return JSONResponse({"error": {"type": "NotFound", "message": route[1]}}, 404)
        try:
            class_index(query)
        except ValueError as exc:  # a malformed request, not a bad image
            return JSONResponse({"error": {"type": "ValueError", "message": str(exc)}}, 400)
        answer = await self.analyse((await request.body(), query))
        return JSONResponse(answer, 422 if "error" in answer else 200)


def class_index(query: Query) -> int | None:
    """The ``class_index`` an /analyse request names (None: the predicted class)."""
    raw = query.get("class_index", "")
    return int(raw) if raw not in ("", "none", "None") else None


def start(
    port: int = 8000,
    host: str = "127.0.0.1",
    num_cpus: int | None = None,
    ray_address: str | None = None,
    model: str | None = None,
    replicas: int = 1,
    max_batch_size: int = 8,
) -> str:
    """Starts Ray (local, or joins ``ray_address``) and Serve; returns the URL once the replicas
    have loaded their models (paths read here, sent to every replica)."""
    init_ray(ray_address, num_cpus)
    serve.start(http_options={"host": host, "port": port})
    app = DiagnosisServer.options(  # type: ignore[attr-defined]
        num_replicas=replicas,
        ray_actor_options={"num_cpus": 1.0},
        max_ongoing_requests=4 * max_batch_size,
    ).bind(
        str(settings.resolve(model) if model else settings.model_path()),
        str(settings.segmenter_path()),
        str(settings.gate_path()),
        max_batch_size,
    )
    serve.run(app, name="cxr", route_prefix="/")
    return f"http://{host}:{port}"


def stop() -> None:
    """Shuts Serve and this process's Ray down (a no-op when they are not running)."""
    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()

"""Starting and stopping the model server on a local Ray (or an existing cluster).

``ray`` is imported inside the functions: it is an optional heavy dependency.
"""

from __future__ import annotations

from typing import Any

from cxrlib.predict.ray_engine import init_ray
from cxrlib.serve.deployment import build_app

APP_NAME = "cxr"
DEFAULT_PORT = 8000


def start(
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    num_cpus: int | None = None,
    address: str | None = None,
    **app_options: Any,
) -> str:
    """Starts Ray (local, ``num_cpus``; or joins ``address``) and Serve; returns the URL.

    Blocks until the replicas have loaded their models. ``app_options`` go to
    :func:`cxrlib.serve.deployment.build_app`.
    """
    from ray import serve  # optional heavy dependency

    init_ray(address, num_cpus)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(**app_options), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def stop() -> None:
    """Shuts Serve and this process's Ray down (a no-op when they are not running)."""
    import ray  # optional heavy dependency
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()

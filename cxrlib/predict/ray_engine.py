"""The Ray Data engine: the same rows as the local engine, scored by a pool of Ray actors.

The listed files (:class:`cxrlib.predict.inputs.InputRef`, paths only) become a Ray
dataset; ``map_batches(ScoreBatch, compute=ActorPoolStrategy(size=workers))`` gives
each worker one actor that loads the models once and scores a batch of files per
call (the accepted images in one classifier call, :class:`cxrlib.predict.rows.Scorer`).
Unreadable files come back as rows with ``error`` set, as locally.

By default a local Ray is started for the job (all CPUs, no dashboard) and shut
down after it; with ``address`` (``--ray-address`` or ``$RAY_ADDRESS``) the job runs
on that cluster, whose nodes must see the input files, the models and this checkout
at the same paths (a shared filesystem or a common image).

``ray`` is imported inside functions: it is an optional heavy dependency that the app
and the local engine never need.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from cxrlib.core.settings import ENV_VARS, ROOT
from cxrlib.predict.inputs import InputRef
from cxrlib.predict.output import arrow_table
from cxrlib.predict.rows import load_scorer

#: Files per actor call (one classifier call).
BATCH_SIZE = 16
INDEX = "index"


def limit_threads(threads: int) -> None:
    """Caps TensorFlow's thread pools, so that actors sharing a machine do not fight."""
    if threads <= 0:
        return
    import tensorflow as tf  # the actor's models need it anyway

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


class ScoreBatch:
    """A Ray Data actor: loads the models once, then scores one batch of files per call."""

    def __init__(self, model: str, gate: bool = True, focus: bool = False, threads: int = 0):
        limit_threads(threads)
        self.scorer = load_scorer(model, gate, focus)
        self.class_names = self.scorer.class_names

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """A batch of :meth:`InputRef.fields` rows -> a ``pyarrow.Table`` of output rows."""
        import pyarrow as pa  # installed with ray[data]

        refs = [
            InputRef(str(n), str(p), str(m), str(e))
            for n, p, m, e in zip(batch["name"], batch["path"], batch["member"], batch["error"])
        ]
        rows = self.scorer.score([(r.name, r.load()) for r in refs])
        table = arrow_table([r.record(self.class_names) for r in rows], self.class_names)
        return table.append_column(INDEX, pa.array(batch[INDEX].astype(np.int64)))


def runtime_env() -> dict[str, Any]:
    """Workers find this checkout and see the same ``CXR_*`` settings as the driver."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env |= {k: os.environ[k] for k in ENV_VARS if os.environ.get(k)}
    return {"env_vars": env}


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connects to ``address``, or starts a local Ray of ``num_cpus`` (default: all CPUs).

    Returns:
        False when Ray was already initialised in this process (it is used as it is).
    """
    import logging

    import ray  # optional heavy dependency (module docstring)

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, runtime_env=runtime_env(), logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            runtime_env=runtime_env(),
            logging_level=logging.WARNING,
        )
    return True


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """:func:`init_ray` for a job; a Ray started here is shut down on exit, one found is left."""
    import ray  # see the module docstring

    started = init_ray(address, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def default_workers(cpus_per_worker: float) -> int:
    """As many workers as the cluster's CPUs hold (at least one)."""
    import ray  # see the module docstring

    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))


def score_dataset(
    refs: Sequence[InputRef],
    model: str,
    gate: bool = True,
    focus: bool = False,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    batch_size: int = BATCH_SIZE,
) -> Any:
    """The lazy Ray dataset of output rows (with an ``index`` column: the input order).

    Call inside :func:`ray_session`. ``workers`` actors (default
    :func:`default_workers`) each reserve ``cpus_per_worker`` CPUs and cap
    TensorFlow to as many threads (at least one).
    """
    import ray  # see the module docstring

    workers = workers or default_workers(cpus_per_worker)
    items = [{INDEX: i, **r.fields()} for i, r in enumerate(refs)]
    # Enough blocks for every worker to get some, but no block smaller than needed.
    blocks = max(1, min(len(items), max(-(-len(items) // batch_size), 2 * workers)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    return ds.map_batches(
        ScoreBatch,
        fn_constructor_kwargs={
            "model": model,
            "gate": gate,
            "focus": focus,
            "threads": max(1, round(cpus_per_worker)),
        },
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=cpus_per_worker,
    )


def collect(ds: Any) -> list[dict[str, Any]]:
    """The dataset's rows as records in input order (the ``index`` column dropped)."""
    rows = sorted(ds.take_all(), key=lambda r: r[INDEX])
    return [{k: _plain(v) for k, v in r.items() if k != INDEX} for r in rows]


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value the local engine writes (NaN stays NaN)."""
    return value.item() if isinstance(value, np.generic) else value


def class_names_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """The class names behind the ``p_<class>`` columns of output records."""
    return [k[2:] for k in records[0] if k.startswith("p_")] if records else []

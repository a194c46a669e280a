"""The Ray Data engine: the local engine's rows, scored by a pool of :class:`ScoreBatch` actors.

A cluster must see the input files, the models and this checkout at the same paths. ``ray`` is
imported inside functions: the app and the local engine never need it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from cxrlib.core.settings import ENV_VARS, ROOT, SECRET_ENV_VARS
from cxrlib.predict.inputs import InputRef
from cxrlib.predict.rows import arrow_table, load_models, score_file


class ScoreBatch:
    """A Ray Data actor: loads the models once, then scores one batch of files per call
    (``threads`` caps TensorFlow's pools, so that actors sharing a machine do not fight)."""

    def __init__(self, model: str, gate: bool, focus: bool, threads: int):
        import tensorflow as tf  # the models need it anyway

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.models = load_models(model, with_gate=gate, with_segmenter=focus)
        self.focus = focus

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """A batch of :class:`InputRef` rows -> a ``pyarrow.Table`` of output rows."""
        assert self.models.classifier is not None
        names = self.models.classifier.class_names
        columns = zip(batch["name"], batch["path"], batch["member"], batch["error"])
        refs = [InputRef(*map(str, ref)) for ref in columns]
        rows = [score_file(self.models, r.name, r.load(), self.focus) for r in refs]
        return arrow_table([r.record(names) for r in rows], names)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connects to ``address``, or starts a local Ray of ``num_cpus`` (default: all CPUs),
    whose workers find this checkout and the driver's ``CXR_*`` settings; False when Ray was
    already initialised in this process (it is used as it is)."""
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env |= {k: os.environ[k] for k in ENV_VARS if os.environ.get(k) and k not in SECRET_ENV_VARS}
    local: dict[str, Any] = (
        {} if address else {"num_cpus": num_cpus or os.cpu_count(), "include_dashboard": False}
    )
    ray.init(address, runtime_env={"env_vars": env}, logging_level=logging.WARNING, **local)
    return True


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """:func:`init_ray` for a job; a Ray started here is shut down on exit, one found is left."""
    import ray

    started = init_ray(address, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def score_dataset(
    refs: Sequence[InputRef],
    model: str,
    gate: bool = True,
    focus: bool = False,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    batch_size: int = 16,
) -> Any:
    """The lazy Ray dataset of output rows, in input order (inside :func:`ray_session`):
    ``workers`` actors (default: as many as the CPUs hold) of ``cpus_per_worker`` CPUs each."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1)
    workers = workers or max(1, int(cpus // cpus_per_worker))
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    items = [vars(r) for r in refs]
    # Enough blocks for every worker to get some, but no block smaller than needed.
    blocks = max(1, min(len(items), max(-(-len(items) // batch_size), 2 * workers)))
    return ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        ScoreBatch,
        fn_constructor_args=(model, gate, focus, max(1, round(cpus_per_worker))),
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=cpus_per_worker,
    )


def collect(ds: Any) -> list[dict[str, Any]]:
    """The dataset's rows as the local engine's records (NumPy scalars as Python values)."""
    rows = ds.take_all()
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in rows]


def class_names_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """The class names behind the ``p_<class>`` columns of output records."""
    return [k[2:] for k in records[0] if k.startswith("p_")] if records else []

"""The app's models: loaded once per process, in the background, without failing. Nothing
here imports TensorFlow at import time: the app's first page must not wait for it."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlib.app.model_files import model_version
from cxrlib.core.errors import ModelServerError
from cxrlib.core.settings import gate_path, model_path, model_server, resolve, segmenter_path
from cxrlib.infer.gate import load_gate
from cxrlib.infer.pipeline import Models

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import LungSegmenter
    from cxrlib.serve.client import RemoteAnalyser

PathLike = str | os.PathLike[str]


@dataclass
class Resources(Models):
    """The loaded models (:class:`~cxrlib.infer.pipeline.Models`), the device they run on,
    and with ``remote`` what the model server serves (its health answer)."""

    device: str = "CPU"
    remote: RemoteAnalyser | None = None
    served: dict[str, Any] = field(default_factory=dict)

    @property
    def can_diagnose(self) -> bool:
        """By the model server, or by a loaded classifier and explainer."""
        return self.remote is not None or (
            self.classifier is not None and self.explainer is not None
        )

    @property
    def has_segmenter(self) -> bool:
        """A lung segmenter is there (here or on the server)."""
        if self.remote is not None:
            return bool(self.served.get("segmenter"))
        return self.segmenter is not None

    @property
    def weights_sha256(self) -> str:
        if self.remote is not None:
            return str(self.served.get("weights_sha256") or "")
        return "" if self.classifier is None else str(self.classifier.weights_sha256 or "")

    @property
    def model_version(self) -> str:
        return model_version(self.model_meta, self.model_path or self.served.get("model_path"))

    @property
    def model_meta(self) -> dict[str, Any]:
        """The classifier's JSON ({} without one)."""
        if self.remote is not None:
            return dict(self.served.get("meta") or {})
        return {} if self.classifier is None else dict(self.classifier.meta or {})


def _attempt(res: Resources, name: str, load: Callable[[], Any], prefix: str = "") -> Any:
    """``load()``, or None with its message in ``res.errors[name]`` (never raises)."""
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
        res.errors[name] = f"{prefix}{exc}"
        return None


def _segmenter(path: Path) -> LungSegmenter:
    from cxrlib.infer.lungs import load_segmenter  # imports TensorFlow

    return load_segmenter(path)


def _classifier(path: Path, segmenter: LungSegmenter | None) -> Classifier:
    from cxrlib.infer.classifier import load_classifier  # imports TensorFlow

    return load_classifier(path, segmenter=segmenter)


def _explainer(classifier: Classifier) -> Explainer:
    from cxrlib.infer.explain import Explainer  # imports TensorFlow

    return Explainer(classifier)


def load_resources(model: PathLike | None = None, segmenter: PathLike | None = None) -> Resources:
    """Loads the classifier, explainer, segmenter and input gate (a component that failed is
    None, with its reason in ``errors``); never raises. With ``$CXR_MODEL_SERVER`` set, the
    models of that server instead, or the ones here when it cannot be reached."""
    fallback = ""
    if server := model_server():
        try:
            return remote_resources(server)
        except ModelServerError as exc:
            fallback = f"{exc}. Using the model in this process instead (start the server with `make serve`)."
    model_file = resolve(model) if model else model_path()
    segmenter_file = resolve(segmenter) if segmenter else segmenter_path()
    res = Resources(model_path=model_file, segmenter_path=segmenter_file, gate_path=gate_path())
    try:
        from cxrlib.infer.runtime import device_description  # imports TensorFlow

        res.device = device_description()
    except Exception as exc:  # noqa: BLE001
        res.errors["device"] = f"could not query TensorFlow devices: {exc}"
    res.segmenter = _attempt(res, "segmenter", lambda: _segmenter(segmenter_file))
    res.classifier = _attempt(res, "classifier", lambda: _classifier(model_file, res.segmenter))
    if (clf := res.classifier) is not None:
        res.explainer = _attempt(
            res, "explainer", lambda: _explainer(clf), "heatmaps unavailable: "
        )
    res.gate = _attempt(res, "gate", lambda: load_gate(gate_path()).assess)
    _trace(res)
    if fallback:
        res.errors["model server"] = fallback
    return res


def remote_resources(url: str) -> Resources:
    """The models of the model server at ``url``: a client only, no TensorFlow. The metrics
    file is read from this checkout's copy of the served model, when it has one.

    Raises:
        ModelServerError: The server is not reachable.
    """
    from cxrlib.serve.client import RemoteAnalyser  # the client only: no Ray, no TensorFlow

    client = RemoteAnalyser(url)
    health = client.health()
    # This checkout's file of the served model (same name), if it has one.
    served_path = str(health.get("model_path") or "")
    local = model_path().parent / Path(served_path).name
    res = Resources(
        model_path=local if served_path and local.exists() else None,
        remote=client,
        served=health,
        device=f"model server {client.url} ({health.get('device', '?')})",
    )
    if not health.get("segmenter"):
        res.errors["segmenter"] = f"the model server at {client.url} has no lung segmenter"
    if not health.get("gate"):
        res.errors["gate"] = f"the model server at {client.url} has no input gate"
    return res


def _trace(res: Resources) -> None:
    """Runs the compiled model paths once, so that TensorFlow traces them at load time, not
    on the first upload."""
    synthetic = np.tile(np.linspace(0, 255, 256, dtype=np.float32), (256, 1)).astype(np.uint8)
    try:
        if res.classifier is not None and res.explainer is not None:
            from cxrlib.infer.pipeline import diagnose  # imports TensorFlow

            diagnose(res.classifier, synthetic, res.explainer, None, "gradcam")
            res.classifier.predict([synthetic])
        if res.segmenter is not None:
            res.segmenter.segment(synthetic)
    except Exception as exc:  # noqa: BLE001 - a failure here shows up again on use
        res.errors.setdefault("warm-up", str(exc))


@dataclass
class _Loading:
    """One set of resources: loaded by the first caller, the others wait."""

    model: str
    segmenter: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    resources: Resources | None = None
    warming: bool = False

    def get(self) -> Resources:
        with self.lock:
            if self.resources is None:
                self.resources = load_resources(self.model, self.segmenter)
            return self.resources


@functools.cache
def _loading(model: str, segmenter: str, gate: str, server: str) -> _Loading:
    """The one :class:`_Loading` of these paths and model server."""
    return _Loading(model, segmenter)


def _of(model: PathLike | None, segmenter: PathLike | None) -> _Loading:
    return _loading(
        str(resolve(model) if model else model_path()),
        str(resolve(segmenter) if segmenter else segmenter_path()),
        str(gate_path()),
        model_server(),
    )


def get_resources(model: PathLike | None = None, segmenter: PathLike | None = None) -> Resources:
    """:func:`load_resources`, once per (model, segmenter) per process (thread-safe)."""
    return _of(model, segmenter).get()


def resources_ready(
    model: PathLike | None = None, segmenter: PathLike | None = None
) -> Resources | None:
    """The loaded resources if :func:`get_resources` has finished for these paths, else None."""
    return _of(model, segmenter).resources


def warm_up(model: PathLike | None = None, segmenter: PathLike | None = None) -> None:
    """Starts loading the models in a daemon thread, once per process and paths, so that
    TensorFlow loads while the user is still choosing an image."""
    loading = _of(model, segmenter)
    if not loading.warming:
        loading.warming = True
        threading.Thread(target=loading.get, name="cxr-warm-up", daemon=True).start()

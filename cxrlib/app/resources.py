"""The app's models: loading them once per process, in the background, without failing.

Nothing here imports TensorFlow at module import time: the app's first page
must appear before the slow TensorFlow import, so the models are loaded lazily
(:func:`get_resources`) or in a background thread (:func:`warm_up`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlib.app.model_files import model_version
from cxrlib.core.errors import ModelServerError
from cxrlib.core.settings import gate_path, model_path, model_server, resolve, segmenter_path
from cxrlib.infer.pipeline import Models

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import LungSegmenter
    from cxrlib.serve.client import RemoteAnalyser

PathLike = str | os.PathLike[str]


@dataclass
class Resources(Models):
    """The loaded models (see :class:`~cxrlib.infer.pipeline.Models`) and how loading went.

    Attributes:
        device: ``"CPU"`` or ``"GPU: name"``.
        seconds: Loading time.
        served: What the model server serves (its health answer), with ``remote``.
    """

    device: str = "CPU"
    seconds: float = 0.0
    remote: RemoteAnalyser | None = None
    served: dict[str, Any] = field(default_factory=dict)

    @property
    def can_diagnose(self) -> bool:
        """A diagnosis can be made: by the model server, or by a loaded classifier and explainer."""
        return self.remote is not None or (
            self.classifier is not None and self.explainer is not None
        )

    @property
    def has_segmenter(self) -> bool:
        """A lung segmenter is there (here or on the server): lung outline and lung focus."""
        if self.remote is not None:
            return bool(self.served.get("segmenter"))
        return self.segmenter is not None

    @property
    def lung_mask_input(self) -> bool:
        """The classifier sees only the lungs (everything else greyed before it looks)."""
        if self.remote is not None:
            return bool(self.served.get("lung_mask"))
        return self.classifier is not None and bool(self.classifier.preprocess.lung_mask)

    @property
    def weights_sha256(self) -> str:
        """The classifier's weights hash ("" when unknown)."""
        if self.remote is not None:
            return str(self.served.get("weights_sha256") or "")
        return "" if self.classifier is None else str(self.classifier.weights_sha256 or "")

    @property
    def model_version(self) -> str:
        """The classifier's short version (:func:`cxrlib.app.model_files.model_version`)."""
        path = self.model_path or self.served.get("model_path") or None
        return model_version(self.model_meta, path)

    @property
    def model_meta(self) -> dict[str, Any]:
        """The classifier's metadata (its JSON sidecar; {} without one)."""
        if self.remote is not None:
            return dict(self.served.get("meta") or {})
        return {} if self.classifier is None else dict(self.classifier.meta or {})


def _load_gate() -> Callable[..., Any]:
    """The input gate of :mod:`cxrlib.infer.gate` (raises when its fitted file is missing)."""
    from cxrlib.infer import gate as ood

    return ood.load_gate(gate_path()).assess


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

    # A lung-crop classifier frames its input with the same segmenter the page uses.
    return load_classifier(path, segmenter=segmenter)


def _explainer(classifier: Classifier) -> Explainer:
    from cxrlib.infer.explain import Explainer  # imports TensorFlow

    return Explainer(classifier)


def _load_models(res: Resources, model: Path, segmenter: Path, gate: bool) -> None:
    """Fills ``res`` with the segmenter, classifier, explainer and (optionally) the gate."""
    res.segmenter = _attempt(res, "segmenter", lambda: _segmenter(segmenter))
    res.classifier = _attempt(res, "classifier", lambda: _classifier(model, res.segmenter))
    if res.classifier is not None:
        clf = res.classifier
        res.explainer = _attempt(
            res, "explainer", lambda: _explainer(clf), "heatmaps unavailable: "
        )
    if gate:
        res.gate = _attempt(res, "gate", _load_gate)


def load_resources(
    model: PathLike | None = None, segmenter: PathLike | None = None, gate: bool = True
) -> Resources:
    """Loads the classifier, explainer, segmenter and input gate; never raises.

    Args:
        model: Classifier path (default :func:`cxrlib.core.settings.model_path`).
        segmenter: Segmenter path (default :func:`cxrlib.core.settings.segmenter_path`).
        gate: Load the input gate.

    Returns:
        :class:`Resources`; a component that failed is None with its reason in ``errors``.
    """
    server = model_server()
    fallback = ""
    if server:
        try:
            return remote_resources(server)
        except ModelServerError as exc:
            fallback = f"{exc}. Using the model in this process instead (start the server with `make serve`)."
    t0 = time.perf_counter()
    model_file = resolve(model) if model else model_path()
    segmenter_file = resolve(segmenter) if segmenter else segmenter_path()
    res = Resources(
        model_path=model_file,
        segmenter_path=segmenter_file,
        gate_path=gate_path() if gate else None,
    )
    try:
        from cxrlib.infer.runtime import device_description  # imports TensorFlow

        res.device = device_description()
    except Exception as exc:  # noqa: BLE001
        res.device = "CPU"
        res.errors["device"] = f"could not query TensorFlow devices: {exc}"
    _load_models(res, model_file, segmenter_file, gate)
    _trace(res)
    if fallback:
        res.errors["model server"] = fallback
    res.seconds = time.perf_counter() - t0
    return res


def remote_resources(url: str) -> Resources:
    """The models of the model server at ``url`` (``$CXR_MODEL_SERVER``), without TensorFlow.

    The app then holds only a client (:class:`cxrlib.serve.client.RemoteAnalyser`):
    :func:`cxrlib.infer.pipeline.diagnose_image` and :mod:`cxrlib.app.batch` send the
    upload's bytes to the server. The classifier's metrics file (track record, randomisation note) is
    read from this checkout's copy of the served model, when it has one.

    Raises:
        ModelServerError: The server is not reachable (the caller falls back to the
            model in this process).
    """
    from cxrlib.serve.client import RemoteAnalyser  # the client only: no Ray, no TensorFlow

    t0 = time.perf_counter()
    client = RemoteAnalyser(url)
    health = client.health()
    res = Resources(
        model_path=_local_copy(str(health.get("model_path") or "")),
        remote=client,
        served=health,
        device=f"model server {client.url} ({health.get('device', '?')})",
    )
    if not health.get("segmenter"):
        res.errors["segmenter"] = f"the model server at {client.url} has no lung segmenter"
    if not health.get("gate"):
        res.errors["gate"] = f"the model server at {client.url} has no input gate"
    res.seconds = time.perf_counter() - t0
    return res


def _local_copy(served_path: str) -> Path | None:
    """This checkout's file of the model the server serves (same name), or None."""
    if not served_path:
        return None
    name = Path(served_path).name
    for candidate in (model_path(), model_path().parent / name):
        if candidate.name == name and candidate.exists():
            return candidate
    return None


def _trace(res: Resources) -> None:
    """Runs the compiled model paths once on a synthetic image.

    TensorFlow traces a ``tf.function`` on its first call (seconds) and
    autograph writes generated source code to the temp folder while doing so.
    Doing it here, at load time, keeps both away from the first upload.
    """
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


_LOADED: dict[tuple[str, str, str, str], Resources] = {}
_LOAD_LOCK = threading.Lock()
_WARM: set[tuple[str, str, str, str]] = set()
_WARM_LOCK = threading.Lock()


def _key(model: PathLike | None, segmenter: PathLike | None) -> tuple[str, str, str, str]:
    """The (classifier, segmenter, gate) paths and the model server that identify one set
    of resources."""
    return (
        str(resolve(model) if model else model_path()),
        str(resolve(segmenter) if segmenter else segmenter_path()),
        str(gate_path()),
        model_server() or "",
    )


def get_resources(model: PathLike | None = None, segmenter: PathLike | None = None) -> Resources:
    """:func:`load_resources`, once per (model, segmenter) per process (thread-safe)."""
    key = _key(model, segmenter)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_resources(key[0], key[1])
        return _LOADED[key]


def resources_ready(
    model: PathLike | None = None, segmenter: PathLike | None = None
) -> Resources | None:
    """The loaded resources if :func:`get_resources` has finished for these paths, else None."""
    return _LOADED.get(_key(model, segmenter))


def warm_up(model: PathLike | None = None, segmenter: PathLike | None = None) -> bool:
    """Starts loading the models in a daemon thread, once per process and paths.

    The app calls this on its first run, so TensorFlow is imported while the
    user is still choosing an image.

    Returns:
        True when a thread was started now, False when one was started before.
    """
    key = _key(model, segmenter)
    with _WARM_LOCK:
        if key in _WARM:
            return False
        _WARM.add(key)
    threading.Thread(target=get_resources, args=key[:2], name="cxr-warm-up", daemon=True).start()
    return True

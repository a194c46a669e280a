"""What the Streamlit pages need, without Streamlit: paths, loading, caches, tables.

The pages only lay out widgets; everything they compute comes from here (or
from the modules this calls). Nothing here imports Streamlit, and nothing
here imports TensorFlow at module import time: the app's first page must
appear before the ~3 s TensorFlow import, so the model is loaded lazily
(:func:`load_resources`) or in the background (:func:`warm_up`).

Caching (the pages keep one :class:`LRUCache` per process):
    * ``("decoded", sha)``: the decoded upload (in memory only).
    * ``("gate", sha)``: the out-of-distribution verdict.
    * ``("mask", sha, segmenter)``: the lung mask.
    * ``("diagnosis", sha, model, method, class)``: probabilities, their
      test-time range and the heatmap. Only :func:`run_diagnosis` computes a
      heatmap, and it counts its calls in :data:`COUNTERS` (the tests use it
      to prove that moving a display slider computes nothing).
Display controls (opacity, colour map, outline, hottest area) only call
:func:`cxrlib.overlay.overlay` on cached arrays.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.diagnose import Diagnosis
    from cxrlib.explain import Explainer
    from cxrlib.lungs import LungSegmenter
    from cxrlib.model import Classifier

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path("models/cxr_classifier.keras")
DEFAULT_SEGMENTER = Path("models/lung_segmenter.keras")
DEFAULT_GATE = Path("models/ood.npz")
SAMPLES_DIR = ROOT / "samples"
DEFAULT_DATA_DIR = Path("../shared/cxr")
DISCLAIMER = "Research demo, not for diagnosis"
DISCLAIMER_DETAIL = (
    "CXR Lens is a research and teaching tool, not a medical device: do not use its output "
    "to make decisions about patients."
)
#: Longest side of the image the Diagnose page analyses and shows.
DISPLAY_MAX_SIDE = 1024
#: What each method is called in the app.
METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "layercam": "LayerCAM",
    "scorecam": "Faster Score-CAM",
    "smoothgrad": "SmoothGrad",
}
#: Upload types offered by the file pickers (the bytes are sniffed anyway).
UPLOAD_TYPES: tuple[str, ...] = (
    "png",
    "jpg",
    "jpeg",
    "tif",
    "tiff",
    "dcm",
    "dicom",
    "bmp",
    "gif",
    "webp",
)

#: Process-wide counters: ``heatmaps`` (calls of :func:`run_diagnosis`), ``decodes``, ...
COUNTERS: Counter[str] = Counter()
_COUNTER_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    """Adds ``n`` to :data:`COUNTERS` ``[name]`` (thread-safe)."""
    with _COUNTER_LOCK:
        COUNTERS[name] += n


# ----------------------------------------------------------------------------- paths


def resolve(path: str | os.PathLike[str]) -> Path:
    """A path as given if absolute, else relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else ROOT / p


def model_path() -> Path:
    """The classifier file: ``$CXR_MODEL`` or ``models/cxr_classifier.keras``."""
    return resolve(os.environ.get("CXR_MODEL") or DEFAULT_MODEL)


def segmenter_path() -> Path:
    """The lung segmenter file: ``$CXR_SEGMENTER`` or ``models/lung_segmenter.keras``."""
    return resolve(os.environ.get("CXR_SEGMENTER") or DEFAULT_SEGMENTER)


def data_dir() -> Path:
    """The shared CXR folder: ``$CXR_DATA`` or ``../shared/cxr`` beside the checkout."""
    return resolve(os.environ.get("CXR_DATA") or DEFAULT_DATA_DIR)


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&=")


def md_escape(text: str, limit: int = 200) -> str:
    """``text`` made inert for Streamlit markdown (shown literally, no links or markup).

    Also drops control characters and shortens very long strings (file names
    come from the user).
    """
    clean = "".join(ch for ch in str(text) if ch.isprintable())
    if len(clean) > limit:
        clean = clean[: limit - 1] + "\u2026"
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in clean)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The classifier's JSON (history, train_counts, preprocess, ...), or {}."""
    return read_json(Path(path).with_suffix(".json")) or {}


def model_metrics(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``<model>.metrics.json`` (see :mod:`cxrlib.evaluate`), or None."""
    return read_json(Path(path).with_suffix(".metrics.json"))


def model_version(meta: dict[str, Any], path: str | os.PathLike[str] | None = None) -> str:
    """A short human-readable version: name, architecture, input size, hash prefix."""
    name = Path(path).stem if path else "cxr_classifier"
    cfg = meta.get("train_config", {}) if isinstance(meta.get("train_config"), dict) else {}
    arch = cfg.get("arch", "")
    size = meta.get("input_size") or meta.get("preprocess", {}).get("size")
    sha = str(meta.get("weights_sha256", ""))[:12]
    parts = [name]
    if arch:
        parts.append(str(arch))
    if size:
        parts.append(f"{size} px")
    if sha:
        parts.append(f"sha256 {sha}")
    return " · ".join(parts)


# ----------------------------------------------------------------------------- device


def device_description() -> str:
    """``"GPU: <name>"`` when TensorFlow sees a GPU, else ``"CPU"`` (imports TensorFlow)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name") or gpus[0].name
    except Exception:  # noqa: BLE001 - details are optional
        name = gpus[0].name
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"GPU: {name}{more}"


def tensorflow_loaded() -> bool:
    """Whether TensorFlow has been imported in this process yet."""
    return "tensorflow" in sys.modules


# ----------------------------------------------------------------------------- resources


@dataclass
class Resources:
    """The loaded models; any of them may be missing (with a reason in ``errors``).

    Attributes:
        classifier: The classifier, or None.
        explainer: Its explainer, or None.
        segmenter: The lung segmenter, or None.
        gate: The OOD gate ``f(gray, colourfulness=None) -> result``, or None.
        errors: Component name -> plain message of why it is missing.
        device: ``"CPU"`` or ``"GPU: name"``.
        model_path: Where the classifier was looked for.
        segmenter_path: Where the segmenter was looked for.
        seconds: Loading time.
    """

    classifier: Classifier | None = None
    explainer: Explainer | None = None
    segmenter: LungSegmenter | None = None
    gate: Callable[..., Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    device: str = "CPU"
    model_path: Path | None = None
    segmenter_path: Path | None = None
    seconds: float = 0.0

    @property
    def model_id(self) -> str:
        """Identity of the classifier for cache keys: its weights hash (else its path) and
        what its JSON adds to them (preprocessing, temperatures, classes, test-time
        views), since the same
        weights fed another way are another model."""
        clf = self.classifier
        if clf is None:
            return ""
        views = [[v.name for v in clf.views], clf.view_temperature] if clf.views else []
        recipe = json.dumps(
            [clf.preprocess.to_dict(), clf.temperature, list(clf.class_names), *views],
            sort_keys=True,
        )
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
        return f"{clf.weights_sha256 or self.model_path}:{digest}"

    @property
    def segmenter_id(self) -> str:
        return "" if self.segmenter is None else str(self.segmenter_path)


def gate_path() -> Path:
    """The OOD gate file: ``$CXR_OOD`` or ``models/ood.npz``."""
    return resolve(os.environ.get("CXR_OOD") or DEFAULT_GATE)


def _load_gate() -> Callable[..., Any]:
    """The OOD gate of :mod:`cxrlib.ood` (raises when its fitted file is missing)."""
    from cxrlib import ood

    gate = ood.load_gate(gate_path())

    def assess(gray: np.ndarray, colourfulness: float | None = None) -> Any:
        return gate.assess(gray, colourfulness)

    return assess


def load_resources(
    model: str | os.PathLike[str] | None = None,
    segmenter: str | os.PathLike[str] | None = None,
    gate: bool = True,
) -> Resources:
    """Loads the classifier, explainer, segmenter and OOD gate; never raises.

    Args:
        model: Classifier path (default :func:`model_path`).
        segmenter: Segmenter path (default :func:`segmenter_path`).
        gate: Load the OOD gate.

    Returns:
        :class:`Resources`; a component that failed is None with its reason in ``errors``.
    """
    t0 = time.perf_counter()
    res = Resources(
        model_path=resolve(model) if model else model_path(),
        segmenter_path=resolve(segmenter) if segmenter else segmenter_path(),
    )
    try:
        res.device = device_description()
    except Exception as exc:  # noqa: BLE001
        res.device = "CPU"
        res.errors["device"] = f"could not query TensorFlow devices: {exc}"
    try:
        from cxrlib.lungs import load_segmenter

        res.segmenter = load_segmenter(res.segmenter_path)
    except Exception as exc:  # noqa: BLE001
        res.errors["segmenter"] = str(exc)
    try:
        from cxrlib.model import load_classifier

        # A lung-crop classifier frames its input with the same segmenter the page uses.
        res.classifier = load_classifier(res.model_path, segmenter=res.segmenter)
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
        res.errors["classifier"] = str(exc)
    if res.classifier is not None:
        try:
            from cxrlib.explain import Explainer

            res.explainer = Explainer(res.classifier)
        except Exception as exc:  # noqa: BLE001
            res.errors["explainer"] = f"heatmaps unavailable: {exc}"
    if gate:
        try:
            res.gate = _load_gate()
        except Exception as exc:  # noqa: BLE001
            res.errors["gate"] = str(exc)
    _trace(res)
    res.seconds = time.perf_counter() - t0
    return res


def _trace(res: Resources) -> None:
    """Runs the compiled model paths once on a synthetic image.

    TensorFlow traces a ``tf.function`` on its first call (seconds) and
    autograph writes generated source code to the temp folder while doing so.
    Doing it here, at load time, keeps both away from the first upload.
    """
    synthetic = np.tile(np.linspace(0, 255, 256, dtype=np.float32), (256, 1)).astype(np.uint8)
    try:
        if res.classifier is not None and res.explainer is not None:
            from cxrlib.diagnose import diagnose

            diagnose(res.classifier, synthetic, res.explainer, None, "gradcam")
            res.classifier.predict([synthetic])
        if res.segmenter is not None:
            res.segmenter.segment(synthetic)
    except Exception as exc:  # noqa: BLE001 - a failure here shows up again on use
        res.errors.setdefault("warm-up", str(exc))


_LOADED: dict[tuple[str, str], Resources] = {}
_LOAD_LOCK = threading.Lock()


def get_resources(
    model: str | os.PathLike[str] | None = None, segmenter: str | os.PathLike[str] | None = None
) -> Resources:
    """:func:`load_resources`, once per (model, segmenter) per process (thread-safe)."""
    key = (
        str(resolve(model) if model else model_path()),
        str(resolve(segmenter) if segmenter else segmenter_path()),
    )
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_resources(*key)
        return _LOADED[key]


def resources_ready(
    model: str | os.PathLike[str] | None = None, segmenter: str | os.PathLike[str] | None = None
) -> Resources | None:
    """The loaded resources if :func:`get_resources` has finished for these paths, else None."""
    key = (
        str(resolve(model) if model else model_path()),
        str(resolve(segmenter) if segmenter else segmenter_path()),
    )
    return _LOADED.get(key)


_WARM: set[tuple[str, str]] = set()
_WARM_LOCK = threading.Lock()


def warm_up(
    model: str | os.PathLike[str] | None = None, segmenter: str | os.PathLike[str] | None = None
) -> bool:
    """Starts loading the models in a daemon thread, once per process and paths.

    The app calls this on its first run, so TensorFlow is imported while the
    user is still choosing an image.

    Returns:
        True when a thread was started now, False when one was started before.
    """
    key = (
        str(resolve(model) if model else model_path()),
        str(resolve(segmenter) if segmenter else segmenter_path()),
    )
    with _WARM_LOCK:
        if key in _WARM:
            return False
        _WARM.add(key)
    threading.Thread(target=get_resources, args=key, name="cxr-warm-up", daemon=True).start()
    return True


# ----------------------------------------------------------------------------- cache


def _nbytes(value: Any) -> int:
    """Rough memory size of a cached value (arrays inside dataclasses and tuples)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple | list):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return sum(_nbytes(v) for v in vars(value).values())
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 64


class LRUCache:
    """A thread-safe least-recently-used cache bounded by item count and bytes.

    Args:
        max_items: Most entries kept.
        max_bytes: Most bytes (arrays) kept; the oldest entries are dropped first.
    """

    def __init__(self, max_items: int = 256, max_bytes: int = 768 * 2**20) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key][0]

    def put(self, key: Hashable, value: Any) -> None:
        size = _nbytes(value)
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            self._data[key] = (value, size)
            self._bytes += size
            while len(self._data) > 1 and (
                len(self._data) > self.max_items or self._bytes > self.max_bytes
            ):
                _, (_, old) = self._data.popitem(last=False)
                self._bytes -= old

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, computing it once (concurrent callers wait)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key][0]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._data:
                    self.hits += 1
                    return self._data[key][0]
                self.misses += 1
            try:
                value = compute()
                self.put(key, value)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


# ----------------------------------------------------------------------------- one image


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data`` (the cache key of an upload)."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Decoded:
    """A decoded upload, or why it was refused.

    Attributes:
        sha256: Digest of the uploaded bytes.
        pixels: The image the app analyses and shows (at most
            :data:`DISPLAY_MAX_SIDE` pixels per side), or None when refused.
        format: File format found in the bytes ("PNG", "DICOM", ...).
        notices: Plain sentences about the decoding (and any downscaling).
        meta: Safe technical fields only (see :class:`cxrlib.imaging.DecodedImage`).
        error: The :class:`~cxrlib.imaging.ImageError` message, or "".
    """

    sha256: str
    pixels: np.ndarray | None = None
    format: str = ""
    notices: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.pixels is not None

    @property
    def colourfulness(self) -> float | None:
        value = self.meta.get("colourfulness")
        return None if value is None else float(value)


def fit_display(gray: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """``gray`` shrunk (area interpolation) so its longer side is at most ``max_side``."""
    import cv2

    h, w = gray.shape[:2]
    if max(h, w) <= max_side:
        return gray
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def decode_upload(data: bytes, filename: str = "", sha256: str | None = None) -> Decoded:
    """Decodes uploaded bytes in memory; an unreadable file gives ``error``, never raises."""
    from cxrlib.imaging import ImageError, decode_image

    count("decodes")
    sha = sha256 or sha256_bytes(data)
    try:
        image = decode_image(data, filename)
    except ImageError as exc:
        return Decoded(sha, error=str(exc))
    pixels = fit_display(image.pixels)
    notices = list(image.notices)
    if pixels is not image.pixels:
        h, w = image.pixels.shape
        notices.append(
            f"Large image ({w:,} x {h:,} px): analysed and shown at "
            f"{pixels.shape[1]:,} x {pixels.shape[0]:,} px"
        )
    # Only the display-size pixels are kept (the full-size array is dropped here).
    return Decoded(sha, pixels=pixels, format=image.format, notices=notices, meta=dict(image.meta))


@dataclass(frozen=True)
class GateVerdict:
    """The out-of-distribution verdict in plain values."""

    is_cxr: bool
    score: float
    reason: str


def run_gate(res: Resources, decoded: Decoded) -> GateVerdict | None:
    """The OOD verdict for a decoded upload, or None when the gate is unavailable."""
    if res.gate is None or decoded.pixels is None:
        return None
    out = res.gate(decoded.pixels, colourfulness=decoded.colourfulness)
    return GateVerdict(bool(out.is_cxr), float(out.score), str(getattr(out, "reason", "")))


class _CachedMask:
    """A segmenter whose ``segment`` returns a mask cached per image."""

    def __init__(self, res: Resources, cache: LRUCache, sha: str) -> None:
        self._res, self._cache, self._sha = res, cache, sha

    def segment(self, gray: np.ndarray) -> np.ndarray:
        seg = self._res.segmenter
        assert seg is not None
        key = ("mask", self._sha, self._res.segmenter_id, gray.shape)
        return self._cache.get_or_compute(key, lambda: seg.segment(gray))


def run_diagnosis(
    res: Resources,
    cache: LRUCache,
    decoded: Decoded,
    method: str = "gradcam",
    class_index: int | None = None,
) -> Diagnosis:
    """Probabilities, test-time range, heatmap and lung focus of one upload, cached.

    The cache key is (image sha256, model, method, class); ``class_index=None``
    (the predicted class) and the predicted class's index share one entry.
    The lung mask is cached per image, so changing the method or class does
    not segment again.

    Raises:
        RuntimeError: No classifier or explainer is loaded.
    """
    from cxrlib.diagnose import diagnose

    if res.classifier is None or res.explainer is None:
        raise RuntimeError(res.errors.get("classifier") or "no classifier is loaded")
    if decoded.pixels is None:
        raise ValueError("the upload was not decoded")
    base = ("diagnosis", decoded.sha256, res.model_id, res.segmenter_id, method)
    predicted = cache.get(("predicted", decoded.sha256, res.model_id))
    if class_index is not None and predicted is not None and int(class_index) == predicted:
        class_index = None
    key = (*base, None if class_index is None else int(class_index))
    segmenter = None if res.segmenter is None else _CachedMask(res, cache, decoded.sha256)

    def compute() -> Diagnosis:
        count("heatmaps")
        return diagnose(
            res.classifier, decoded.pixels, res.explainer, segmenter, method, class_index
        )

    diagnosis = cache.get_or_compute(key, compute)
    cache.put(("predicted", decoded.sha256, res.model_id), int(diagnosis.predicted_index))
    return diagnosis


def hottest_percent(enabled: bool, percent: float = 15.0) -> float | None:
    """The ``hottest_percent`` argument of :func:`cxrlib.overlay.overlay`."""
    return percent if enabled else None


# ----------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One committed gallery image (see samples/PROVENANCE.md)."""

    file: str
    label: str
    source: str
    license: str
    original: str
    note: str = ""

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / self.file

    @property
    def title(self) -> str:
        kind = "DICOM, " if self.file.lower().endswith(".dcm") else ""
        return f"{self.label} ({kind}{self.source})"


def list_samples(folder: str | os.PathLike[str] = SAMPLES_DIR) -> list[Sample]:
    """The gallery, from ``samples.csv`` in ``folder`` (empty if absent)."""
    index = Path(folder) / "samples.csv"
    if not index.exists():
        return []
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        s = Sample(
            file=r["file"],
            label=r["label"],
            source=r["source"],
            license=r["license"],
            original=r.get("original", ""),
            note=r.get("note", ""),
        )
        if (Path(folder) / s.file).exists():
            out.append(s)
    return out


def thumbnail(gray: np.ndarray, side: int = 192) -> np.ndarray:
    """A square-padded uint8 thumbnail of ``gray`` (for a tidy gallery grid)."""
    import cv2

    h, w = gray.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(
        gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    out = np.zeros((side, side), np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ThresholdResult:
    """Confusion matrix and one-vs-rest numbers at a decision threshold.

    Attributes:
        threshold: The threshold on the positive class's probability.
        matrix: (K, K) counts, rows = true class, columns = predicted class.
        sensitivity: Of the positive class (None without positives).
        specificity: Of the positive class (None without negatives).
        ppv: Positive predictive value (None when nothing is called positive).
        npv: Negative predictive value (None when nothing is called negative).
        n: Number of images.
    """

    threshold: float
    matrix: np.ndarray
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    n: int


def threshold_predictions(probs: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Class decisions when ``positive`` is called at ``p >= threshold``.

    Below the threshold an image gets the most probable of the OTHER classes,
    so the threshold moves images only between the positive class and the rest.

    Args:
        probs: (N, K) probabilities.
        positive: Index of the thresholded class.
        threshold: Decision threshold in [0, 1].

    Returns:
        (N,) predicted class indices.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not 0 <= positive < p.shape[1]:
        raise ValueError(f"probs must be (N, K) with 0 <= positive < K, got {p.shape}")
    others = p.copy()
    others[:, positive] = -np.inf
    fallback = others.argmax(axis=1)
    return np.where(p[:, positive] >= threshold, positive, fallback)


def threshold_confusion(
    probs: np.ndarray, labels: np.ndarray, positive: int, threshold: float
) -> ThresholdResult:
    """Confusion matrix, sensitivity, specificity, PPV and NPV at a threshold.

    Args:
        probs: (N, K) saved per-image probabilities.
        labels: (N,) true class indices.
        positive: Index of the thresholded class (e.g. covid).
        threshold: Decision threshold on its probability.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    k = p.shape[1] if p.ndim == 2 else 0
    pred = threshold_predictions(p, positive, threshold) if len(y) else np.zeros(0, int)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y, pred), 1)
    pos, called = y == positive, pred == positive
    tp = int(np.sum(pos & called))
    fn = int(np.sum(pos & ~called))
    fp = int(np.sum(~pos & called))
    tn = int(np.sum(~pos & ~called))

    def div(a: int, b: int) -> float | None:
        return a / b if b else None

    return ThresholdResult(
        threshold=float(threshold),
        matrix=cm,
        sensitivity=div(tp, tp + fn),
        specificity=div(tn, tn + fp),
        ppv=div(tp, tp + fp),
        npv=div(tn, tn + fn),
        n=int(len(y)),
    )


def predictions_arrays(
    predictions: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, K), labels (N,)) from metrics.json ``predictions`` (unknown labels dropped)."""
    index = {c: i for i, c in enumerate(class_names)}
    rows = [
        r for r in predictions if r.get("label") in index and len(r.get("probs", [])) == len(index)
    ]
    probs = np.array([r["probs"] for r in rows], dtype=np.float64).reshape(-1, len(index))
    labels = np.array([index[r["label"]] for r in rows], dtype=np.int64)
    return probs, labels


def predictions_table(predictions: Sequence[dict[str, Any]], class_names: Sequence[str]) -> Any:
    """A DataFrame of saved predictions: path, label, source, predicted, confidence, correct.

    Sorted misclassified first, then by confidence (most confident first), so
    the most instructive mistakes lead.
    """
    import pandas as pd

    names = list(class_names)
    recs = []
    for r in predictions:
        probs = list(r.get("probs", []))
        if len(probs) != len(names):
            continue
        k = int(np.argmax(probs))
        recs.append(
            {
                "path": r.get("path", ""),
                "label": r.get("label", ""),
                "source": r.get("source", ""),
                "predicted": names[k],
                "confidence": float(probs[k]),
                "correct": r.get("label") == names[k],
                **{f"p_{c}": float(p) for c, p in zip(names, probs)},
            }
        )
    cols = ["path", "label", "source", "predicted", "confidence", "correct"] + [
        f"p_{c}" for c in names
    ]
    df = pd.DataFrame(recs, columns=cols)
    if len(df):
        df = df.sort_values(["correct", "confidence"], ascending=[True, False], kind="stable")
    return df.reset_index(drop=True)


def filter_predictions(
    df: Any,
    labels: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    outcome: str = "all",
) -> Any:
    """Rows of :func:`predictions_table` with the chosen true labels, sources and outcome.

    Args:
        df: The table.
        labels: True labels to keep (None or empty: all).
        sources: Sources to keep (None or empty: all).
        outcome: ``"all"``, ``"correct"`` or ``"misclassified"``.
    """
    if outcome not in ("all", "correct", "misclassified"):
        raise ValueError(f"unknown outcome {outcome!r}")
    mask = np.ones(len(df), bool)
    if labels:
        mask &= df["label"].isin(list(labels)).to_numpy()
    if sources:
        mask &= df["source"].isin(list(sources)).to_numpy()
    if outcome == "correct":
        mask &= df["correct"].to_numpy(bool)
    elif outcome == "misclassified":
        mask &= ~df["correct"].to_numpy(bool)
    return df[mask].reset_index(drop=True)


def safe_image_path(folder: str | os.PathLike[str], relative: str) -> Path | None:
    """``folder / relative`` if it stays inside ``folder`` and exists, else None."""
    base = Path(folder).resolve()
    try:
        p = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    if base not in p.parents or not p.is_file():
        return None
    return p


def describe_preprocessing(pre: dict[str, Any]) -> str:
    """One sentence on how a model's input is made, from its JSON ``preprocess``."""
    geometry = "squash" if pre.get("geometry", "resize") == "resize" else "pad"
    size = pre.get("size", "?")
    if pre.get("lung_crop"):
        framing = (
            "crop to the lung fields found by the lung segmenter (plus "
            f"{100 * float(pre.get('lung_margin', 0)):.0f}% of the image on each side; the "
            "whole image when no lungs are found)"
        )
    else:
        framing = f"crop {100 * float(pre.get('border_crop', 0)):.0f}% of each border"
    if pre.get("lung_mask"):
        framing += (
            "; fill everything outside the lung mask (widened by "
            f"{100 * float(pre.get('mask_dilation', 0)):.0f}% of the image) with the lungs' mean"
        )
    return (
        f"decode to 8-bit grayscale; {framing}; {geometry} to {size} x {size} px; "
        f"contrast `{pre.get('contrast', '?')}`."
    )


_AUGMENT_WORDS = (
    # (setting, how to say it); probabilities as a share of images, ranges as ±
    ("rotate_deg", "rotation ±{:g} deg"),
    ("scale", "scale ±{:.0%}"),
    ("shift", "shift ±{:.0%}"),
    ("gamma", "gamma"),
    ("contrast", "contrast and brightness"),
    ("p_blur", "blur ({:.0%})"),
    ("p_noise", "noise ({:.0%})"),
    ("p_downscale", "lost resolution ({:.0%})"),
    ("p_jpeg", "JPEG artefacts ({:.0%})"),
    ("p_text", "synthetic letters and arrows near the borders ({:.0%})"),
    ("p_erase_lungs", "lungs blanked out with a no-opinion (uniform) target ({:.0%})"),
    ("p_lungs_only", "everything but the lungs blanked out ({:.0%})"),
    ("mixup", "mixup (images and labels of two images blended, Beta({:g}) weights)"),
)


def describe_architecture(cfg: dict[str, Any]) -> str:
    """The trunk a model was built with, from its JSON ``train_config``."""
    arch = cfg.get("arch", "?")
    if arch == "mobilenetv2":
        return f"`mobilenetv2` (MobileNetV2 cut at stride 16, width {cfg.get('alpha')})"
    if arch == "resnet":
        width = cfg.get("width")  # recorded as built by cxrlib.train
        filters = f"; {width}-{2 * width}-{4 * width} filters" if width else ""
        return f"`resnet` (ResNet-18's stem and first three stages, cut at stride 16{filters})"
    return f"`{arch}`"


def making_commands(meta: dict[str, Any]) -> str:
    """The commands that made a model, one per line, from its JSON: training, then any
    post-training calibration and the fitting of its test-time views."""
    lines = [meta.get("command") or "python -m cxrlib.train --data ../shared/cxr --out models/"]
    for key in ("post_training", "test_time_views"):
        step = meta.get(key) or {}
        if isinstance(step, dict) and step.get("command"):
            lines.append(step["command"])
    return "\n".join(lines)


#: How the app names the test-time views (cxrlib.views.DEFAULT_VIEWS) to a reader.
COPIES = "slightly shifted, zoomed, darker and brighter copies"


def describe_calibration(meta: dict[str, Any]) -> str:
    """How a model's probabilities are made, from its JSON (temperature, test-time views)."""
    text = (
        "temperature scaling on the validation split "
        f"(T = {float(meta.get('temperature', 1.0)):.3f})"
    )
    ttv = meta.get("test_time_views") or {}
    if not ttv.get("views"):
        return text + "; each image is scored once."
    n = len(ttv["views"])
    gain = ""
    one, avg = ttv.get("val_one_view") or {}, ttv.get("val_averaged") or {}
    if "balanced_accuracy" in one and "balanced_accuracy" in avg:
        gain = (
            f"; validation balanced accuracy {one['balanced_accuracy']:.3f} with the image "
            f"alone, {avg['balanced_accuracy']:.3f} averaged"
        )
    return (
        f"each image is scored with {n} {COPIES} ({', '.join(ttv['views'])}); the probabilities are those of the mean logits over "
        f"the {n + 1}, with their own temperature fitted on the validation split "
        f"(T = {float(ttv.get('temperature', 1.0)):.3f}){gain}. Without the copies: " + text + "."
    )


def describe_scoring(split: dict[str, Any]) -> str:
    """How a saved split's predictions were made (one view, or the mean over its views)."""
    views = split.get("views") or []
    if len(views) > 1:
        return (
            f"Each image scored as the app scores it: the mean over the image and "
            f"{len(views) - 1} {COPIES}."
        )
    return "Each image scored once, as it is."


def probability_headline(d: Diagnosis) -> str:
    """The result in one line: most likely class, its probability and its range (markdown)."""
    k = d.predicted_index
    p, (lo, hi) = float(d.probabilities[k]), d.uncertainty[k]
    n = len(d.view_names)
    if d.averaged:
        return (
            f"Most likely: **{d.predicted_name}**, {100 * p:.0f}% (the average over the "
            f"image and {n - 1} {COPIES}; they range {100 * lo:.0f}-{100 * hi:.0f}%)"
        )
    return (
        f"Most likely: **{d.predicted_name}**, {100 * p:.0f}% "
        f"(range {100 * lo:.0f}-{100 * hi:.0f}% over {n} {COPIES} of the image)"
    )


def is_unsure(d: Diagnosis) -> bool:
    """The answer is shaky: the top class is under 60 %, less than 20 points ahead of
    the runner-up, or moves by more than 30 points over the test-time views."""
    k = d.predicted_index
    p, (lo, hi) = float(d.probabilities[k]), d.uncertainty[k]
    second = float(np.sort(d.probabilities)[-2])
    return bool(p < 0.6 or p - second < 0.2 or hi - lo > 0.3)


def probability_note(d: Diagnosis) -> str:
    """How the shown probabilities were computed (the chart's caption, the report's line)."""
    n = len(d.view_names)
    if d.averaged:
        made = (
            f"Calibrated probabilities: the model's outputs averaged over the image and {n - 1} "
            f"{COPIES}, temperature-scaled on the validation split."
        )
    else:
        made = "Calibrated probabilities of the image (temperature-scaled on the validation split)."
    return (
        made + f" The black whiskers show the spread over the {n} versions: a wide spread "
        "means an unstable answer."
    )


# What each source of ../shared/cxr is, in a few words (its SOURCES.md), for sentences
# that name a source to someone who has not read it.
SOURCE_NAMES = {
    "nih": "adult NIH Clinical Center",
    "kermany": "paediatric Guangzhou",
    "radiography": "COVID-19 Radiography Database",
    "ieee8023": "publication-figure (Cohen et al.)",
    "cxnet": "COVID-CXNet",
    "figure1": "Figure 1 initiative",
}


@dataclass(frozen=True)
class TrackRecord:
    """How the model's past answers of one class turned out, from its metrics file.

    Attributes:
        label: The class it answered.
        calls: Internal test images it gave that answer.
        right: Of those, the ones whose label is ``label``.
        held_out_accuracy: Mean accuracy over the held-out sources of the
            leave-one-source-out runs (views-averaged where recorded), or None.
        held_out_sources: How many sources that mean is over.
        held_out_schedule: Those runs' schedule in words ("3 epochs of 120 steps"),
            or "" when not recorded.
        confusions: ``(source, true label, called label, group size)`` for the groups
            of the test split that most often got this answer wrongly, most often first.
    """

    label: str
    calls: int
    right: int
    held_out_accuracy: float | None
    held_out_sources: int
    confusions: tuple[tuple[str, str, int, int], ...]
    held_out_schedule: str = ""


def track_record(
    metrics: dict[str, Any] | None,
    label: str,
    min_group: int = 20,
    min_share: float = 0.2,
) -> TrackRecord | None:
    """What the saved test predictions say about an answer of ``label``.

    A (source, true class) group of at least ``min_group`` test images is a known
    confusion when at least ``min_share`` of it was answered ``label``.
    """
    split = ((metrics or {}).get("splits") or {}).get("test") or {}
    cm = split.get("confusion_matrix") or {}
    labels = list(cm.get("labels") or [])
    if label not in labels or not cm.get("matrix"):
        return None
    matrix = np.asarray(cm["matrix"], dtype=np.int64)
    k = labels.index(label)
    groups: dict[tuple[str, str], list[int]] = {}
    for r in split.get("predictions") or []:
        if r.get("label") not in labels or len(r.get("probs", [])) != len(labels):
            continue
        g = groups.setdefault((str(r.get("source", "unknown")), r["label"]), [0, 0])
        g[0] += 1
        g[1] += int(np.argmax(r["probs"]) == k)
    confusions = sorted(
        (
            (source, true, called, n)
            for (source, true), (n, called) in groups.items()
            if true != label and n >= min_group and called >= min_share * n
        ),
        key=lambda c: -c[2] / c[3],
    )
    loso = (metrics or {}).get("loso") or {}
    sources = loso_sources(loso)
    schedule = loso.get("schedule") or {}
    epochs, steps = schedule.get("epochs"), schedule.get("steps_per_epoch")
    if epochs and steps:
        run = f"{epochs} epochs of {steps} steps"
    else:
        run = f"{epochs} full epochs" if epochs else ""
    accs = [
        (v.get("with_views") or v).get("accuracy") for v in sources.values() if isinstance(v, dict)
    ]
    accs = [a for a in accs if a is not None]
    return TrackRecord(
        label=label,
        calls=int(matrix[:, k].sum()),
        right=int(matrix[k, k]),
        held_out_accuracy=float(np.mean(accs)) if accs else None,
        held_out_sources=len(accs),
        confusions=tuple(confusions),
        held_out_schedule=run,
    )


def describe_track_record(r: TrackRecord) -> list[str]:
    """The Diagnose page's "how often was this answer right" lines (markdown)."""
    lines = []
    if r.calls:
        lines.append(
            f"On the internal test split, **{100 * r.right / r.calls:.0f}%** of its "
            f"'{r.label}' answers were right ({r.right:,} of {r.calls:,}). Those images come "
            "from the hospitals it was trained on."
        )
    if r.held_out_accuracy is not None:
        recipe = "the same recipe" + (
            f", shortened to {r.held_out_schedule}" if r.held_out_schedule else ""
        )
        lines.append(
            f"Retrained with one data source left out ({recipe}; {r.held_out_sources} sources "
            f"in turn), it was right on **{100 * r.held_out_accuracy:.0f}%** of the left-out "
            "images."
        )
    for source, true, called, n in r.confusions:
        where = SOURCE_NAMES.get(source, source)
        lines.append(
            f"Known confusion: it also answered '{r.label}' for {called} of {n} "
            f"{where} {true} images in the test split."
        )
    return lines


# Metrics file version -> (its contents, {answer: lines}): the Diagnose page asks on
# every rerun (each slider move), and a record walks every saved test prediction.
_RECORD_MEMO: dict[tuple[str, float], tuple[dict[str, Any] | None, dict[str, list[str]]]] = {}


def answer_record(res: Resources, label: str) -> list[str]:
    """:func:`describe_track_record` of an answer ``label`` by the loaded classifier,
    from its metrics file (read and described once per file version); [] without one."""
    if res.model_path is None:
        return []
    path = Path(res.model_path).with_suffix(".metrics.json")
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return []
    entry = _RECORD_MEMO.get(key)
    if entry is None:
        # One model per process: keep only the current version. (Sessions are threads;
        # the local variable keeps a concurrent clear() from pulling it away.)
        entry = (read_json(path), {})
        _RECORD_MEMO.clear()
        _RECORD_MEMO[key] = entry
    metrics, lines = entry
    if label not in lines:
        record = track_record(metrics, label)
        lines[label] = describe_track_record(record) if record else []
    return list(lines[label])


def describe_training(cfg: dict[str, Any]) -> str:
    """One sentence on a model's batches and augmentation, from its JSON ``train_config``."""
    power = cfg.get("sampling_power")
    floor = int(cfg.get("sampling_floor", 1) or 1)
    if power is None:
        sampling = "class-balanced batches"
    else:
        sampling = (
            f"class-balanced batches; within a class, a source of n images weighs n^{power:g}"
        )
        if floor > 1:
            sampling += f" (sources under {floor} images weighted as {floor})"
    aug = cfg.get("augment") or {}
    used = [words.format(aug[k]) for k, words in _AUGMENT_WORDS if aug.get(k)]
    augmentation = "augmentation: " + ", ".join(used) if used else "no augmentation"
    ema = cfg.get("ema") or 0.0
    averaged = f"; weights kept as a moving average (decay {ema:g})" if ema else ""
    return f"{sampling}; {augmentation}{averaged}."


def train_counts_table(meta: dict[str, Any]) -> Any:
    """A source x class DataFrame of training images from the model JSON ``train_counts``."""
    import pandas as pd

    counts = meta.get("train_counts") or {}
    recs = []
    for key, n in counts.items():
        source, _, label = str(key).partition("/")
        recs.append({"source": source, "label": label, "n": int(n)})
    if not recs:
        return pd.DataFrame()
    df = pd.DataFrame(recs).pivot_table(
        index="source", columns="label", values="n", aggfunc="sum", fill_value=0
    )
    df["total"] = df.sum(axis=1)
    df.loc["total"] = df.sum(axis=0)
    return df.astype(int)


def per_class_table(split: dict[str, Any]) -> Any:
    """Per-class metrics (support, sensitivity, specificity, PPV, NPV, F1, AUC) as a DataFrame."""
    import pandas as pd

    rows = []
    for name, m in (split.get("per_class") or {}).items():
        rows.append(
            {
                "class": name,
                "support": m.get("support"),
                "sensitivity": m.get("sensitivity"),
                "specificity": m.get("specificity"),
                "PPV": m.get("ppv"),
                "NPV": m.get("npv"),
                "F1": m.get("f1"),
                "AUC": m.get("auc"),
            }
        )
    return pd.DataFrame(rows).set_index("class") if rows else pd.DataFrame()


def per_source_table(split: dict[str, Any]) -> Any:
    """Per-source accuracy (overall and per class) as a DataFrame."""
    import pandas as pd

    rows = []
    for source, m in (split.get("per_source") or {}).items():
        row = {"source": source, "n": m.get("n"), "accuracy": m.get("accuracy")}
        for c, v in (m.get("per_class_accuracy") or {}).items():
            row[f"{c} accuracy"] = v
        rows.append(row)
    return pd.DataFrame(rows).set_index("source") if rows else pd.DataFrame()


def fmt_ci(value: float | None, ci: Sequence[float] | None = None, pct: bool = True) -> str:
    """``"91.4% (95% CI 90.2-92.5%)"`` style text (``"n/a"`` for None)."""
    if value is None:
        return "n/a"
    if pct:
        text = f"{100 * value:.1f}%"
        if ci and len(ci) == 2:
            text += f" (95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%)"
        return text
    text = f"{value:.3f}"
    if ci and len(ci) == 2:
        text += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
    return text


# ----------------------------------------------------------------------------- downloads


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes of an image array, encoded in memory."""
    from cxrlib.report import overlay_png

    return overlay_png(rgb)


def gate_text(gate: GateVerdict | None) -> str:
    """The input check's verdict in one sentence."""
    if gate is None:
        return "Not checked (the input check is unavailable)."
    if gate.is_cxr:
        return f"Looks like a frontal chest X-ray (score {gate.score:.2f})."
    return f"Rejected: not a frontal chest X-ray ({gate.reason}); analysed anyway."


def report_bytes(
    res: Resources,
    decoded: Decoded,
    diagnosis: Diagnosis,
    overlay_rgb: np.ndarray,
    method: str,
    settings: dict[str, object] | None = None,
    gate: GateVerdict | None = None,
    warnings: Sequence[str] = (),
) -> bytes:
    """The PDF report of one analysed upload (see :mod:`cxrlib.report`), in memory.

    Only computed values go in: no file name, no DICOM field other than the
    decoder's technical notices.
    """
    from cxrlib.report import ReportData, build_report

    if res.classifier is None or decoded.pixels is None:
        raise ValueError("nothing to report")
    meta = res.classifier.meta
    data = ReportData(
        image=decoded.pixels,
        overlay=np.asarray(overlay_rgb, dtype=np.uint8),
        class_names=list(diagnosis.class_names),
        probabilities=[float(p) for p in diagnosis.probabilities],
        ranges=np.asarray(diagnosis.uncertainty, dtype=float),
        predicted=diagnosis.predicted_name,
        method=METHOD_LABELS.get(method, method),
        explained_class=diagnosis.target_name,
        settings=dict(settings or {}),
        model_version=model_version(meta, res.model_path),
        weights_sha256=res.classifier.weights_sha256,
        image_sha256=decoded.sha256,
        lung_focus_text=diagnosis.focus_verdict,
        probability_note=probability_note(diagnosis),
        track_record=[
            line.replace("**", "") for line in answer_record(res, diagnosis.predicted_name)
        ],
        gate_text=gate_text(gate),
        warnings=list(warnings),
        notices=list(decoded.notices),
    )
    return build_report(data)


# ----------------------------------------------------------------------------- batch


def count_items(items: Sequence[tuple[str, bytes]]) -> int:
    """How many images a batch holds (image members of zip archives counted)."""
    import io
    import zipfile

    from cxrlib.predict import IMAGE_SUFFIXES

    total = 0
    for name, data in items:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    total += sum(
                        1
                        for i in zf.infolist()
                        if not i.is_dir()
                        and not i.filename.rsplit("/", 1)[-1].startswith(".")
                        and "__MACOSX" not in i.filename
                        and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES
                    )
            except (zipfile.BadZipFile, OSError, ValueError):
                total += 1
        else:
            total += 1
    return max(total, 1)


def focus_function(res: Resources) -> Callable[[np.ndarray, int | None], float | None]:
    """``f(gray, class_index) -> lung focus`` of that class's Grad-CAM (None without lungs)."""
    from cxrlib.predict import gradcam_lung_focus

    if res.explainer is None or res.segmenter is None:
        raise RuntimeError("lung focus needs the explainer and the lung segmenter")
    inner = gradcam_lung_focus(res.explainer, res.segmenter)

    def focus(gray: np.ndarray, class_index: int | None = None) -> float | None:
        count("heatmaps")
        return inner(gray, class_index)

    return focus


# ----------------------------------------------------------------------------- audit sections


def ablation_table(section: dict[str, Any]) -> Any:
    """``metrics.json["ablation"]`` as rows original / lungs erased / lungs only.

    Columns: balanced accuracy, accuracy, macro-F1 and each class's sensitivity.
    """
    import pandas as pd

    rows = []
    for key, label in (
        ("original", "original images"),
        ("lungs_erased", "lungs erased"),
        ("lungs_only", "only the lungs kept"),
    ):
        s = section.get(key)
        if not isinstance(s, dict):
            continue
        row = {
            "images": label,
            "balanced accuracy": s.get("balanced_accuracy"),
            "accuracy": s.get("accuracy"),
            "macro-F1": s.get("macro_f1"),
        }
        for c, v in (s.get("sensitivity") or {}).items():
            row[f"{c} sensitivity"] = v
        rows.append(row)
    return pd.DataFrame(rows).set_index("images") if rows else pd.DataFrame()


def _summary_rows(d: dict[str, Any], label: str) -> Any:
    import pandas as pd

    rows = [
        {label: k, "n": v.get("n"), "mean": v.get("mean"), "median": v.get("median")}
        for k, v in (d or {}).items()
        if isinstance(v, dict)
    ]
    return pd.DataFrame(rows).set_index(label) if rows else pd.DataFrame()


def explain_tables(section: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json["explain"]``: lung focus per class and per source, faithfulness.

    Returns:
        ``{"overall": {n, mean, median}, "flat": mean focus of a flat map over the model's
        view (None in older files), "per_class": df, "per_source": df,
        "faithfulness": df (overall + per class), "method": str, "fraction": float}``.
    """
    import pandas as pd

    faith_rows = []
    overall = section.get("faithfulness")
    if isinstance(overall, dict):
        faith_rows.append({"class": "all", **overall})
    for c, v in (section.get("faithfulness_per_class") or {}).items():
        if isinstance(v, dict):
            faith_rows.append({"class": c, **v})
    faith = pd.DataFrame(faith_rows).set_index("class") if faith_rows else pd.DataFrame()
    if len(faith):
        faith = faith.rename(
            columns={
                "drop_hot": "confidence drop, hottest area blurred",
                "drop_random": "confidence drop, random area blurred",
                "score": "difference (> 0: the map points at evidence)",
            }
        )
    return {
        "overall": section.get("lung_focus") or {},
        "flat": (section.get("flat_map_focus") or {}).get("mean"),
        "per_class": _summary_rows(section.get("lung_focus_per_class") or {}, "true class"),
        "per_source": _summary_rows(section.get("lung_focus_per_source") or {}, "source"),
        "faithfulness": faith,
        "method": METHOD_LABELS.get(section.get("method", ""), section.get("method", "")),
        "fraction": section.get("fraction"),
    }


def loso_sources(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``metrics.json["loso"]``'s per-source results ``{source: {...}}``."""
    sources = section.get("sources")
    if isinstance(sources, dict):
        return sources
    # Tolerate a flat {source: {...}} layout.
    return {k: v for k, v in section.items() if isinstance(v, dict) and k != "schedule"}


def loso_table(section: dict[str, Any]) -> Any:
    """``metrics.json["loso"]``: one row per held-out source.

    Scored as the app predicts (the logits averaged over the test-time views) where that was
    measured (``with_views``), else on the image alone; the other figures stay in the file.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    classes: set[str] = set()
    for s, v in loso_sources(section).items():
        scored = v.get("with_views") or v
        row = {
            "held-out source": s,
            "n": v.get("n"),
            "accuracy": scored.get("accuracy"),
            "balanced accuracy": scored.get("balanced_accuracy"),
        }
        for c, a in (scored.get("per_class_accuracy") or {}).items():
            row[f"{c} sensitivity"] = a
            classes.add(c)
        row["internal test balanced accuracy"] = v.get("internal_test_balanced_accuracy")
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    # The classes in one order for all rows.
    order = ["n", "accuracy", "balanced accuracy"] + [f"{c} sensitivity" for c in sorted(classes)]
    df = pd.DataFrame(rows).set_index("held-out source")
    return df[[c for c in [*order, "internal test balanced accuracy"] if c in df.columns]]


def describe_loso(section: dict[str, Any]) -> list[str]:
    """One plain line per held-out source of a leave-one-source-out section (markdown).

    What a model trained without that source found of each of its classes, beside the same
    model's balanced accuracy on the internal test split; figures as the app predicts
    (averaged over the test-time views) where they were measured so.
    """
    schedule = section.get("schedule") or {}
    epochs = schedule.get("epochs")
    lines = []
    for source, v in loso_sources(section).items():
        scored = v.get("with_views") or v
        found = scored.get("per_class_accuracy") or {}
        auc = scored.get("auc") or {}
        parts = [
            f"**{100 * a:.0f}%** of its {c}"
            + (f" (AUC {auc[c]:.2f})" if auc.get(c) is not None else "")
            for c, a in found.items()
            if a is not None
        ]
        if not parts:
            continue
        line = (
            f"Trained without the {SOURCE_NAMES.get(source, source)} images"
            + (f" ({epochs} epochs)" if epochs else "")
            + f", it found {_join(parts)}"
        )
        internal = v.get("internal_test_balanced_accuracy")
        if internal is not None:
            line += (
                f"; the same model scores {100 * internal:.0f}% balanced accuracy on the "
                "internal test split"
            )
        lines.append(line + ".")
    return lines


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_input_and_trunk(pre: dict[str, Any], cfg: dict[str, Any]) -> str:
    """A few words on what a model sees and its trunk: 'the whole image, ResNet (64), 128 px'."""
    if pre.get("lung_mask"):
        sees = "the lungs only (masked)"
    elif pre.get("lung_crop"):
        sees = "the lung box"
    elif float(pre.get("border_crop", 0) or 0) > 0:
        sees = "the image less its borders"
    else:
        sees = "the whole image"
    arch = cfg.get("arch", "?")
    if arch == "mobilenetv2":
        trunk = f"MobileNetV2 (width {cfg.get('alpha')})"
    elif arch == "resnet":
        trunk = f"ResNet ({cfg.get('width')} filters first)"
    else:
        trunk = str(arch)
    return f"{sees}, {trunk}, {pre.get('size', '?')} px"


@dataclass(frozen=True)
class Comparison:
    """One model of the Trust page's comparison: internal score against lungs-erased score."""

    name: str
    described: str
    params: int | None
    balanced_accuracy: float
    covid_sensitivity: float | None
    erased_balanced_accuracy: float
    erased_covid_auc: float | None


def comparisons(meta: dict[str, Any], metrics: dict[str, Any]) -> list[Comparison]:
    """The committed model, then every recorded alternative scored on the same split.

    The committed model's figures are its headline test metrics and its recorded
    ablation; an alternative's come from ``evaluate --ablate --record-alternative``.
    Empty when the committed model has no test metrics or ablation to compare with.
    """
    test = (metrics.get("splits") or {}).get("test")
    abl = metrics.get("ablation")
    if not isinstance(test, dict) or not isinstance(abl, dict) or "lungs_erased" not in abl:
        return []
    erased = abl["lungs_erased"]
    out = [
        Comparison(
            name="this app's model",
            described=describe_input_and_trunk(
                meta.get("preprocess") or {}, meta.get("train_config") or {}
            ),
            params=meta.get("params"),
            balanced_accuracy=float(test["balanced_accuracy"]),
            covid_sensitivity=(test.get("per_class") or {}).get("covid", {}).get("sensitivity"),
            erased_balanced_accuracy=float(erased["balanced_accuracy"]),
            erased_covid_auc=(erased.get("auc") or {}).get("covid"),
        )
    ]
    for name, alt in sorted((metrics.get("alternatives") or {}).items()):
        if not isinstance(alt, dict) or alt.get("split") != abl.get("split"):
            continue  # figures from another split do not compare
        out.append(
            Comparison(
                name=str(name),
                described=describe_input_and_trunk(
                    alt.get("preprocess") or {}, alt.get("train_config") or {}
                ),
                params=alt.get("params"),
                balanced_accuracy=float(alt["balanced_accuracy"]),
                covid_sensitivity=alt.get("covid_sensitivity"),
                erased_balanced_accuracy=float(alt["lungs_erased"]["balanced_accuracy"]),
                erased_covid_auc=alt["lungs_erased"].get("covid_auc"),
            )
        )
    return out


def comparison_table(rows: Sequence[Comparison]) -> Any:
    """The comparison as a table, one row per model."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                # The two figures being compared first, so a narrow screen shows them.
                "model": r.name,
                "internal bal. accuracy": r.balanced_accuracy,
                "lungs erased: bal. accuracy": r.erased_balanced_accuracy,
                "lungs erased: COVID AUC": r.erased_covid_auc,
                "COVID sensitivity": r.covid_sensitivity,
                "sees, trunk, input": r.described,
                "parameters": f"{r.params / 1e6:.2f} M" if r.params else None,
            }
            for r in rows
        ]
    ).set_index("model")


#: How far above the committed model's lungs-erased score counts as "reads more outside".
ERASED_MARGIN = 0.05


def describe_comparisons(rows: Sequence[Comparison], chance: float = 1 / 3) -> list[str]:
    """One plain line per model: the committed model (``rows[0]``) first, then each
    alternative with what its figures say against it; then, once, why a score kept with
    the lungs erased counts against a model (where one of them is judged so)."""
    if len(rows) < 2:
        return []
    ours = rows[0]

    def figures(r: Comparison) -> str:
        return (
            f"{100 * r.balanced_accuracy:.1f}% balanced accuracy on the internal test split, "
            f"{100 * r.erased_balanced_accuracy:.0f}% with the lungs erased"
        )

    lines = [
        f"**This app's model** ({ours.described}): {figures(ours)} (chance {100 * chance:.0f}%)."
    ]
    read_outside = False
    for alt in rows[1:]:
        extra = alt.erased_balanced_accuracy - ours.erased_balanced_accuracy
        if alt.balanced_accuracy <= ours.balanced_accuracy:
            verdict = "Lower on the internal test split."
        elif extra > ERASED_MARGIN:
            read_outside = True
            verdict = (
                f"Higher on the internal test split, but {100 * extra:.0f} points higher with "
                "the lungs erased too: part of its score is read outside the lungs. Not the "
                "model used here."
            )
        else:
            verdict = (
                "Higher on the internal test split, and this ablation does not tell it apart; "
                "models/experiments.md says why it is not used."
            )
        lines.append(f"**{alt.name}** ({alt.described}): {figures(alt)}. {verdict}")
    if read_outside:
        lines.append(
            "Why that counts against a model: what it reads outside the lungs (burned-in "
            "text, image borders, how one hospital positions and exposes its patients) earns "
            "marks on the internal test split, whose images come from the same hospitals as "
            "the training images, and would not carry over to a new hospital."
        )
    return lines

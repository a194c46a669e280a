"""What the Streamlit pages need, without Streamlit: paths, loading, caches, one image's
diagnosis and its downloads.

The pages only lay out widgets; everything they compute comes from here, from
:mod:`cxrlib.describe.results` (the saved metrics as tables), :mod:`cxrlib.describe.modelcard` (a model
in words) and :mod:`cxrlib.describe.trust` (the audit, the comparison, the track record), or
from the modules these call. Nothing here imports Streamlit, and nothing
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
:func:`cxrlib.infer.overlay.overlay` on cached arrays.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlib.core.cache import LRUCache, _nbytes  # noqa: F401 - re-exported for the pages
from cxrlib.core.hashing import sha256_bytes  # noqa: F401
from cxrlib.core.methods import METHOD_LABELS  # noqa: F401
from cxrlib.core.settings import (  # noqa: F401
    DEFAULT_DATA_DIR,
    DEFAULT_GATE,
    DEFAULT_MODEL,
    DEFAULT_SEGMENTER,
    ROOT,
    SAMPLES_DIR,
    data_dir,
    gate_path,
    model_path,
    resolve,
    segmenter_path,
)
from cxrlib.describe.modelcard import COPIES

if TYPE_CHECKING:  # pragma: no cover
    from cxrlib.infer.classifier import Classifier
    from cxrlib.infer.diagnose import Diagnosis
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.lungs import LungSegmenter

DISCLAIMER = "Research demo, not for diagnosis"
DISCLAIMER_DETAIL = (
    "CXR Lens is a research and teaching tool, not a medical device: do not use its output "
    "to make decisions about patients."
)
#: Longest side of the image the Diagnose page analyses and shows.
DISPLAY_MAX_SIDE = 1024

#: Process-wide counters: ``heatmaps`` (calls of :func:`run_diagnosis`), ``decodes``, ...
COUNTERS: Counter[str] = Counter()
_COUNTER_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    """Adds ``n`` to :data:`COUNTERS` ``[name]`` (thread-safe)."""
    with _COUNTER_LOCK:
        COUNTERS[name] += n


# ----------------------------------------------------------------------------- paths


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
    """``<model>.metrics.json`` (see :mod:`cxrlib.evaluate.cli`), or None."""
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


def _load_gate() -> Callable[..., Any]:
    """The OOD gate of :mod:`cxrlib.infer.gate` (raises when its fitted file is missing)."""
    from cxrlib.infer import gate as ood

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
    model_file = resolve(model) if model else model_path()
    segmenter_file = resolve(segmenter) if segmenter else segmenter_path()
    res = Resources(model_path=model_file, segmenter_path=segmenter_file)
    try:
        res.device = device_description()
    except Exception as exc:  # noqa: BLE001
        res.device = "CPU"
        res.errors["device"] = f"could not query TensorFlow devices: {exc}"
    try:
        from cxrlib.infer.lungs import load_segmenter

        res.segmenter = load_segmenter(segmenter_file)
    except Exception as exc:  # noqa: BLE001
        res.errors["segmenter"] = str(exc)
    try:
        from cxrlib.infer.classifier import load_classifier

        # A lung-crop classifier frames its input with the same segmenter the page uses.
        res.classifier = load_classifier(model_file, segmenter=res.segmenter)
    except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
        res.errors["classifier"] = str(exc)
    if res.classifier is not None:
        try:
            from cxrlib.infer.explain import Explainer

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
            from cxrlib.infer.diagnose import diagnose

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


# ----------------------------------------------------------------------------- one image


@dataclass
class Decoded:
    """A decoded upload, or why it was refused.

    Attributes:
        sha256: Digest of the uploaded bytes.
        pixels: The image the app analyses and shows (at most
            :data:`DISPLAY_MAX_SIDE` pixels per side), or None when refused.
        format: File format found in the bytes ("PNG", "DICOM", ...).
        notices: Plain sentences about the decoding (and any downscaling).
        meta: Safe technical fields only (see :class:`cxrlib.io.imaging.DecodedImage`).
        error: The :class:`~cxrlib.io.imaging.ImageError` message, or "".
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

    @property
    def header_concerns(self) -> list[str]:
        """What a DICOM header says against a frontal chest X-ray (:func:`cxrlib.infer.gate.header_concerns`)."""
        from cxrlib.infer.gate import header_concerns

        return header_concerns(self.meta)


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
    from cxrlib.io.imaging import ImageError, decode_image

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
    from cxrlib.infer.diagnose import diagnose

    classifier, pixels = res.classifier, decoded.pixels
    if classifier is None or res.explainer is None:
        raise RuntimeError(res.errors.get("classifier") or "no classifier is loaded")
    if pixels is None:
        raise ValueError("the upload was not decoded")
    base = ("diagnosis", decoded.sha256, res.model_id, res.segmenter_id, method)
    predicted = cache.get(("predicted", decoded.sha256, res.model_id))
    if class_index is not None and predicted is not None and int(class_index) == predicted:
        class_index = None
    key = (*base, None if class_index is None else int(class_index))
    segmenter = None if res.segmenter is None else _CachedMask(res, cache, decoded.sha256)

    def compute() -> Diagnosis:
        count("heatmaps")
        return diagnose(classifier, pixels, res.explainer, segmenter, method, class_index)

    diagnosis = cache.get_or_compute(key, compute)
    cache.put(("predicted", decoded.sha256, res.model_id), int(diagnosis.predicted_index))
    return diagnosis


@dataclass(frozen=True)
class MethodComparison:
    """Every explanation method's diagnosis of one image for one class.

    Attributes:
        diagnoses: One per method, in :data:`METHOD_LABELS` order.
        ious: :func:`cxrlib.infer.focus.hot_region_ious` of their heatmaps.
        percent: The hottest share of the image compared.
    """

    diagnoses: tuple[Diagnosis, ...]
    ious: np.ndarray
    percent: float

    @property
    def agreement(self) -> float:
        """The mean IoU over every pair of methods."""
        from cxrlib.infer.focus import mean_over_pairs

        return mean_over_pairs(self.ious)

    def same_region(self, at_least: float = 0.95) -> list[tuple[str, str]]:
        """Pairs of methods (their labels) whose hottest regions (nearly) coincide."""
        labels = [METHOD_LABELS.get(d.method, d.method) for d in self.diagnoses]
        n = len(labels)
        return [
            (labels[i], labels[j])
            for i in range(n)
            for j in range(i + 1, n)
            if self.ious[i, j] >= at_least
        ]

    def caption(self, d: Diagnosis) -> str:
        """A method's name with its lung focus, under its overlay."""
        focus = "" if d.lung_focus is None else f" · {100 * d.lung_focus:.0f}% in the lungs"
        return METHOD_LABELS.get(d.method, d.method) + focus

    def text(self) -> str:
        """How far the methods agree, in words."""
        out = (
            f"The {len(self.diagnoses)} methods' hottest {self.percent:g}% regions overlap by "
            f"**{100 * self.agreement:.0f}%** on average (intersection over union of each pair; "
            "100% would be the same region). Where methods disagree, no single map is the "
            "model's reason: each is one way of asking the same network where it looked."
        )
        same = self.same_region()
        if same:
            pairs = "; ".join(f"{a} and {b}" for a, b in same)
            out += f" Here {pairs} mark the same region."
        if (METHOD_LABELS["gradcampp"], METHOD_LABELS["layercam"]) in same:
            # With a global-average-pooling head the gradient of a class score is the same
            # at every position of a channel, and both weightings keep its positive part.
            out += (
                " That is expected of this model: after global average pooling and one dense "
                "layer, Grad-CAM++ and LayerCAM both sum the channels that count for the "
                "class, so they are not two independent opinions."
            )
        return out


def compare_methods(
    res: Resources,
    cache: LRUCache,
    decoded: Decoded,
    class_index: int | None = None,
    percent: float = 15.0,
) -> MethodComparison:
    """:func:`run_diagnosis` for every method (each cached as usual) and their agreement."""
    from cxrlib.infer.focus import hot_region_ious

    diagnoses = tuple(run_diagnosis(res, cache, decoded, m, class_index) for m in METHOD_LABELS)
    return MethodComparison(
        diagnoses, hot_region_ious([d.heatmap for d in diagnoses], percent), percent
    )


def hottest_percent(enabled: bool, percent: float = 15.0) -> float | None:
    """The ``hottest_percent`` argument of :func:`cxrlib.infer.overlay.overlay`."""
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


# Metrics file version -> (its contents, {answer: lines}): the Diagnose page asks on
# every rerun (each slider move), and a record walks every saved test prediction.
_RECORD_MEMO: dict[tuple[str, float], tuple[dict[str, Any] | None, dict[str, list[str]]]] = {}


def _metrics_entry(res: Resources) -> tuple[Any, dict[str, list[str]]] | None:
    """The loaded classifier's metrics file and a memo of sentences made from it, read
    once per file version; None without one."""
    if res.model_path is None:
        return None
    path = Path(res.model_path).with_suffix(".metrics.json")
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return None
    entry = _RECORD_MEMO.get(key)
    if entry is None:
        # One model per process: keep only the current version. (Sessions are threads;
        # the local variable keeps a concurrent clear() from pulling it away.)
        entry = (read_json(path), {})
        _RECORD_MEMO.clear()
        _RECORD_MEMO[key] = entry
    return entry


def randomisation_note(res: Resources) -> str | None:
    """For "Compare all methods": which methods' maps hardly changed when the network's
    weights were re-drawn at random (metrics file, ``explain_methods``), or None."""
    entry = _metrics_entry(res)
    section = (entry[0] or {}).get("explain_methods") if entry else None
    if not isinstance(section, dict):
        return None
    from cxrlib.describe.trust import image_driven_note

    return image_driven_note(section)


def answer_record(res: Resources, label: str) -> list[str]:
    """:func:`cxrlib.describe.trust.describe_track_record` of an answer ``label`` by the loaded classifier,
    from its metrics file (read and described once per file version); [] without one."""
    entry = _metrics_entry(res)
    if entry is None:
        return []
    metrics, lines = entry
    if label not in lines:
        from cxrlib.describe.trust import describe_track_record, track_record  # (it imports this)

        record = track_record(metrics, label)
        lines[label] = describe_track_record(record) if record else []
    return list(lines[label])


# ----------------------------------------------------------------------------- downloads


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes of an image array, encoded in memory."""
    from cxrlib.describe.report import overlay_png

    return overlay_png(rgb)


def gate_text(gate: GateVerdict | None) -> str:
    """The input check's verdict in one sentence."""
    if gate is None:
        return "Not checked (the input check is unavailable)."
    if gate.is_cxr:
        return (
            "Looks like a frontal chest X-ray (its distance from the X-rays the check was "
            f"fitted on is {gate.score:.2f}; over 1.00 is refused)."
        )
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
    comparison: Sequence[tuple[str, np.ndarray]] = (),
    comparison_text: str = "",
) -> bytes:
    """The PDF report of one analysed upload (see :mod:`cxrlib.describe.report`), in memory.

    Only computed values go in: no file name, no DICOM field other than the
    decoder's technical notices. ``comparison``: (caption, overlay) of every method
    when the user compared them (:class:`MethodComparison`), with ``comparison_text``.
    """
    from cxrlib.describe.report import ReportData, build_report

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
        comparison=[(c, np.asarray(o, dtype=np.uint8)) for c, o in comparison],
        comparison_text=comparison_text,
    )
    return build_report(data)


# ----------------------------------------------------------------------------- batch


def count_items(items: Sequence[tuple[str, bytes]]) -> int:
    """How many images a batch holds (image members of zip archives counted)."""
    import io
    import zipfile

    from cxrlib.predict.batch import is_image_name

    total = 0
    for name, data in items:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    total += sum(
                        1 for i in zf.infolist() if not i.is_dir() and is_image_name(i.filename)
                    )
            except (zipfile.BadZipFile, OSError, ValueError):
                total += 1
        else:
            total += 1
    return max(total, 1)


def focus_function(res: Resources) -> Callable[[np.ndarray, int | None], float | None]:
    """``f(gray, class_index) -> lung focus`` of that class's Grad-CAM (None without lungs)."""
    from cxrlib.predict.batch import gradcam_lung_focus

    if res.explainer is None or res.segmenter is None:
        raise RuntimeError("lung focus needs the explainer and the lung segmenter")
    inner = gradcam_lung_focus(res.explainer, res.segmenter)

    def focus(gray: np.ndarray, class_index: int | None = None) -> float | None:
        count("heatmaps")
        return inner(gray, class_index)

    return focus

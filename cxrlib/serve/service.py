"""What one model-server replica does, without Ray: load the models, answer a batch of requests.

Each request is image bytes, a heatmap method and a class; the answer is what the
app's in-process path computes for them (:func:`cxrlib.infer.pipeline.analyse`):
the input gate's verdict and the diagnosis, encoded by :mod:`cxrlib.serve.codec`.
The image itself is not sent back: the client decodes the same bytes itself (no
TensorFlow needed) and checks the image hash.

A batch of requests is answered together: the lung frames of every image (the
segmenter call a lung-crop classifier needs) are computed in one batched call
first, then each image is diagnosed. Results are cached per replica by image
hash, method and class, so asking for another class reuses the lung mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrlib.core.cache import LRUCache
from cxrlib.core.errors import CxrError
from cxrlib.core.settings import gate_path, model_path, resolve, segmenter_path
from cxrlib.infer.pipeline import Models, analyse, decode
from cxrlib.predict.local import score_items
from cxrlib.predict.rows import gradcam_lung_focus
from cxrlib.serve.codec import encode


@dataclass(frozen=True)
class AnalyseRequest:
    """One image to diagnose."""

    data: bytes
    filename: str = ""
    method: str = "gradcam"
    class_index: int | None = None


def load_models(
    model: str | None = None, segmenter: str | None = None, gate: str | None = None
) -> Models:
    """The classifier, its explainer, the lung segmenter and the input gate (raises on failure)."""
    from cxrlib.infer.classifier import load_classifier  # imports TensorFlow
    from cxrlib.infer.explain import Explainer
    from cxrlib.infer.gate import load_gate
    from cxrlib.infer.lungs import load_segmenter

    paths = (
        resolve(model) if model else model_path(),
        resolve(segmenter) if segmenter else segmenter_path(),
        resolve(gate) if gate else gate_path(),
    )
    gate_check = load_gate(paths[2]).assess
    seg = load_segmenter(paths[1])
    clf = load_classifier(paths[0], segmenter=seg)
    return Models(clf, Explainer(clf), seg, gate_check, *paths)


class DiagnosisService:
    """The models of one replica and the answers it gives."""

    def __init__(
        self,
        model: str | None = None,
        segmenter: str | None = None,
        gate: str | None = None,
        cache_items: int = 128,
    ) -> None:
        self.models = load_models(model, segmenter, gate)
        self.cache = LRUCache(max_items=cache_items)
        from cxrlib.infer.runtime import device_description  # imports TensorFlow

        self.device = device_description()
        self._trace()

    def _trace(self) -> None:
        """Traces the compiled model paths now, not at the first request."""
        synthetic = np.tile(np.linspace(0, 255, 256), (256, 1)).astype(np.uint8)
        from cxrlib.infer.pipeline import diagnose  # imports TensorFlow

        clf = self.models.classifier
        assert clf is not None and self.models.explainer is not None
        diagnose(clf, synthetic, self.models.explainer, self.models.segmenter, "gradcam")

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
            "lung_mask": bool(clf.preprocess.lung_mask),
            "segmenter": self.models.segmenter is not None,
            "gate": self.models.gate is not None,
            "device": self.device,
        }

    def _frame_all(self, requests: list[AnalyseRequest]) -> None:
        """Segments every decodable image of a batch in one call (remembered per image)."""
        clf = self.models.classifier
        grays = []
        for r in requests:
            d = decode(r.data, r.filename, cache=self.cache)
            if d.pixels is not None:
                grays.append(d.pixels)
        if clf is not None and grays and clf.preprocess.uses_lungs:
            clf.lung_frames(grays)

    def answer(self, r: AnalyseRequest) -> dict[str, Any]:
        """The encoded gate verdict and diagnosis of one request, or its typed error."""
        try:
            a = analyse(r.data, self.models, r.filename, r.method, r.class_index, self.cache)
        except (CxrError, ValueError) as exc:
            return {"error": {"type": type(exc).__name__, "message": str(exc)}}
        return {
            "sha256": a.decoded.sha256,
            "gate": encode(a.gate),
            "diagnosis": encode(a.diagnosis),
        }

    def answer_many(self, requests: list[AnalyseRequest]) -> list[dict[str, Any]]:
        """The answers of a batch of requests, in order."""
        self._frame_all(requests)
        return [self.answer(r) for r in requests]

    def score(self, name: str, data: bytes, with_focus: bool = False) -> dict[str, Any]:
        """The Batch page's rows of one upload (a zip gives one per member), encoded."""
        m = self.models
        assert m.classifier is not None
        focus = None
        if with_focus and m.explainer is not None and m.segmenter is not None:
            focus = gradcam_lung_focus(m.explainer, m.segmenter)
        rows = score_items([(name, data)], m.classifier, gate=m.gate, focus=focus)
        return {"rows": encode(rows), "focus": focus is not None}

"""The schema of ``models/<name>.metrics.json``, with its one reader and one writer.

``python -m cxrlib.evaluate`` writes the file section by section; the pages, the model
card, the trust sentences and the PDF read it through :func:`read_metrics`. A required key
that is missing or renamed raises :class:`MetricsSchemaError` naming the key and the file,
instead of silently dropping a sentence. Optional sections and keys are ``None`` (or empty)
when absent; keys the schema does not declare are kept, so :func:`write_metrics` of what
:func:`read_metrics` gave writes the same JSON back.

Per-method and per-class figures are mappings keyed by name (a new heatmap method or class
needs no new field here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrlib.core.records import Record, SchemaError

#: A probability at or above which an answer counts as confident (the external check's
#: ``confident_at``, the track record's "that sure" answers).
CONFIDENT = 0.9


class MetricsSchemaError(SchemaError):
    """A metrics file lacks a required key or holds a value of the wrong type."""


# --- one split (val / test) ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClassScores(Record):
    """One class's rates on a split."""

    support: int | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    ppv: float | None = None
    npv: float | None = None
    f1: float | None = None
    auc: float | None = None
    sensitivity_ci95: tuple[float, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class AdultGroup(Record):
    """The adult images of one class: how many, the share answered right and its interval."""

    n: int
    sensitivity: float | None = None  # of the pneumonias, called pneumonia
    specificity: float | None = None  # of the normals, called normal
    ci95: tuple[float, ...] | None = None
    answers: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Adults(Record):
    """``splits.<name>.adults``: the pneumonias and normals of the adult sources."""

    sources: tuple[str, ...]
    pneumonia: AdultGroup
    normal: AdultGroup


@dataclass(frozen=True, kw_only=True)
class ConfusionMatrix(Record):
    """Rows: true class; columns: the answer; both in the order of ``labels``."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, kw_only=True)
class ReliabilityBin(Record):
    """One bin of the reliability diagram: mean confidence against accuracy."""

    lo: float
    hi: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True, kw_only=True)
class SourceScores(Record):
    """A split's figures on the images of one data source."""

    n: int
    accuracy: float
    per_class_accuracy: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RocCurve(Record):
    """One class's ROC curve."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class PrCurve(Record):
    """One class's precision-recall curve."""

    recall: tuple[float, ...]
    precision: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class ClassCurves(Record):
    """One class's curves (one vs the rest)."""

    roc: RocCurve | None = None
    pr: PrCurve | None = None


@dataclass(frozen=True, kw_only=True)
class Prediction(Record):
    """One scored image: its probabilities in the order of the class names."""

    path: str
    probs: tuple[float, ...]
    label: str | None = None
    source: str | None = None
    split: str | None = None


@dataclass(frozen=True, kw_only=True)
class Split(Record):
    """``splits.<name>``: one split scored as the app predicts."""

    n: int | None = None
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    per_class: Mapping[str, ClassScores] = field(default_factory=dict)
    confusion_matrix: ConfusionMatrix | None = None
    ece: float | None = None
    brier: float | None = None
    reliability: tuple[ReliabilityBin, ...] = ()
    per_source: Mapping[str, SourceScores] = field(default_factory=dict)
    adults: Adults | None = None
    ci95: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    curves: Mapping[str, ClassCurves] = field(default_factory=dict)
    predictions: tuple[Prediction, ...] = ()
    views: tuple[str, ...] = ()
    seconds: float | None = None


# --- the shortcut audit ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AblationScores(Record):
    """One version of the test images (original, lungs erased, lungs only)."""

    balanced_accuracy: float
    accuracy: float | None = None
    macro_f1: float | None = None
    sensitivity: Mapping[str, float | None] = field(default_factory=dict)
    auc: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Ablation(Record):
    """``ablation``: the model on the test images with the lungs erased or kept alone."""

    n: int | None = None
    original: AblationScores | None = None
    lungs_erased: AblationScores | None = None
    lungs_only: AblationScores | None = None
    chance: float | None = None
    empty_masks: int | None = None
    verdict: str | None = None
    mask_convention: str | None = None
    seconds: float | None = None
    split: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResolutionSwap(Record):
    """One source's test images re-saved at another size: the answers that changed."""

    n: int
    longer_side: int
    changed: float
    original: AblationScores
    resaved: AblationScores


@dataclass(frozen=True, kw_only=True)
class SourceProbe(Record):
    """Within one class, a cross-validated guess of the source from the model's features."""

    sources: tuple[str, ...]
    balanced_accuracy: float
    chance: float
    n: Mapping[str, int] = field(default_factory=dict)
    confusion: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Shortcuts(Record):
    """``shortcuts``: the resolution swaps and the source probe (``evaluate audit --shortcuts``)."""

    resolution: Mapping[str, ResolutionSwap] = field(default_factory=dict)
    source_probe: Mapping[str, SourceProbe] = field(default_factory=dict)
    split: str | None = None
    command: str | None = None


@dataclass(frozen=True, kw_only=True)
class FocusSummary(Record):
    """The lung focus of a group of images."""

    n: int | None = None
    mean: float | None = None
    median: float | None = None


@dataclass(frozen=True, kw_only=True)
class Faithfulness(Record):
    """The confidence drop when the hottest area, or a random one, is blurred."""

    drop_hot: float | None = None
    drop_random: float | None = None
    score: float | None = None


@dataclass(frozen=True, kw_only=True)
class Explain(Record):
    """``explain``: one heatmap method's lung focus and faithfulness on a split."""

    method: str | None = None
    fraction: float | None = None
    n: int | None = None
    lung_focus: FocusSummary | None = None
    flat_map_focus: FocusSummary | None = None
    lung_focus_per_class: Mapping[str, FocusSummary] = field(default_factory=dict)
    lung_focus_per_source: Mapping[str, FocusSummary] = field(default_factory=dict)
    faithfulness: Faithfulness | None = None
    faithfulness_per_class: Mapping[str, Faithfulness] = field(default_factory=dict)
    seconds: float | None = None
    split: str | None = None
    command: str | None = None


@dataclass(frozen=True, kw_only=True)
class Randomised(Record):
    """One method's maps against the same network's with random weights."""

    rank_correlation: float | None = None
    rank_correlation_range: tuple[float, ...] | None = None
    hot_iou: float | None = None
    hot_iou_range: tuple[float, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Agreement(Record):
    """How far the methods' hottest regions overlap (IoU over pairs)."""

    mean: float | None = None
    median: float | None = None
    p10: float | None = None
    p90: float | None = None


@dataclass(frozen=True, kw_only=True)
class ExplainMethods(Record):
    """``explain_methods``: every heatmap method compared, keyed by method name."""

    n: int | None = None
    percent: float | None = None
    seeds: tuple[int, ...] = ()
    seed: int | None = None
    methods: tuple[str, ...] = ()
    agreement: Agreement | None = None
    pairwise_iou: Mapping[str, float | None] = field(default_factory=dict)
    lung_focus: Mapping[str, float | None] = field(default_factory=dict)
    randomised: Mapping[str, Randomised] = field(default_factory=dict)
    split: str | None = None
    command: str | None = None
    seconds: float | None = None


# --- leave one source out, the external check, the alternatives ------------------------


@dataclass(frozen=True, kw_only=True)
class LosoResult(Record):
    """A model trained without one source, on that source's images."""

    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    sensitivity: Mapping[str, float | None] = field(default_factory=dict)
    auc: Mapping[str, float | None] = field(default_factory=dict)
    n: int | None = None
    per_class_accuracy: Mapping[str, float | None] = field(default_factory=dict)
    support: Mapping[str, int] = field(default_factory=dict)
    with_views: LosoResult | None = None
    internal_test_balanced_accuracy: float | None = None

    def as_predicted(self) -> LosoResult:
        """These figures as the app predicts: averaged over the test-time views where that
        was measured (``with_views``), else on the image alone."""
        return self.with_views or self


@dataclass(frozen=True, kw_only=True)
class Loso(Record):
    """``loso`` / ``loso_full``: one result per held-out source, and the runs' schedule."""

    sources: Mapping[str, LosoResult]
    schedule: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    command: str | None = None
    commands: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SubsetCalls(Record):
    """How often the images of one subset of an outside collection got each answer."""

    n: int
    called: Mapping[str, int] = field(default_factory=dict)
    share: Mapping[str, float | None] = field(default_factory=dict)
    ci95: Mapping[str, tuple[float, ...] | None] = field(default_factory=dict)
    confident: Mapping[str, int] = field(default_factory=dict)
    confident_share: Mapping[str, float | None] = field(default_factory=dict)
    confident_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class Duplicates(Record):
    """The search of an outside collection for copies of training images."""

    similarity_threshold: float | None = None
    found: int | None = None
    highest_similarity: float | None = None


@dataclass(frozen=True, kw_only=True)
class Collection(Record):
    """One outside collection (of one class) no training image came from."""

    name: str
    label: str
    subsets: Mapping[str, SubsetCalls]
    description: str | None = None
    population: str | None = None
    n: int | None = None
    mean_probs: Mapping[str, float] = field(default_factory=dict)
    input_check_refused: int | None = None
    duplicates: Duplicates | None = None
    predictions: tuple[Prediction, ...] = ()


@dataclass(frozen=True, kw_only=True)
class External(Record):
    """``external``: the outside collections, keyed by id."""

    collections: Mapping[str, Collection] = field(default_factory=dict)
    reference_images: int | None = None
    views: int | None = None
    command: str | None = None


@dataclass(frozen=True, kw_only=True)
class AlternativeAblation(Record):
    """An alternative's score on one version of the test images."""

    balanced_accuracy: float
    covid_auc: float | None = None


@dataclass(frozen=True, kw_only=True)
class Alternative(Record):
    """``alternatives.<name>``: a model not committed, scored on a split."""

    balanced_accuracy: float
    lungs_erased: AlternativeAblation
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    train_config: Mapping[str, Any] = field(default_factory=dict)
    keras_backend: str | None = None
    params: int | None = None
    weights_sha256: str | None = None
    split: str | None = None
    n: int | None = None
    views: int | None = None
    ci95: tuple[float, ...] | None = ()
    covid_sensitivity: float | None = None
    ece: float | None = None
    lungs_only: AlternativeAblation | None = None
    chance: float | None = None
    command: str | None = None
    external: External | None = None


@dataclass(frozen=True, kw_only=True)
class Metrics(Record):
    """A whole ``<model>.metrics.json``."""

    model: str | None = None
    weights_sha256: str | None = None
    manifest: str | None = None
    splits: Mapping[str, Split] = field(default_factory=dict)
    ablation: Ablation | None = None
    explain: Explain | None = None
    shortcuts: Shortcuts | None = None
    loso: Loso | None = None
    alternatives: Mapping[str, Alternative] = field(default_factory=dict)
    loso_full: Loso | None = None
    external: External | None = None
    explain_methods: ExplainMethods | None = None

    @property
    def test(self) -> Split | None:
        """The internal test split, or None."""
        return self.splits.get("test")


def read_metrics(source: str | os.PathLike[str] | Mapping[str, Any], origin: str = "") -> Metrics:
    """A metrics file (a path, or its parsed JSON from ``origin``) read through the schema.

    Raises:
        MetricsSchemaError: A required key is missing or a value has the wrong type; the
            message names the key path and the file.
    """
    if isinstance(source, Mapping):
        data = source
    else:
        origin = str(source)
        data = json.loads(Path(source).read_text())
    try:
        return Metrics.from_dict(data)
    except SchemaError as e:
        raise MetricsSchemaError(e.key, e.problem, origin) from e


def write_metrics(path: str | os.PathLike[str], metrics: Metrics) -> None:
    """Writes ``metrics`` as JSON (one line, as :func:`read_metrics` reads it)."""
    Path(path).write_text(json.dumps(metrics.to_dict()) + "\n")

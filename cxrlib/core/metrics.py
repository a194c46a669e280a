"""The schema of ``models/<name>.metrics.json`` as pydantic models, with its reader and writer.

Absent optional keys stay absent when written back and undeclared keys are kept; fields are
declared in the order ``python -m cxrlib.evaluate`` writes them, so a round trip is exact."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import StrictFloat as Float  # JSON numbers as JSON has them: no bools, no strings
from pydantic import StrictInt as Int
from pydantic import StrictStr as Str

from cxrlib.core.errors import CxrError

#: A probability at or above which an answer counts as confident.
CONFIDENT = 0.9
#: The sources of adults' images (NIH Clinical Center): what an adult's answer is judged by.
ADULT_SOURCES = ("nih", "quex")


class MetricsSchemaError(CxrError):
    """A metrics file lacks a required key or holds a value of the wrong type."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        self.key, self.source = key, source
        where = f" in {source}" if source else ""
        super().__init__(f"'{key}'{where}: {problem}")


class Record(BaseModel):
    """A JSON object of the file: frozen, and keeping the keys it does not declare."""

    model_config = ConfigDict(frozen=True, extra="allow")


class ClassScores(Record):
    """One class's rates on a split."""

    support: Int | None = None
    sensitivity: Float | None = None
    specificity: Float | None = None
    ppv: Float | None = None
    npv: Float | None = None
    f1: Float | None = None
    auc: Float | None = None
    sensitivity_ci95: tuple[Float, ...] | None = None


class AdultGroup(Record):
    """The adult images of one class: how many, the share answered right and its interval."""

    n: Int
    sensitivity: Float | None = None  # of the pneumonias, called pneumonia
    specificity: Float | None = None  # of the normals, called normal
    ci95: tuple[Float, ...] | None = None
    answers: Mapping[Str, Int] = {}


class Adults(Record):
    """``splits.<name>.adults``: the pneumonias and normals of the adult sources."""

    sources: tuple[Str, ...]
    pneumonia: AdultGroup
    normal: AdultGroup


class ConfusionMatrix(Record):
    """Rows: true class; columns: the answer; both in the order of ``labels``."""

    labels: tuple[Str, ...]
    matrix: tuple[tuple[Int, ...], ...]


class ReliabilityBin(Record):
    """One bin of the reliability diagram: mean confidence against accuracy."""

    lo: Float
    hi: Float
    count: Int
    confidence: Float
    accuracy: Float


class SourceScores(Record):
    """A split's figures on the images of one data source."""

    n: Int
    accuracy: Float
    per_class_accuracy: Mapping[Str, Float | None] = {}


class RocCurve(Record):
    fpr: tuple[Float, ...]
    tpr: tuple[Float, ...]


class PrCurve(Record):
    recall: tuple[Float, ...]
    precision: tuple[Float, ...]


class ClassCurves(Record):
    """One class's curves (one vs the rest)."""

    roc: RocCurve | None = None
    pr: PrCurve | None = None


class Prediction(Record):
    """One scored image: its probabilities in the order of the class names."""

    path: Str
    label: Str | None = None
    source: Str | None = None
    split: Str | None = None
    probs: tuple[Float, ...]


class Split(Record):
    """``splits.<name>``: one split scored as the app predicts."""

    n: Int | None = None
    accuracy: Float | None = None
    balanced_accuracy: Float | None = None
    macro_f1: Float | None = None
    per_class: Mapping[Str, ClassScores] = {}
    confusion_matrix: ConfusionMatrix | None = None
    ece: Float | None = None
    brier: Float | None = None
    reliability: tuple[ReliabilityBin, ...] = ()
    per_source: Mapping[Str, SourceScores] = {}
    adults: Adults | None = None
    ci95: Mapping[Str, tuple[Float, ...]] = {}
    curves: Mapping[Str, ClassCurves] = {}
    predictions: tuple[Prediction, ...] = ()
    views: tuple[Str, ...] = ()
    seconds: Float | None = None


class Scores(Record):
    """A model's scores on a set of images, per class where keyed by class name."""

    accuracy: Float | None = None
    balanced_accuracy: Float | None = None
    macro_f1: Float | None = None
    sensitivity: Mapping[Str, Float | None] = {}
    auc: Mapping[Str, Float | None] = {}


class AblationScores(Scores):
    """One version of the test images (original, lungs erased, lungs only)."""

    balanced_accuracy: Float


class Ablation(Record):
    """``ablation``: the model on the test images with the lungs erased or kept alone."""

    n: Int | None = None
    original: AblationScores | None = None
    lungs_erased: AblationScores | None = None
    lungs_only: AblationScores | None = None
    chance: Float | None = None
    empty_masks: Int | None = None
    verdict: Str | None = None
    mask_convention: Str | None = None
    seconds: Float | None = None
    split: Str | None = None
    command: Str | None = None


class ResolutionSwap(Record):
    """One source's test images re-saved at another size: the answers that changed."""

    n: Int
    longer_side: Int
    changed: Float
    original: AblationScores
    resaved: AblationScores


class SourceProbe(Record):
    """Within one class, a cross-validated guess of the source from the model's features."""

    sources: tuple[Str, ...]
    n: Mapping[Str, Int] = {}
    balanced_accuracy: Float
    chance: Float
    confusion: tuple[tuple[Int, ...], ...] = ()


class Shortcuts(Record):
    """``shortcuts``: the resolution swaps and the source probe (``evaluate audit --shortcuts``)."""

    resolution: Mapping[Str, ResolutionSwap] = {}
    source_probe: Mapping[Str, SourceProbe] = {}
    split: Str | None = None
    command: Str | None = None


class FocusSummary(Record):
    """The lung focus of a group of images."""

    n: Int | None = None
    mean: Float | None = None
    median: Float | None = None


class Faithfulness(Record):
    """The confidence drop when the hottest area, or a random one, is blurred."""

    drop_hot: Float | None = None
    drop_random: Float | None = None
    score: Float | None = None


class Explain(Record):
    """``explain``: one heatmap method's lung focus and faithfulness on a split."""

    method: Str | None = None
    fraction: Float | None = None
    n: Int | None = None
    lung_focus: FocusSummary | None = None
    flat_map_focus: FocusSummary | None = None
    lung_focus_per_class: Mapping[Str, FocusSummary] = {}
    lung_focus_per_source: Mapping[Str, FocusSummary] = {}
    faithfulness: Faithfulness | None = None
    faithfulness_per_class: Mapping[Str, Faithfulness] = {}
    seconds: Float | None = None
    split: Str | None = None
    command: Str | None = None


class Randomised(Record):
    """One method's maps against the same network's with random weights."""

    rank_correlation: Float | None = None
    rank_correlation_range: tuple[Float, ...] | None = None
    hot_iou: Float | None = None
    hot_iou_range: tuple[Float, ...] | None = None


class Agreement(Record):
    """How far the methods' hottest regions overlap (IoU over pairs)."""

    mean: Float | None = None
    median: Float | None = None
    p10: Float | None = None
    p90: Float | None = None


class ExplainMethods(Record):
    """``explain_methods``: every heatmap method compared, keyed by method name."""

    n: Int | None = None
    percent: Float | None = None
    seeds: tuple[Int, ...] = ()
    seed: Int | None = None
    methods: tuple[Str, ...] = ()
    agreement: Agreement | None = None
    pairwise_iou: Mapping[Str, Float | None] = {}
    lung_focus: Mapping[Str, Float | None] = {}
    randomised: Mapping[Str, Randomised] = {}
    seconds: Float | None = None
    split: Str | None = None
    command: Str | None = None


class LosoResult(Scores):
    """A model trained without one source, on that source's images."""

    n: Int | None = None
    per_class_accuracy: Mapping[Str, Float | None] = {}
    support: Mapping[Str, Int] = {}
    with_views: LosoResult | None = None
    internal_test_balanced_accuracy: Float | None = None

    def as_predicted(self) -> LosoResult:
        """These figures as the app predicts: over the test-time views where measured."""
        return self.with_views or self


class Loso(Record):
    """``loso`` / ``loso_full``: one result per held-out source, and the runs' schedule."""

    schedule: Mapping[Str, Any] = {}
    sources: Mapping[Str, LosoResult]
    description: Str | None = None
    command: Str | None = None
    commands: tuple[Str, ...] = ()


class SubsetCalls(Record):
    """How often the images of one subset of an outside collection got each answer."""

    n: Int
    called: Mapping[Str, Int] = {}
    share: Mapping[Str, Float | None] = {}
    ci95: Mapping[Str, tuple[Float, ...] | None] = {}
    confident: Mapping[Str, Int] = {}
    confident_share: Mapping[Str, Float | None] = {}
    confident_at: Float | None = None


class Duplicates(Record):
    """The search of an outside collection for copies of training images."""

    similarity_threshold: Float | None = None
    found: Int | None = None
    highest_similarity: Float | None = None


class Collection(Record):
    """One outside collection (of one class) no training image came from."""

    name: Str
    description: Str | None = None
    label: Str
    population: Str | None = None
    n: Int | None = None
    subsets: Mapping[Str, SubsetCalls]
    mean_probs: Mapping[Str, Float] = {}
    input_check_refused: Int | None = None
    duplicates: Duplicates | None = None
    predictions: tuple[Prediction, ...] = ()


class External(Record):
    """``external``: the outside collections, keyed by id."""

    collections: Mapping[Str, Collection] = {}
    reference_images: Int | None = None
    views: Int | None = None
    command: Str | None = None


class AlternativeAblation(Record):
    """An alternative's score on one version of the test images."""

    balanced_accuracy: Float
    covid_auc: Float | None = None


class Alternative(Record):
    """``alternatives.<name>``: a model not committed, scored on a split."""

    preprocess: Mapping[Str, Any] = {}
    train_config: Mapping[Str, Any] = {}
    keras_backend: Str | None = None
    params: Int | None = None
    weights_sha256: Str | None = None
    split: Str | None = None
    n: Int | None = None
    views: Int | None = None
    balanced_accuracy: Float
    ci95: tuple[Float, ...] | None = ()
    covid_sensitivity: Float | None = None
    ece: Float | None = None
    lungs_erased: AlternativeAblation
    lungs_only: AlternativeAblation | None = None
    chance: Float | None = None
    command: Str | None = None
    external: External | None = None


class Metrics(Record):
    """A whole ``<model>.metrics.json``."""

    model: Str | None = None
    weights_sha256: Str | None = None
    manifest: Str | None = None
    splits: Mapping[Str, Split] = {}
    ablation: Ablation | None = None
    explain: Explain | None = None
    loso: Loso | None = None
    alternatives: Mapping[Str, Alternative] = {}
    loso_full: Loso | None = None
    external: External | None = None
    explain_methods: ExplainMethods | None = None
    shortcuts: Shortcuts | None = None

    @property
    def test(self) -> Split | None:
        """The internal test split, or None."""
        return self.splits.get("test")


def read_metrics(source: str | os.PathLike[str] | Mapping[str, Any], origin: str = "") -> Metrics:
    """A metrics file (a path, or its parsed JSON from ``origin``) read through the schema.

    Raises:
        MetricsSchemaError: A required key is missing or a value has the wrong type.
    """
    if isinstance(source, Mapping):
        data = source
    else:
        origin = str(source)
        data = json.loads(Path(source).read_text())
    try:
        return Metrics.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        problem = "required key is missing" if first["type"] == "missing" else first["msg"]
        raise MetricsSchemaError(key.lstrip("."), problem, origin) from e


def write_metrics(path: str | os.PathLike[str], metrics: Metrics) -> None:
    """Writes ``metrics`` as JSON (one line, as :func:`read_metrics` reads it)."""
    Path(path).write_text(json.dumps(metrics.model_dump(mode="json", exclude_unset=True)) + "\n")

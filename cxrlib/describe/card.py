"""The model card as one Markdown file, in the sections of Mitchell et al. 2019 ("Model
Cards for Model Reporting"), with the numbers behind every figure of the Metrics page; the
Model card page shows the same sections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Metrics, Split
from cxrlib.describe import (
    audit_text,
    comparison,
    external_text,
    loso_text,
    methods_text,
    modelcard,
    results,
)
from cxrlib.describe.prose import caveats, frame, markdown_table, prose

TITLE = "Model card: CXR Lens chest X-ray classifier"


def factors_markdown(meta: dict[str, Any]) -> str:
    """The factors (confounds) and what the model's input framing does about them."""
    pre = meta.get("preprocess") or {}
    parts = [prose("factors")]
    if pre.get("lung_crop"):
        parts.append(prose("lung_crop"))
    if pre.get("lung_mask"):
        parts.append(prose("lung_mask"))
    return "\n\n".join(parts)


def model_details_markdown(meta: dict[str, Any], model_file: str) -> str:
    """What the model is, how it was made and how to make it again."""
    if not meta:
        return f"No model description found next to `{model_file}`."
    cfg = meta.get("train_config") or {}
    lines = [
        "- **Preprocessing** (the same for training, evaluation and this app): "
        + modelcard.describe_preprocessing(meta.get("preprocess") or {}),
        f"- **Architecture:** {modelcard.describe_architecture(cfg)}, trained from scratch (no "
        f"pretrained weights), {int(meta.get('params', 0)):,} parameters; Grad-CAM layer "
        "`last_conv`.",
        "- **Probabilities:** " + modelcard.describe_calibration(meta),
    ]
    if cfg:
        lines.append("- **Batches:** " + modelcard.describe_training(cfg))
    if meta.get("best_epoch"):
        lines.append(
            f"- **Training:** best epoch {meta['best_epoch']} of "
            f"{meta.get('epochs_run', '?')} (validation macro-F1), "
            f"{float(meta.get('train_seconds', 0)) / 60:.0f} min, "
            f"Keras {meta.get('keras_version', '?')}."
        )
    lines += [
        f"- **Model file** `{model_file}`",
        f"- **Weights SHA-256** `{meta.get('weights_sha256') or 'unknown'}`",
        f"- **Seed** {meta.get('seed', 'unknown')}",
    ]
    if meta.get("manifest_sha256"):
        lines.append(f"- **Training manifest SHA-256** `{meta['manifest_sha256']}`")
    commands = modelcard.making_commands(meta)
    return "\n".join([*lines, "", "Commands that made it:", "", "```bash", commands, "```"])


#: The heading of :func:`adult_patient_lines`.
ADULT_PATIENT = "For an adult patient"


def adult_patient_lines(metrics: Metrics, split_name: str = "test") -> list[str]:
    """What matters most for an adult patient (markdown): the split's adult figures, then
    what a model that never saw the adult source found of it."""
    split = metrics.splits.get(split_name)
    adults = results.describe_adults(split) if split is not None else None
    unseen = loso_text.describe_unseen_adults(metrics)
    return ([adults] if adults else []) + [
        f"**At a hospital it has not seen.** {u}" for u in unseen
    ]


def caveats_markdown() -> str:
    """The most important caveats, each naming the Metrics tab with its evidence, then the
    recommendations."""
    lines = [
        f"- **{c.title}.** {c.body} Evidence: the Metrics page, tab *{c.tab}*." for c in caveats()
    ]
    return "\n".join(lines) + "\n\n**Recommendations**\n\n" + prose("recommendations")


def _confusion_table(split: Split) -> Any:
    cm = split.confusion_matrix
    if cm is None or not cm.matrix:
        return pd.DataFrame()
    df = pd.DataFrame(cm.matrix, index=list(cm.labels), columns=list(cm.labels))
    df.index.name = "true \\ predicted"
    return df


def _reliability_table(split: Split) -> Any:
    rows = [
        {
            "probability": f"{b.lo:.2f}-{b.hi:.2f}",
            "images": b.count,
            "mean confidence": pct(b.confidence, 1),
            "accuracy": b.accuracy,
        }
        for b in split.reliability
    ]
    return frame(rows, "probability")


def _split_blocks(name: str, split: Split) -> Iterator[str]:
    """One split's headline, confusion matrix, per-class, calibration and per-source figures."""
    yield results.describe_headline(split, name)
    yield "Confusion matrix (rows: true class):\n\n" + markdown_table(_confusion_table(split))
    yield "Per class:\n\n" + markdown_table(results.per_class_table(split))
    reliability = results.describe_reliability(split)
    if reliability:
        yield f"Calibration: {reliability} Reliability:\n\n" + markdown_table(
            _reliability_table(split)
        )
    yield "By source:\n\n" + markdown_table(results.per_source_table(split))


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _block(title: str, *parts: str | None) -> str:
    """A bold title, then each non-empty part as its own paragraph."""
    return "\n\n".join([f"**{title}.**", *(p for p in parts if p)])


def _outside_blocks(metrics: Metrics) -> Iterator[str]:
    """The leave-one-source-out runs and the outside collection, in words and as tables."""
    for key, title in (
        ("loso_full", "Leave one source out, the full recipe"),
        ("loso", "Leave one source out"),
    ):
        lo = getattr(metrics, key)
        if lo is not None:
            lines = loso_text.describe_loso(lo) if key == "loso_full" else []
            yield _block(
                title, prose(key), _bullets(lines), markdown_table(loso_text.loso_table(lo))
            )
    if metrics.external is not None:
        yield _block(
            "A collection it never trained on",
            _bullets(external_text.describe_external(metrics.external)),
            markdown_table(external_text.external_table(metrics.external)),
            prose("external_note"),
        )


def _audit_blocks(meta: dict[str, Any], metrics: Metrics) -> Iterator[str]:
    """The shortcut audit, the heatmap checks and the models not chosen."""
    ab, cuts, ex, em = metrics.ablation, metrics.shortcuts, metrics.explain, metrics.explain_methods
    if ab is not None:
        yield _block(
            "Ablation: lungs erased, lungs only",
            ab.verdict,
            markdown_table(audit_text.ablation_table(ab)),
        )
    if cuts is not None:
        yield _block("Resolution and hospital", _bullets(audit_text.describe_shortcuts(cuts)))
    if ex is not None:
        t = audit_text.explain_tables(ex)
        yield _block(
            "Lung focus of the heatmaps",
            audit_text.describe_lung_focus(ex),
            markdown_table(t["per_class"]),
            markdown_table(t["per_source"]),
        )
    if em is not None:
        yield _block(
            "Do the heatmap methods agree, and do they explain the model?",
            *methods_text.describe_methods(em),
            markdown_table(methods_text.methods_table(em)),
        )
    rows = comparison.comparisons(meta, metrics)
    if len(rows) > 1:
        yield _block(
            "Why not a model that scores higher?",
            _bullets(comparison.describe_comparisons(rows, comparison.chance(metrics))),
            comparison.comparison_note(rows),
            markdown_table(comparison.comparison_table(rows)),
        )


def quantitative_markdown(meta: dict[str, Any], metrics: Metrics) -> str:
    """Every figure of the metrics file the Metrics page shows, in words and tables."""
    blocks = []
    for name in results.split_order(metrics.splits):
        split = metrics.splits[name]
        blocks.append(f"### {results.split_label(name).capitalize()}")
        blocks.extend(_split_blocks(name, split))
    adults = adult_patient_lines(metrics)
    if adults:
        blocks.append(f"### {ADULT_PATIENT}\n\n" + _bullets(adults))
    blocks.append("### Beyond the internal test split")
    blocks.extend(_outside_blocks(metrics))
    blocks.extend(_audit_blocks(meta, metrics))
    return "\n\n".join(b for b in blocks if b)


def model_card_markdown(meta: dict[str, Any], metrics: Metrics, model_file: str) -> str:
    """The whole model card as one Markdown document."""
    training = "\n\n".join(
        [
            markdown_table(modelcard.training_data_table(meta)),
            modelcard.describe_training_data(meta),
            prose("training_note"),
        ]
    )
    sections = (
        ("Model details", model_details_markdown(meta, model_file)),
        ("Intended use", prose("not_for_diagnosis") + "\n\n" + prose("intended_use")),
        ("Factors", factors_markdown(meta)),
        ("Metrics", prose("metrics_chosen")),
        ("Evaluation data", prose("evaluation_data")),
        ("Training data", training),
        ("Quantitative analyses", quantitative_markdown(meta, metrics)),
        ("Ethical considerations", prose("ethics")),
        ("Caveats and recommendations", caveats_markdown()),
        ("Data licences and citations", prose("citations")),
    )
    body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
    return f"# {TITLE}\n\n{body}\n"

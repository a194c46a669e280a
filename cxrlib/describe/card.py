"""The model card as one Markdown file, in the sections of Mitchell et al. 2019 ("Model
Cards for Model Reporting"): the model's JSON and every figure of the Metrics page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Metrics, Split
from cxrlib.describe import audit_text, comparison, outside_text, results
from cxrlib.describe.prose import caveats, frame, join, markdown_rows, markdown_table, prose

TITLE = "Model card: CXR Lens chest X-ray classifier"


def describe_preprocessing(pre: dict[str, Any]) -> str:
    """How a model's input is made, from its JSON ``preprocess``."""
    geometry = "squash" if pre.get("geometry", "resize") == "resize" else "pad"
    size = pre.get("size", "?")
    if pre.get("lung_crop"):
        framing = (
            "crop to the lung fields found by the lung segmenter (plus "
            f"{pct(float(pre.get('lung_margin', 0)))} of the image on each side; the "
            "whole image when no lungs are found)"
        )
    else:
        framing = f"crop {pct(float(pre.get('border_crop', 0)))} of each border"
    return (
        f"decode to 8-bit grayscale; {framing}; {geometry} to {size} x {size} px; "
        f"contrast `{pre.get('contrast', '?')}`."
    )


#: Each augmentation setting of ``train_config["augment"]`` and how to say it.
_AUGMENT_WORDS = (
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
)


def describe_architecture(cfg: dict[str, Any]) -> str:
    """A model's trunk, from its JSON ``train_config``."""
    arch = cfg.get("arch", "?")
    if arch == "mobilenetv2":
        return f"`mobilenetv2` (MobileNetV2 cut at stride 16, width {cfg.get('alpha')})"
    return f"`{arch}`"


def making_commands(meta: dict[str, Any]) -> str:
    """The commands that made a model, one per line: training, then any later step."""
    steps = [meta.get("post_training") or {}, meta.get("test_time_views") or {}]
    lines = [meta.get("command") or "python -m cxrlib.train --data ../shared/cxr --out models/"]
    lines += [step["command"] for step in steps if step.get("command")]
    return "\n".join(lines)


#: How the app names the test-time views (cxrlib.infer.views.DEFAULT_VIEWS) to a reader.
COPIES = "slightly shifted, zoomed, darker and brighter copies"


def describe_calibration(meta: dict[str, Any]) -> str:
    """How a model's probabilities are made (temperature, test-time views)."""
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


def describe_scoring(split: Split) -> str:
    """How a saved split's predictions were made."""
    if len(split.views) > 1:
        return (
            f"Each image scored as the app scores it: the mean over the image and "
            f"{len(split.views) - 1} {COPIES}."
        )
    return "Each image scored once, as it is."


def describe_training(cfg: dict[str, Any]) -> str:
    """A model's batches and augmentation, from its JSON ``train_config``."""
    power = cfg.get("sampling_power")
    floor = int(cfg.get("sampling_floor", 1) or 1)
    sampling = "class-balanced batches"
    if power is not None:
        sampling += f"; within a class, a source of n images weighs n^{power:g}"
        if floor > 1:
            sampling += f" (sources under {floor} images weighted as {floor})"
    aug = cfg.get("augment") or {}
    used = [words.format(aug[k]) for k, words in _AUGMENT_WORDS if aug.get(k)]
    augmentation = "augmentation: " + ", ".join(used) if used else "no augmentation"
    return f"{sampling}; {augmentation}."


def training_data_table(meta: dict[str, Any]) -> Any:
    """Each source of ``text/sources.md`` with the images of each class this model trained
    on, totals last."""
    counts: dict[str, dict[str, int]] = {}
    for key, n in (meta.get("train_counts") or {}).items():
        source, _, label = str(key).partition("/")
        counts.setdefault(source, {})[label] = int(n)
    labels = sorted({c for per in counts.values() for c in per})
    notes = {row["source"]: row for row in markdown_rows("sources")}
    rows = [
        {
            "source": source,
            **{c: counts.get(source, {}).get(c, 0) for c in labels},
            "total": sum(counts.get(source, {}).values()),
            **{k: notes.get(source, {}).get(k) for k in ("what it is", "stored as", "licence")},
        }
        for source in [*notes, *(s for s in counts if s not in notes)]
    ]
    df = pd.DataFrame(rows).set_index("source")
    df.loc["total"] = {c: df[c].sum() for c in [*labels, "total"]}
    return df


def describe_training_data(meta: dict[str, Any]) -> str:
    """The training split's size, and the sources this model did not train on."""
    text = (
        f"This model's training split of `../shared/cxr`: {int(meta.get('n_train', 0)):,} "
        f"images ({int(meta.get('n_val', 0)):,} more for validation)."
    )
    trained = {str(k).partition("/")[0] for k in meta.get("train_counts") or {}}
    unused = [row["source"] for row in markdown_rows("sources") if row["source"] not in trained]
    if trained and unused:
        text += (
            f" {join(unused)} joined the data after this model was trained: it never trained "
            f"on {'its' if len(unused) == 1 else 'their'} images, and the test figures include "
            "them."
        )
    return text


def factors_markdown(meta: dict[str, Any]) -> str:
    """The factors (confounds) and what the model's input framing does about them."""
    if (meta.get("preprocess") or {}).get("lung_crop"):
        return prose("factors") + "\n\n" + prose("lung_crop")
    return prose("factors")


def model_details_markdown(meta: dict[str, Any], model_file: str) -> str:
    """What the model is, how it was made and how to make it again."""
    if not meta:
        return f"No model description found next to `{model_file}`."
    cfg = meta.get("train_config") or {}
    lines = [
        "- **Preprocessing** (the same for training, evaluation and this app): "
        + describe_preprocessing(meta.get("preprocess") or {}),
        f"- **Architecture:** {describe_architecture(cfg)}, trained from scratch (no "
        f"pretrained weights), {int(meta.get('params', 0)):,} parameters; Grad-CAM layer "
        "`last_conv`.",
        "- **Probabilities:** " + describe_calibration(meta),
    ]
    if cfg:
        lines.append("- **Batches:** " + describe_training(cfg))
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
    commands = ["", "Commands that made it:", "", "```bash", making_commands(meta), "```"]
    return "\n".join(lines + commands)


ADULT_PATIENT = "For an adult patient"
#: Before each adult leave-one-source-out line: nih and quex share a hospital (and radiography
#: holds its images), so a held-out collection is not a hospital the model has never seen.
UNSEEN_ADULT_COLLECTION = "**An adult collection it did not train on.**"


def adult_patient_lines(metrics: Metrics, split_name: str = "test") -> list[str]:
    """The split's adult figures, then what a model that never saw an adult source found."""
    split = metrics.splits.get(split_name)
    adults = results.describe_adults(split) if split is not None else None
    return ([adults] if adults else []) + [
        f"{UNSEEN_ADULT_COLLECTION} {u}" for u in outside_text.describe_unseen_adults(metrics)
    ]


def caveat_figures(metrics: Metrics) -> dict[str, list[str]]:
    """Figures shown under a caveat, by the Metrics tab of its evidence: the source probe, in
    words, under the caveat about shortcuts (what a model trained without an adult source
    found of it is under Quantitative analyses, and leads the Metrics page)."""
    probe = (
        audit_text.describe_source_probe_plainly(metrics.shortcuts) if metrics.shortcuts else None
    )
    return {"Shortcut audit": [probe]} if probe else {}


def caveats_markdown(metrics: Metrics) -> str:
    """The caveats, each with its measured figures and the Metrics tab of its evidence, then
    the recommendations."""
    figures = caveat_figures(metrics)
    lines = [
        f"- **{c.title}.** {' '.join([c.body, *figures.get(c.tab, [])])} "
        f"Evidence: the Metrics page, tab *{c.tab}*."
        for c in caveats()
    ]
    return "\n".join(lines) + "\n\n**Recommendations**\n\n" + prose("recommendations")


def _split_blocks(name: str, split: Split) -> Iterator[str]:
    """One split's figures, in words and tables."""
    yield results.describe_headline(split, name)
    cm, confusion = split.confusion_matrix, ""
    if cm is not None and cm.matrix:
        labels = pd.Index(cm.labels, name="true \\ predicted")
        confusion = markdown_table(pd.DataFrame(cm.matrix, index=labels, columns=list(cm.labels)))
    yield "Confusion matrix (rows: true class):\n\n" + confusion
    yield "Per class:\n\n" + markdown_table(results.per_class_table(split))
    reliability = results.describe_reliability(split)
    if reliability:
        bins = [
            {
                "probability": f"{b.lo:.2f}-{b.hi:.2f}",
                "images": b.count,
                "mean confidence": pct(b.confidence, 1),
                "accuracy": b.accuracy,
            }
            for b in split.reliability
        ]
        yield f"Calibration: {reliability} Reliability:\n\n" + markdown_table(
            frame(bins, "probability")
        )
    yield "By source:\n\n" + markdown_table(results.per_source_table(split))


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _block(title: str, *parts: str | None) -> str:
    """A bold title, then each non-empty part as its own paragraph."""
    return "\n\n".join([f"**{title}.**", *(p for p in parts if p)])


def _outside_blocks(metrics: Metrics) -> Iterator[str]:
    """The leave-one-source-out runs and the outside collection."""
    for key, title in (
        ("loso_full", "Leave one source out, the full recipe"),
        ("loso", "Leave one source out"),
    ):
        lo = getattr(metrics, key)
        if lo is not None:
            lines = outside_text.describe_loso(lo) if key == "loso_full" else []
            yield _block(
                title, prose(key), _bullets(lines), markdown_table(outside_text.loso_table(lo))
            )
    if metrics.external is not None:
        yield _block(
            "A collection it never trained on",
            _bullets(outside_text.describe_external(metrics.external)),
            markdown_table(outside_text.external_table(metrics.external)),
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
            *audit_text.describe_methods(em),
            markdown_table(audit_text.methods_table(em)),
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
    """Every figure the Metrics page shows, in words and tables."""
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
    training = [markdown_table(training_data_table(meta)), describe_training_data(meta)]
    sections = (
        ("Model details", model_details_markdown(meta, model_file)),
        ("Intended use", prose("not_for_diagnosis") + "\n\n" + prose("intended_use")),
        ("Factors", factors_markdown(meta)),
        ("Metrics", prose("metrics_chosen")),
        ("Evaluation data", prose("evaluation_data")),
        ("Training data", "\n\n".join([*training, prose("training_note")])),
        ("Quantitative analyses", quantitative_markdown(meta, metrics)),
        ("Ethical considerations", prose("ethics")),
        ("Caveats and recommendations", caveats_markdown(metrics)),
        ("Data licences and citations", prose("citations")),
    )
    body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
    return f"# {TITLE}\n\n{body}\n"

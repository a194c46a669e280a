"""A model described in words, from its JSON: how it sees, learns and scores, the commands
that made it, and its training data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import Split
from cxrlib.describe.prose import join, markdown_rows


def describe_preprocessing(pre: dict[str, Any]) -> str:
    """One sentence on how a model's input is made, from its JSON ``preprocess``."""
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
    if pre.get("lung_mask"):
        framing += (
            "; fill everything outside the lung mask (widened by "
            f"{pct(float(pre.get('mask_dilation', 0)))} of the image) with the lungs' mean"
        )
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
    """The trunk a model was built with, from its JSON ``train_config``."""
    arch = cfg.get("arch", "?")
    if arch == "mobilenetv2":
        return f"`mobilenetv2` (MobileNetV2 cut at stride 16, width {cfg.get('alpha')})"
    if arch == "resnet":
        width = cfg.get("width")
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


#: How the app names the test-time views (cxrlib.infer.views.DEFAULT_VIEWS) to a reader.
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


def describe_scoring(split: Split) -> str:
    """How a saved split's predictions were made (one view, or the mean over its views)."""
    views = split.views
    if len(views) > 1:
        return (
            f"Each image scored as the app scores it: the mean over the image and "
            f"{len(views) - 1} {COPIES}."
        )
    return "Each image scored once, as it is."


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
    return f"{sampling}; {augmentation}."


def training_data_table(meta: dict[str, Any]) -> Any:
    """Each source of ``../shared/cxr`` (``text/sources.md``) with the images of each class
    this model trained on (its JSON ``train_counts``), a total row and column last."""
    counts: dict[str, dict[str, int]] = {}
    for key, n in (meta.get("train_counts") or {}).items():
        source, _, label = str(key).partition("/")
        counts.setdefault(source, {})[label] = int(n)
    labels = sorted({c for per in counts.values() for c in per})
    notes = {row["source"]: row for row in markdown_rows("sources")}
    rows = []
    for source in [*notes, *(s for s in counts if s not in notes)]:
        per = counts.get(source, {})
        note = notes.get(source, {})
        rows.append(
            {
                "source": source,
                **{c: per.get(c, 0) for c in labels},
                "total": sum(per.values()),
                "what it is": note.get("what it is"),
                "stored as": note.get("stored as"),
                "licence": note.get("licence"),
            }
        )
    df = pd.DataFrame(rows).set_index("source")
    df.loc["total"] = {c: df[c].sum() for c in [*labels, "total"]}
    return df


def describe_training_data(meta: dict[str, Any]) -> str:
    """The training split's size, and any source of the data this model did not train on."""
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


def describe_input_and_trunk(pre: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    """A few words on what a model sees and its trunk: 'the whole image, ResNet (64), 128 px'."""
    if pre.get("lung_mask"):
        sees = "the lungs only (masked)"
    elif pre.get("lung_crop"):
        margin = pre.get("lung_margin")
        sees = "the lung box" + (f" + {pct(float(margin))}" if margin is not None else "")
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

"""What makes a model, as a training record states it: the recipe two records share when
they differ only in seed.

A record lacks the settings added after it was written (models/cxr_classifier.json lacks
``width``, ``sampling_floor``, ``lung_mask`` and ``mask_dilation``); it trained with their
defaults, which are those of the training configs (tests/describe/test_comparison.py checks
that they agree). Settings of options training no longer offers compare at their "off" value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Each setting of a ``train_config`` (less ``preprocess`` and ``augment``) and its default.
TRAIN_DEFAULTS: Mapping[str, Any] = {
    "arch": "mobilenetv2",
    "alpha": 0.5,
    "width": None,
    "epochs": 14,
    "batch_size": 32,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "patience": 4,
    "seed": 0,
    "sampling_power": 0.5,
    "sampling_floor": 1,
    "steps_per_epoch": None,
    "exclude_sources": [],
}

#: Retired training options at their "off" value.
RETIRED_TRAIN: Mapping[str, Any] = {"ema": 0.0, "adversary": 0.0}

#: The same for ``preprocess``.
PREPROCESS_DEFAULTS: Mapping[str, Any] = {
    "size": 160,
    "geometry": "resize",
    "contrast": "clahe",
    "border_crop": 0.0,
    "clahe_clip": 2.0,
    "clahe_grid": 8,
    "lung_crop": False,
    "lung_margin": 0.04,
}

#: Retired preprocessing options at their "off" value.
RETIRED_PREPROCESS: Mapping[str, Any] = {"lung_mask": False, "mask_dilation": 0.02}

#: The same for ``augment``.
AUGMENT_DEFAULTS: Mapping[str, Any] = {
    "rotate_deg": 10.0,
    "scale": 0.12,
    "shift": 0.08,
    "gamma": 0.35,
    "contrast": 0.2,
    "p_blur": 0.2,
    "p_noise": 0.2,
    "p_downscale": 0.25,
    "p_jpeg": 0.2,
    "p_text": 0.3,
}

#: Retired augmentations at their "off" value.
RETIRED_AUGMENT: Mapping[str, Any] = {
    "p_erase_lungs": 0.0,
    "p_lungs_only": 0.0,
    "mixup": 0.0,
    "p_tone": 0.0,
    "p_bias": 0.0,
    "tone_knots": 4,
    "tone_concentration": 8.0,
    "bias": 0.3,
}

#: Bookkeeping, not recipe.
NOT_RECIPE = ("seed", "steps_per_epoch")


def _filled(record: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``record``'s settings of ``defaults``, the ones it lacks at their default."""
    return {k: record.get(k, v) for k, v in defaults.items()}


def recipe(preprocess: Mapping[str, Any], train_config: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting that makes a model, less its seed and schedule bookkeeping."""
    out = _filled(train_config, {**TRAIN_DEFAULTS, **RETIRED_TRAIN})
    out["exclude_sources"] = list(train_config.get("exclude_sources") or ())
    out["preprocess"] = _filled(preprocess, {**PREPROCESS_DEFAULTS, **RETIRED_PREPROCESS})
    out["augment"] = _filled(
        train_config.get("augment") or {}, {**AUGMENT_DEFAULTS, **RETIRED_AUGMENT}
    )
    return {k: v for k, v in out.items() if k not in NOT_RECIPE}

"""What makes a model, as a training record states it: the recipe two records share when
they differ only in seed.

A record written before a setting existed lacks it; it trained with the setting's value
below (the value the setting had before it was added, which is also its default in
:class:`cxrlib.train.config.TrainConfig`, :class:`cxrlib.infer.preprocess.PreprocessConfig`
and :class:`cxrlib.train.augment.AugmentConfig`; tests/describe/test_comparison.py checks
that they agree). The alternatives in a metrics file are records too, some of them of options
training no longer offers: those settings are compared at the value that meant "off".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Each training setting of a ``train_config`` and the value a record that lacks it
#: trained with (less ``preprocess`` and ``augment``, below).
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

#: Settings of retired training options, at the value that meant "off".
RETIRED_TRAIN: Mapping[str, Any] = {"ema": 0.0, "adversary": 0.0}

#: The same for a ``preprocess`` record.
PREPROCESS_DEFAULTS: Mapping[str, Any] = {
    "size": 160,
    "geometry": "resize",
    "contrast": "clahe",
    "border_crop": 0.0,
    "clahe_clip": 2.0,
    "clahe_grid": 8,
    "lung_crop": False,
    "lung_margin": 0.04,
    "lung_mask": False,
    "mask_dilation": 0.02,
}

#: The same for an ``augment`` record.
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

#: The same for retired augmentations.
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

#: Settings that are bookkeeping, not recipe: two runs that differ only here are one recipe.
NOT_RECIPE = ("seed", "steps_per_epoch")


def _filled(record: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``record``'s known settings, the ones it lacks at their defaults (retired ones dropped)."""
    return {k: record.get(k, v) for k, v in defaults.items()}


def recipe(preprocess: Mapping[str, Any], train_config: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a model, less its seed and the schedule's bookkeeping, every setting spelled
    out (a record's ``preprocess`` is the one it trained with)."""
    out = _filled(train_config, {**TRAIN_DEFAULTS, **RETIRED_TRAIN})
    out["exclude_sources"] = list(train_config.get("exclude_sources") or ())
    out["preprocess"] = _filled(preprocess, PREPROCESS_DEFAULTS)
    out["augment"] = _filled(
        train_config.get("augment") or {}, {**AUGMENT_DEFAULTS, **RETIRED_AUGMENT}
    )
    return {k: v for k, v in out.items() if k not in NOT_RECIPE}

"""cxrlib.train.augment: training-time perturbations."""

from __future__ import annotations

import numpy as np

from cxrlib.train.augment import AugmentConfig, augment

OFF = AugmentConfig(**dict.fromkeys(AugmentConfig.model_fields, 0.0))


def test_augment_keeps_shape_and_type_and_is_seeded() -> None:
    img = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    a = augment(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, augment(img, np.random.default_rng(3)))
    assert not np.array_equal(a, img)
    np.testing.assert_array_equal(augment(img, np.random.default_rng(3), OFF), img)


def test_config_round_trips() -> None:
    cfg = AugmentConfig(p_jpeg=0.0, p_blur=0.15)
    assert AugmentConfig.model_validate(cfg.model_dump(mode="json")) == cfg != AugmentConfig()

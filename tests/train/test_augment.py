"""cxrlib.train.augment: training-time perturbations and the lung ablations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cxrlib.train.augment import AugmentConfig, augment, brightness_field, lung_ablation, tone_curve

OFF = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@pytest.fixture()
def chest() -> tuple[np.ndarray, np.ndarray]:
    """A textured 64 x 64 'image' whose 'lungs' are two rectangles."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    lungs = np.zeros((64, 64), bool)
    lungs[10:50, 8:28] = lungs[10:50, 36:56] = True
    return img, lungs


def test_augment_keeps_shape_and_type_and_is_seeded(chest) -> None:
    img, _ = chest
    a = augment(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, augment(img, np.random.default_rng(3)))
    assert not np.array_equal(a, img)
    np.testing.assert_array_equal(augment(img, np.random.default_rng(3), OFF), img)


def test_lung_ablation_erases_the_lungs_and_says_so(chest) -> None:
    img, lungs = chest
    out, erased = lung_ablation(
        img, lungs, np.random.default_rng(0), AugmentConfig(p_erase_lungs=1)
    )
    assert erased
    np.testing.assert_array_equal(out[~lungs], img[~lungs])  # outside untouched
    assert out[lungs].std() < 5 < img[lungs].std()  # inside: a flat grey, faint noise at most
    lo, hi = np.percentile(img, (20, 80))
    assert lo - 15 <= out[lungs].mean() <= hi + 15
    assert img[lungs].std() > 50  # the input itself was not edited in place


def test_lung_ablation_keeps_only_the_lungs_and_keeps_the_label(chest) -> None:
    img, lungs = chest
    out, erased = lung_ablation(img, lungs, np.random.default_rng(0), AugmentConfig(p_lungs_only=1))
    assert not erased
    np.testing.assert_array_equal(out[lungs], img[lungs])
    assert out[~lungs].std() < 5


def test_lung_ablation_follows_its_probabilities(chest) -> None:
    img, lungs = chest
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(p_erase_lungs=0.2, p_lungs_only=0.3)
    kinds = []
    for _ in range(2000):
        out, erased = lung_ablation(img, lungs, rng, cfg)
        kinds.append("erased" if erased else "only" if out is not img else "none")
    shares = {k: kinds.count(k) / len(kinds) for k in ("erased", "only", "none")}
    assert abs(shares["erased"] - 0.2) < 0.03 and abs(shares["only"] - 0.3) < 0.03, shares
    # Off, or without lungs, nothing happens.
    for mask, cfg in (
        (lungs, AugmentConfig()),
        (np.zeros_like(lungs), AugmentConfig(p_erase_lungs=1)),
    ):
        out, erased = lung_ablation(img, mask, rng, cfg)
        assert out is img and not erased


def test_config_round_trips_and_knows_when_it_needs_lungs() -> None:
    cfg = AugmentConfig(p_jpeg=0.0, p_erase_lungs=0.15)
    assert cfg.uses_lungs and not AugmentConfig().uses_lungs
    assert AugmentConfig.from_dict({**cfg.to_dict(), "retired_setting": 1}) == cfg
    # A model JSON from before the lung ablations existed reads as "off".
    old = {k: v for k, v in AugmentConfig().to_dict().items() if "lung" not in k}
    assert AugmentConfig.from_dict(old) == AugmentConfig()


def test_tone_curve_is_monotone_from_black_to_white_and_near_identity_when_concentrated() -> None:
    rng = np.random.default_rng(0)
    curves = [tone_curve(rng) for _ in range(50)]
    for lut in curves:
        assert lut.shape == (256,) and lut.dtype == np.uint8
        assert lut[0] == 0 and lut[255] == 255
        assert (np.diff(lut.astype(int)) >= 0).all()
    # The curves differ from each other and from the identity...
    identity = np.arange(256)
    assert np.mean([np.abs(c.astype(int) - identity).max() for c in curves]) > 10
    assert len({c.tobytes() for c in curves}) == 50
    # ...and a high concentration keeps them close to it.
    tight = tone_curve(rng, knots=4.0, concentration=1e5)
    assert np.abs(tight.astype(int) - identity).max() <= 3


def test_brightness_field_is_smooth_positive_and_bounded() -> None:
    rng = np.random.default_rng(0)
    logs = [np.log(brightness_field((40, 60), rng, 0.3)) for _ in range(30)]
    for log in logs:
        assert log.shape == (40, 60)
        assert np.abs(log).max() <= 0.3 + 1e-5
        # Smooth: neighbouring pixels differ by a small part of the range.
        assert np.abs(np.diff(log, axis=1)).max() < 0.05
    assert max(float(log.max() - log.min()) for log in logs) > 0.2
    np.testing.assert_allclose(brightness_field((8, 8), rng, 0.0), 1.0)


def test_exposure_augmentations_change_grey_levels_only_where_asked(chest) -> None:
    img, _ = chest
    # A tone curve alone maps each grey level to one grey level, in the same order.
    toned = augment(img, np.random.default_rng(2), replace(OFF, p_tone=1))
    assert not np.array_equal(toned, img)
    order = np.argsort(img, axis=None, kind="stable")
    assert (np.diff(toned.ravel()[order].astype(int)) >= 0).all()
    # A brightness field alone scales each pixel by a smooth factor: a flat image stops being flat.
    flat = np.full((64, 64), 128, np.uint8)
    lit = augment(flat, np.random.default_rng(4), replace(OFF, p_bias=1))
    assert lit.max() - lit.min() > 5
    assert np.abs(np.diff(lit.astype(int), axis=0)).max() <= 3

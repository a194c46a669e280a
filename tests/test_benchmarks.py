"""The pure parts of the benchmark scripts: variant definitions and the printed table.

The benchmarks themselves train and time things (too slow for the suite); what
they compute from their rows, and which recipe each variant name stands for,
is checked here, because a wrong variant silently measures the wrong thing.
"""

from __future__ import annotations

import pytest

from cxrlib.train.augment import AugmentConfig


@pytest.fixture(scope="module")
def augment_compare():
    from benchmarks import augment_compare

    return augment_compare


def _config(augment_compare, name: str) -> AugmentConfig:
    settings, _ = augment_compare.VARIANTS[name]
    return AugmentConfig(**settings)


def test_every_variant_is_a_valid_recipe(augment_compare):
    for name, (_settings, contrast) in augment_compare.VARIANTS.items():
        cfg = _config(augment_compare, name)  # unknown fields would raise here
        assert contrast in ("clahe", "equalize", "none"), name
        assert all(v >= 0 for v in cfg.model_dump().values()), name


@pytest.mark.parametrize(
    ("name", "on", "off"),
    [
        ("all", ["gamma", "p_blur", "p_noise", "p_downscale", "p_jpeg", "p_text"], []),
        ("none", [], ["rotate_deg", "scale", "shift", "gamma", "p_text", "p_blur"]),
        ("geometric", ["rotate_deg", "scale", "shift"], ["gamma", "contrast", "p_text", "p_jpeg"]),
        ("geo+jpeg", ["rotate_deg", "p_jpeg"], ["gamma", "p_blur", "p_text"]),
        (
            "light",
            ["rotate_deg", "gamma", "contrast", "p_text"],
            ["p_blur", "p_noise", "p_downscale", "p_jpeg"],
        ),
    ],
)
def test_variant_switches_what_its_name_says(augment_compare, name, on, off):
    cfg = _config(augment_compare, name)
    default = AugmentConfig()
    for field in on:
        assert getattr(cfg, field) > 0, f"{name}: {field} should be on"
        if getattr(default, field) > 0:
            assert getattr(cfg, field) == getattr(default, field), (
                f"{name}: {field} not at its committed setting"
            )
    for field in off:
        assert getattr(cfg, field) == 0, f"{name}: {field} should be off"


def _row(variant: str, seed: int, bal: float, covid_acc: float) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "held_out": ["radiography"],
        "held_out_scores": {
            "balanced_accuracy": bal,
            "per_class_accuracy": {"covid": covid_acc, "normal": 1 - covid_acc},
            "auc": {"covid": 0.7, "normal": 0.6, "pneumonia": None},
        },
        "val_balanced_accuracy": 0.8,
        "val_lungs_erased_balanced_accuracy": 0.4,
        "val_lungs_erased_covid_auc": 0.6,
        "val_lungs_only_balanced_accuracy": 0.5,
    }


def test_table_groups_seeds_of_a_variant_on_one_line(augment_compare):
    rows = [_row("all", 1, 0.6, 0.25), _row("none", 0, 0.5, 0.5), _row("all", 0, 0.55, 0.75)]
    lines = augment_compare.table(rows).splitlines()
    assert len(lines) == 2 + 2  # header, separator, one line per variant
    all_line = next(line for line in lines if "| all |" in line)
    # Seeds sorted, figures in seed order; an undefined AUC is left out.
    assert "| 0,1 |" in all_line
    assert "0.550 / 0.600" in all_line
    assert "covid 0.75/0.25" in all_line
    assert "pneumonia" not in all_line


def test_gpu_pack_holds_the_geometry_and_trains_like_the_cli(tiny_manifest, cxr_dir, tmp_path):
    """benchmarks/gpu_train.py: what travels to a GPU machine is the images that
    cxrlib.train.classifier would read here, and training from it goes through cxrlib.train.classifier."""
    import json
    import sys

    import numpy as np

    import cxrlib.train.classifier
    from benchmarks import gpu_train as gpu
    from cxrlib.infer.preprocess import PreprocessConfig
    from cxrlib.train.data import load_geometry, read_manifest

    folder = tmp_path / "pack"
    switches = ["--size", "64", "--no-lung-crop"]
    gpu.pack(tiny_manifest, folder, quality=95, train_args=switches, root=cxr_dir, cache=False)
    images = gpu.unpack(folder)
    df = read_manifest(tiny_manifest, root=cxr_dir)
    assert sorted(images) == sorted(df["path"])
    here = load_geometry(list(df["file"]), PreprocessConfig(size=64), cache=False)
    packed = np.stack([images[p] for p in df["path"]]).astype(int)
    assert packed.shape == here.shape
    assert 0 < np.abs(packed - here).mean() < 2  # JPEG: close, not the same bytes

    args = "--arch small --epochs 1 --steps-per-epoch 1 --batch-size 8 --quiet"
    gpu.run(folder, tmp_path / "out", [f"t={args} {' '.join(switches)}"], workers=2)
    meta = json.loads((tmp_path / "out" / "t.json").read_text())
    assert (meta["n_train"], meta["n_val"], meta["input_size"]) == (12, 6, 64)
    assert meta["train_config"]["arch"] == "small"
    # A run that asks for other preprocessing than the pack holds is refused.
    with pytest.raises(ValueError, match="pack holds"):
        gpu.run(folder, tmp_path / "out", [f"u={args} --size 64 --lung-crop"], workers=2)
    # Nothing stays patched for the rest of the process.
    assert cxrlib.train.classifier.load_geometry is load_geometry
    # --parallel: one process per run, each with its share of threads and GPU memory.
    specs = [f"p{seed}={args} --seed {seed} {' '.join(switches)}" for seed in (3, 4)]
    commands = gpu.parallel_commands(folder, tmp_path / "par", specs, workers=6)
    assert [cmd[cmd.index("--run") + 1] for cmd, _ in commands] == specs
    assert {cmd[cmd.index("--workers") + 1] for cmd, _ in commands} == {"3"}
    assert {env["XLA_PYTHON_CLIENT_MEM_FRACTION"] for _, env in commands} == {"0.45"}
    assert gpu.run_parallel(folder, tmp_path / "par", specs, workers=2) == 0
    seeds = [json.loads((tmp_path / "par" / f"p{s}.json").read_text())["seed"] for s in (3, 4)]
    assert seeds == [3, 4]
    assert "cxrlib.infer.lungs" not in sys.modules or hasattr(
        sys.modules["cxrlib.infer.lungs"], "LungSegmenter"
    )


def test_made_negatives_are_many_varied_and_reproducible() -> None:
    """benchmarks/negatives.py: the non-X-rays benchmarks/ood_eval.py measures the gate on."""
    import numpy as np

    from benchmarks.negatives import make_negatives

    negs = make_negatives(seed=0)
    names = [n for n, _, _ in negs]
    assert len(negs) >= 200 and len(set(names)) == len(names)
    for name, im, chroma in negs:
        assert im.dtype == np.uint8 and im.ndim in (2, 3) and im.size > 0, name
        assert 0.0 <= chroma <= 1.0 and (im.ndim == 3 or chroma == 0.0), name
    chroma = dict((n, c) for n, _, c in negs)
    assert chroma["astronaut"] > 0.08 and chroma["astronaut_gray"] == 0.0
    assert {
        "textpage0",
        "ui0",
        "shapes0",
        "uniform0",
        "flat0",
        "checker0",
        "tile0",
        "face0",
    } <= set(names)
    again = make_negatives(seed=0)
    assert [(n, im.shape) for n, im, _ in again] == [(n, im.shape) for n, im, _ in negs]
    # Only scikit-image's binary_blobs (drawn unseeded) and tiles cut from it may differ.
    differ = {a[0] for a, b in zip(negs, again, strict=True) if not np.array_equal(a[1], b[1])}
    assert all(n.startswith(("binary_blobs", "tile")) for n in differ), differ
    images = dict((n, im) for n, im, _ in negs)
    assert images["astronaut"].ndim == 3 and images["astronaut_gray"].ndim == 2


def _predictions(covid_p: list[float], adult_pneumonia_p: list[float]) -> dict:
    """COVID images (radiography) and adult pneumonias (quex), each row's p(COVID) given and
    the rest split between normal and pneumonia, as ``benchmarks.candidates`` reads them."""
    import numpy as np

    rows = [(p, 0, "radiography") for p in covid_p] + [(p, 2, "quex") for p in adult_pneumonia_p]
    probs = [[p, (1 - p) * 0.4, (1 - p) * 0.6] for p, _, _ in rows]
    return {
        "probs": np.array(probs),
        "y": np.array([y for _, y, _ in rows]),
        "source": np.array([s for _, _, s in rows]),
        "path": np.array([f"img{i}.png" for i in range(len(rows))]),
    }


def test_covid_is_compared_at_the_same_rate_of_adult_pneumonias_called_covid() -> None:
    """benchmarks/candidates.py: a model that calls adult opacities COVID does not win on COVID."""
    import numpy as np

    from benchmarks import candidates

    # Finds every COVID image, but by calling half the adult pneumonias COVID too.
    eager = _predictions([0.9, 0.8, 0.7, 0.6], [0.95, 0.85, 0.1, 0.2])
    # Finds three of four, and calls no adult pneumonia COVID.
    careful = _predictions([0.9, 0.8, 0.7, 0.15], [0.2, 0.1, 0.15, 0.05])
    assert candidates.adult_pneumonias_called_covid(eager) == 0.5
    assert candidates.adult_pneumonias_called_covid(careful) == 0.0
    # Held to careful's rate (none above the threshold), eager finds no COVID image at all.
    assert candidates.covid_found_at_rate(eager, 0.0) == 0.0
    assert candidates.covid_found_at_rate(careful, 0.0) == 0.75
    assert candidates.covid_against_adult_auc(careful) > candidates.covid_against_adult_auc(eager)
    both = candidates.averaged([eager, careful])
    assert np.allclose(both["probs"][0, 0], 0.9)
    careful["path"] = careful["path"][::-1]
    with pytest.raises(ValueError, match="same images"):
        candidates.averaged([eager, careful])

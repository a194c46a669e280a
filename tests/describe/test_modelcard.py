"""cxrlib.describe.card: a model described in words, from its JSON."""

from __future__ import annotations

from saved_metrics import split

from cxrlib.describe import card, comparison
from cxrlib.describe.prose import markdown_rows


def test_training_data_table_lists_every_source_with_this_models_counts():
    meta = {"train_counts": {"kermany/normal": 10, "kermany/pneumonia": 30, "cxnet/covid": 5}}
    df = card.training_data_table(meta)
    assert df.loc["kermany", "pneumonia"] == 30
    assert df.loc["cxnet", "normal"] == 0
    assert df.loc["quex", "total"] == 0  # a source of the data this model never trained on
    assert df.loc["total", "total"] == 45
    assert list(df.index) == [
        "ieee8023", "figure1", "cxnet", "radiography", "kermany", "nih", "quex", "total"
    ]  # fmt: skip
    assert "Guangzhou" in df.loc["kermany", "what it is"]
    assert list(df.columns[:4]) == ["covid", "normal", "pneumonia", "total"]


def test_describe_training_data_names_the_sources_it_did_not_train_on():
    meta = {"n_train": 1200, "n_val": 300, "train_counts": {"kermany/normal": 10}}
    text = card.describe_training_data(meta)
    assert text.startswith("This model's training split of `../shared/cxr`: 1,200 images (300")
    assert "ieee8023, figure1, cxnet, radiography, nih and quex joined the data after" in text
    every = {f"{r['source']}/normal": 1 for r in markdown_rows("sources")}
    assert "joined" not in card.describe_training_data({"train_counts": every})


def test_describe_preprocessing_names_the_framing() -> None:
    base = {"size": 160, "geometry": "resize", "contrast": "clahe", "border_crop": 0.08}
    text = card.describe_preprocessing(base)
    assert "crop 8% of each border" in text and "squash to 160 x 160" in text
    lung = card.describe_preprocessing({**base, "lung_crop": True, "lung_margin": 0.04})
    assert "lung fields" in lung and "4%" in lung and "border" not in lung and "mask" not in lung
    assert "pad to 96" in card.describe_preprocessing({"size": 96, "geometry": "pad"})


def test_describe_training_names_sampling_and_each_augmentation_in_use() -> None:
    from cxrlib.train.augment import AugmentConfig

    text = card.describe_training(
        {"sampling_power": 0.5, "sampling_floor": 1, "augment": AugmentConfig().model_dump()}
    )
    assert "n^0.5" in text and "under" not in text
    assert "rotation ±10 deg" in text and "JPEG artefacts (20%)" in text
    assert "letters and arrows" in text and "blanked" not in text
    no_jpeg = {**AugmentConfig().model_dump(), "p_jpeg": 0}
    text = card.describe_training(
        {"sampling_power": 0.25, "sampling_floor": 50, "augment": no_jpeg}
    )
    assert "JPEG" not in text and "under 50 images" in text
    off = {k: 0 for k in AugmentConfig().model_dump()}
    assert card.describe_training({"augment": off}).endswith("no augmentation.")


def test_describe_architecture_names_the_trunk() -> None:
    mobilenet = card.describe_architecture({"arch": "mobilenetv2", "alpha": 0.5})
    assert "MobileNetV2" in mobilenet and "width 0.5" in mobilenet
    assert card.describe_architecture({"arch": "small"}) == "`small`"


def test_describe_calibration_names_the_views_and_both_temperatures():
    plain = card.describe_calibration({"temperature": 1.3166})
    assert "T = 1.317" in plain and "scored once" in plain
    meta = {
        "temperature": 1.3166,
        "test_time_views": {
            "views": ["shift right", "darker"],
            "temperature": 1.2221,
            "val_one_view": {"balanced_accuracy": 0.9059},
            "val_averaged": {"balanced_accuracy": 0.9151},
        },
    }
    text = card.describe_calibration(meta)
    for needed in ("2 slightly shifted", "shift right, darker", "over the 3", "T = 1.222"):
        assert needed in text, needed
    assert "0.906 with the image alone, 0.915 averaged" in text and "T = 1.317" in text


def test_describe_scoring_says_how_the_saved_predictions_were_made():
    views = ["original", "shift right", "darker"]
    assert "image and 2 slightly shifted" in card.describe_scoring(split({"views": views}))
    assert "scored once" in card.describe_scoring(split({}))


def test_making_commands_lists_training_then_each_later_step():
    meta = {
        "command": "python -m cxrlib.train --data D --out M",
        "post_training": {"command": "python -m cxrlib.train.calibrate --model M/c.keras"},
        "test_time_views": {
            "views": ["darker"],
            "command": "python -m cxrlib.train.calibrate --views",
        },
    }
    assert card.making_commands(meta).splitlines() == [
        "python -m cxrlib.train --data D --out M",
        "python -m cxrlib.train.calibrate --model M/c.keras",
        "python -m cxrlib.train.calibrate --views",
    ]
    assert card.making_commands({}).startswith("python -m cxrlib.train")


def test_a_lung_box_model_says_its_margin():
    cfg = {"arch": "mobilenetv2", "alpha": 0.5}
    wide = comparison.describe_input_and_trunk(
        {"lung_crop": True, "lung_margin": 0.12, "size": 160}, cfg
    )
    assert wide == "the lung box + 12%, MobileNetV2 (width 0.5), 160 px"
    # Files written before the margin was recorded: no figure, rather than a guessed one.
    assert comparison.describe_input_and_trunk({"lung_crop": True}, cfg).startswith("the lung box,")

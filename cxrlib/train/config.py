"""What determines a classifier training run, as recorded in the model's JSON (``train_config``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.augment import AugmentConfig


class TrainConfig(BaseModel):
    """Everything that determines a training run (read back from a record, a setting it lacks
    takes its default and one it does not know is refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: Literal["mobilenetv2", "small"] = "mobilenetv2"
    alpha: float = 0.5
    width: int | None = None  # first-stage filters of "small"; None = the arch's default
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    seed: int = 0
    sampling_power: float = 0.5
    sampling_floor: int = 1
    steps_per_epoch: int | None = None  # default: one pass over the training set
    exclude_sources: tuple[str, ...] = ()
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

"""What determines a classifier training run, as recorded in the model's JSON (``train_config``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cxrlib.infer.preprocess import PreprocessConfig
from cxrlib.train.augment import AugmentConfig


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the model JSON)."""

    arch: str = "mobilenetv2"
    alpha: float = 0.5
    width: int | None = None  # first-stage filters of "small"; None = the arch's default
    epochs: int = 14
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    seed: int = 0
    sampling_power: float = 0.5
    sampling_floor: int = 1
    steps_per_epoch: int | None = None  # default: one pass over the training set
    exclude_sources: tuple[str, ...] = ()
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("preprocess", "augment")}
        d["exclude_sources"] = list(self.exclude_sources)
        d["preprocess"] = self.preprocess.to_dict()
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A recorded ``train_config`` back as a config. A setting the record predates takes
        its default, which is what the model trained with before the setting existed;
        settings since retired are ignored."""
        known = {f.name for f in dataclasses.fields(cls)} - {
            "preprocess",
            "augment",
            "exclude_sources",
        }
        return cls(
            **{k: v for k, v in data.items() if k in known},
            exclude_sources=tuple(data.get("exclude_sources") or ()),
            preprocess=PreprocessConfig.from_dict(data.get("preprocess") or {}),
            augment=AugmentConfig.from_dict(data.get("augment") or {}),
        )

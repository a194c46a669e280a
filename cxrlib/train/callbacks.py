"""The Keras callback of classifier training: per-epoch scores with early stopping."""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np

from cxrlib.train.scoring import macro_f1

logger = logging.getLogger(__name__)


class EpochMetrics(keras.callbacks.Callback):
    """Per-epoch macro-F1 on validation and a fixed training subset; early stopping."""

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        x_tr: np.ndarray,
        y_tr: np.ndarray,
        patience: int,
    ) -> None:
        super().__init__()
        self.x_val, self.y_val, self.x_tr, self.y_tr = x_val, y_val, x_tr, y_tr
        self.patience = patience
        self.history: dict[str, list[float]] = {
            k: []
            for k in ("loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1")
        }
        self.best_f1, self.best_epoch, self.best_weights = -1.0, -1, None

    def _score(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        p = self.model.predict(x, batch_size=128, verbose=0)
        pred = p.argmax(1)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-7)))
        return loss, float(np.mean(pred == y)), macro_f1(y, pred)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        _, _, tr_f1 = self._score(self.x_tr, self.y_tr)
        v_loss, v_acc, v_f1 = self._score(self.x_val, self.y_val)
        h = self.history
        h["loss"].append(float(logs.get("loss", np.nan)))
        h["accuracy"].append(float(logs.get("accuracy", np.nan)))
        h["macro_f1"].append(tr_f1)
        h["val_loss"].append(v_loss)
        h["val_accuracy"].append(v_acc)
        h["val_macro_f1"].append(v_f1)
        mark = ""
        if v_f1 > self.best_f1:
            self.best_f1, self.best_epoch = v_f1, epoch
            self.best_weights = self.model.get_weights()
            mark = "  * best"
        logger.info(
            f"epoch {epoch + 1}: loss {h['loss'][-1]:.4f} acc {h['accuracy'][-1]:.4f} "
            f"train-F1 {tr_f1:.4f} | val loss {v_loss:.4f} acc {v_acc:.4f} F1 {v_f1:.4f}{mark}"
        )
        if epoch - self.best_epoch >= self.patience:
            logger.info(f"early stop: no val macro-F1 gain for {self.patience} epochs")
            self.model.stop_training = True

"""Merging results into a model's metrics file, ``models/<name>.metrics.json``.

The file belongs to one set of weights (``weights_sha256``): a section recorded for
other weights drops the file's old content. Models that were *not* committed are kept
as ``alternatives`` of the committed model's file, for the Trust page's comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrlib.core.metrics import MetricsSchemaError, read_metrics, write_metrics


def _read(path: Path) -> dict[str, Any]:
    """A metrics file as JSON, checked against the schema on the way in."""
    return read_metrics(path).model_dump(mode="json", exclude_unset=True)


def _write(path: Path, metrics: dict[str, Any]) -> Path:
    """Writes ``metrics`` through the schema; a section that does not fit it raises
    before the file is touched."""
    try:
        record = read_metrics(metrics)
    except MetricsSchemaError as e:
        raise MetricsSchemaError(e.key, e.problem, f"{path} (not written)") from e
    write_metrics(path, record)
    return path


def metrics_path(model_path: str | Path) -> Path:
    """``<model>.metrics.json`` beside the model file."""
    return Path(model_path).with_suffix(".metrics.json")


def read_metrics_file(model_path: str | Path, weights_sha256: str) -> dict[str, Any]:
    """``<model>.metrics.json`` if it exists and is for these weights, else {}."""
    path = metrics_path(model_path)
    if not path.exists():
        return {}
    old = _read(path)
    return old if old.get("weights_sha256") == weights_sha256 else {}


def update_metrics_file(
    model_path: str | Path, weights_sha256: str, sections: dict[str, Any]
) -> Path:
    """Merges ``sections`` into ``<model>.metrics.json`` (dropped if it was for other weights)."""
    out = read_metrics_file(model_path, weights_sha256)
    out.update({"model": Path(model_path).name, "weights_sha256": weights_sha256})
    out.update(sections)
    return _write(metrics_path(model_path), out)


def merge_loso(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A recorded leave-one-source-out section with a new run's sources added.

    When both ran the same schedule, the held-out sources of ``old`` stay beside those of
    ``new`` (a source in both takes the new result), and ``commands`` lists every run's
    command; otherwise ``new`` replaces ``old``.
    """
    if not old or old.get("schedule") != new.get("schedule"):
        return new
    commands = list(old.get("commands") or ([old["command"]] if old.get("command") else []))
    if new.get("command"):
        commands.append(new["command"])
    return {
        **new,
        "sources": {**(old.get("sources") or {}), **(new.get("sources") or {})},
        "commands": commands,
    }


def record_sections(model_path: str | Path, weights_sha256: str, sections: dict[str, Any]) -> Path:
    """:func:`update_metrics_file`, a leave-one-source-out section adding its sources
    to the recorded ones (:func:`merge_loso`) rather than replacing the table."""
    recorded = read_metrics_file(model_path, weights_sha256)
    merged = dict(sections)
    for key in ("loso", "loso_full"):
        if key in merged:
            merged[key] = merge_loso(recorded.get(key), merged[key])
    return update_metrics_file(model_path, weights_sha256, merged)


def alternative_record(
    res: dict[str, Any], meta: dict[str, Any], weights_sha256: str, command: str
) -> dict[str, Any]:
    """What the Trust page compares with the committed model: an alternative's internal
    figures and its lung ablation, from one ``evaluate audit --ablate`` result ``res``."""
    abl = res["ablation"]
    erased = abl["lungs_erased"]
    return {
        "preprocess": meta.get("preprocess") or {},
        "train_config": meta.get("train_config") or {},
        "params": meta.get("params"),
        "keras_backend": meta.get("keras_backend"),
        "weights_sha256": weights_sha256,
        "split": abl.get("split"),
        "n": res["n"],
        "views": len(res.get("views", ())),
        "balanced_accuracy": res["balanced_accuracy"],
        "ci95": (res.get("ci95") or {}).get("balanced_accuracy"),
        "covid_sensitivity": (res["per_class"].get("covid") or {}).get("sensitivity"),
        "ece": res.get("ece"),
        "lungs_erased": {
            "balanced_accuracy": erased.get("balanced_accuracy"),
            "covid_auc": (erased.get("auc") or {}).get("covid"),
        },
        "lungs_only": {"balanced_accuracy": abl["lungs_only"].get("balanced_accuracy")},
        "chance": abl.get("chance"),
        "command": command,
    }


def alternative_target(path: str | Path, weights_sha256: str) -> dict[str, Any]:
    """The committed metrics a model with these weights may be recorded into as an
    alternative; raises if the file is missing or belongs to these very weights."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: record the committed model's metrics first "
            "(python -m cxrlib.evaluate metrics --record)"
        )
    out = _read(path)
    if out.get("weights_sha256") == weights_sha256:
        raise ValueError(f"{path} is this model's own metrics file: it is no alternative to itself")
    return out


def record_alternative(path: str | Path, name: str, record: dict[str, Any]) -> Path:
    """Adds ``record`` as ``alternatives[name]`` of an existing metrics file."""
    out = alternative_target(path, record["weights_sha256"])
    out.setdefault("alternatives", {})[name] = record
    return _write(Path(path), out)


def recorded_alternative(
    path: str | Path, name: str, weights_sha256: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics file and its alternative ``name``; raises ValueError unless that
    alternative was recorded for these weights."""
    out = alternative_target(path, weights_sha256)
    alt = (out.get("alternatives") or {}).get(name)
    if not isinstance(alt, dict) or alt.get("weights_sha256") != weights_sha256:
        raise ValueError(
            f"{path} has no alternative {name!r} for these weights: record it with "
            "`python -m cxrlib.evaluate audit --split test --ablate --record-alternative` first"
        )
    return out, alt


def record_alternative_external(
    path: str | Path, name: str, weights_sha256: str, section: dict[str, Any]
) -> Path:
    """Adds an ``external`` result (without its per-image predictions) to the alternative
    ``name`` of an existing metrics file, which must have been recorded for these weights."""
    out, alt = recorded_alternative(path, name, weights_sha256)
    alt["external"] = {
        **{k: v for k, v in section.items() if k != "collections"},
        "collections": {
            key: {k: v for k, v in rec.items() if k != "predictions"}
            for key, rec in section["collections"].items()
        },
    }
    return _write(Path(path), out)

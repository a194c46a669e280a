"""Prints one row of the variant table in models/experiments.md from audit JSONs.

    python -m benchmarks.variant_row --audit test_audit.json [--loso loso.json] [--name NAME]

``--audit``: the JSON of ``python -m cxrlib.evaluate audit --split test --ablate --explain --json``;
``--loso``: a JSON holding a ``loso`` section (``evaluate --loso ... --json``, or a model's
metrics file). A model's metrics file (``models/cxr_classifier.metrics.json``) also works
as ``--audit``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _f(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def row(audit: dict[str, Any], loso: dict[str, Any] | None, name: str) -> str:
    """A markdown table row: internal test, COVID sensitivity, ablations, focus, LOSO."""
    abl, exp = audit.get("ablation", {}), audit.get("explain", {})
    cells = [
        name,
        _f(audit.get("balanced_accuracy")),
        _f(audit.get("per_class", {}).get("covid", {}).get("sensitivity")),
        _f(audit.get("ece")),
        _f(abl.get("lungs_erased", {}).get("balanced_accuracy")),
        _f(abl.get("lungs_erased", {}).get("auc", {}).get("covid")),
        _f(abl.get("lungs_only", {}).get("balanced_accuracy")),
        _f(exp.get("lung_focus", {}).get("mean")),
        _f(exp.get("flat_map_focus", {}).get("mean")),
    ]
    if loso:
        srcs = loso.get("loso", loso).get("sources", {})
        cells.append(", ".join(f"{s} {_f(v.get('accuracy'))}" for s, v in srcs.items()))
    else:
        cells.append("not run")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--audit", required=True)
    p.add_argument("--loso", default=None)
    p.add_argument("--name", default="variant")
    a = p.parse_args()
    audit = json.loads(Path(a.audit).read_text())
    if "splits" in audit:  # a model's metrics file: test metrics plus recorded audits
        audit = {**audit["splits"]["test"], **{k: v for k, v in audit.items() if k != "splits"}}
    loso = json.loads(Path(a.loso).read_text()) if a.loso else None
    print(
        "| variant | test bal. acc. | COVID sens. | ECE | lungs-erased bal. acc. | "
        "lungs-erased COVID AUC | lungs-only bal. acc. | lung focus | flat-map focus | "
        "LOSO accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(row(audit, loso, a.name))


if __name__ == "__main__":
    main()

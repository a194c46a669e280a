"""The Plotly figures of the Model card and Metrics pages (data in, ``go.Figure`` out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cxrlib.core.formatting import pct
from cxrlib.core.metrics import ClassCurves, ClassScores, ReliabilityBin, SourceScores
from cxrlib.describe.probability_svg import FONT_FAMILY, INK, NEUTRAL, class_color

ACCENT = "#1f6f8b"


def _layout(fig: go.Figure, height: int, title: str | None = None, **kw: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        title=dict(text=title, x=0, font=dict(size=15)) if title else None,
        font=dict(family=FONT_FAMILY, size=13, color=INK),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        **kw,
    )
    return fig


def training_curves(history: dict[str, Sequence[float]]) -> go.Figure:
    """Loss, accuracy and macro-F1 per epoch, train against validation."""
    panels = [("loss", "Loss"), ("accuracy", "Accuracy"), ("macro_f1", "Macro-F1")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels])
    for col, (key, _) in enumerate(panels, start=1):
        for prefix, name, color, dash in (
            ("", "train", ACCENT, "solid"),
            ("val_", "validation", "#b5563c", "dash"),
        ):
            ys = history.get(prefix + key)
            if not ys:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(ys) + 1)),
                    y=list(ys),
                    mode="lines+markers",
                    name=name,
                    line=dict(color=color, dash=dash),
                    marker=dict(size=5),
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="epoch", row=1, col=col, gridcolor="#e6ebef")
        fig.update_yaxes(gridcolor="#e6ebef", row=1, col=col)
    _layout(fig, 330, None, legend=dict(orientation="h", y=-0.25))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
    return fig


def confusion_figure(
    matrix: np.ndarray | Sequence[Sequence[float]],
    labels: Sequence[str],
    normalise: bool = False,
    title: str | None = None,
) -> go.Figure:
    """A (K, K) confusion matrix (rows true) as an annotated heatmap, in row percentages when
    ``normalise``."""
    z = cm = np.asarray(matrix, dtype=float)
    text = [[f"{int(v):,}" for v in row] for row in cm]
    zmax = max(1.0, float(cm.max()))
    if normalise:
        totals = cm.sum(axis=1, keepdims=True)
        z = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
        text = [[pct(v, 1) for v in row] for row in z]
        zmax = 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(labels),
            y=list(labels),
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=14),
            colorscale="Blues",
            zmin=0,
            zmax=zmax,
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="predicted", side="bottom")
    fig.update_yaxes(title_text="true", autorange="reversed")
    return _layout(fig, 340, title)


def _diagonal(name: str) -> go.Scatter:
    """The dotted line from (0, 0) to (1, 1): chance, or perfect calibration."""
    return go.Scatter(
        x=[0, 1], y=[0, 1], mode="lines", name=name, line=dict(color=NEUTRAL, dash="dot")
    )


def _class_lines(lines: Sequence[tuple[str, str, Sequence[float], Sequence[float]]]) -> go.Figure:
    """A figure with one line per ``(class, legend, x, y)``, in the class's colour."""
    fig = go.Figure()
    for i, (name, label, x, y) in enumerate(lines):
        line = dict(color=class_color(name, i), width=2)
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines", name=label, line=line))
    return fig


def roc_figure(
    curves: Mapping[str, ClassCurves], per_class: Mapping[str, ClassScores] | None = None
) -> go.Figure:
    """One-vs-rest ROC curves per class with their AUC in the legend."""
    lines = []
    for name, c in curves.items():
        scores = (per_class or {}).get(name)
        auc = scores.auc if scores else None
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        lines.append((name, label, c.roc.fpr if c.roc else [], c.roc.tpr if c.roc else []))
    fig = _class_lines(lines)
    fig.add_trace(_diagonal("chance"))
    fig.update_xaxes(title_text="1 - specificity (false-positive rate)", range=[0, 1])
    fig.update_yaxes(title_text="sensitivity", range=[0, 1.02])
    return _layout(fig, 380, "ROC (one class vs the rest)", legend=dict(x=0.45, y=0.05))


def pr_figure(curves: Mapping[str, ClassCurves]) -> go.Figure:
    """Precision-recall curves per class."""
    fig = _class_lines(
        [
            (n, n, c.pr.recall if c.pr else [], c.pr.precision if c.pr else [])
            for n, c in curves.items()
        ]
    )
    fig.update_xaxes(title_text="recall (sensitivity)", range=[0, 1])
    fig.update_yaxes(title_text="precision (PPV)", range=[0, 1.02])
    return _layout(fig, 380, "Precision-recall", legend=dict(x=0.02, y=0.05))


def reliability_figure(bins: Sequence[ReliabilityBin], ece: float | None = None) -> go.Figure:
    """Reliability diagram: accuracy against confidence per bin, its images on hover."""
    used = [b for b in bins if b.count]
    centres = [(b.lo + b.hi) / 2 for b in used]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres,
            y=[b.accuracy for b in used],
            width=[(b.hi - b.lo) * 0.9 for b in used],
            marker_color=ACCENT,
            opacity=0.75,
            name="accuracy in bin",
            customdata=[[b.count, b.confidence] for b in used],
            hovertemplate="confidence %{customdata[1]:.2f}: accuracy %{y:.2f} "
            "(%{customdata[0]} images)<extra></extra>",
        )
    )
    fig.add_trace(_diagonal("perfect calibration"))
    title = "Reliability" + (f" (ECE {ece:.3f})" if ece is not None else "")
    fig.update_xaxes(title_text="confidence (top-class probability)", range=[0, 1])
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return _layout(fig, 380, title, legend=dict(x=0.02, y=0.98), bargap=0)


def per_source_figure(per_source: Mapping[str, SourceScores]) -> go.Figure:
    """Accuracy per data source (bar), with n in the label."""
    names = list(per_source)
    acc = [per_source[s].accuracy or 0.0 for s in names]
    labels = [f"{s} (n={per_source[s].n:,})" for s in names]
    fig = go.Figure(
        go.Bar(
            x=[100 * a for a in acc],
            y=labels,
            orientation="h",
            marker_color=ACCENT,
            text=[pct(a, 1) for a in acc],
            textposition="outside",
            cliponaxis=False,
        )
    )
    fig.update_xaxes(range=[0, 110], ticksuffix="%", title_text="accuracy")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 60 + 40 * len(names), "Accuracy by source", showlegend=False)

"""The metric's two halves per arm: binary F1 and 9-class macro F1 per fold (with their mean, the
score), out-of-fold F1 per 9-class label, and confusion matrices, each record beside its figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cmi_model.labels import NINE_CLASSES
from study.report.studies import ClassReport, Studies
from study.report.style import LAYOUT, arm_color, hover_extra


def _pad(values: Sequence[float], n: int) -> list[float]:
    return list(values[:n]) + [math.nan] * (n - len(values[:n]))


def metric_parts_frame(data: Studies) -> pd.DataFrame:
    """Per arm and fold: score, binary F1, macro F1 of its best configuration (confirmation preferred)."""
    frames = []
    for arm in data.arm_names():
        if data.confirm is not None and (data.confirm.scores["arm"] == arm).any():
            s = data.confirm.scores[data.confirm.scores["arm"] == arm]
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": "confirmation",
                        "score": s["score"],
                        "binary_f1": s["binary_f1"],
                        "macro_f1": s["macro_f1"],
                    }
                )
            )
        elif arm in data.arms and data.arms[arm].best is not None:
            b = data.arms[arm].best
            n = len(b.fold_scores)
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": f"search trial #{b.number}",
                        "score": b.fold_scores,
                        "binary_f1": _pad(b.fold_binary_f1, n),
                        "macro_f1": _pad(b.fold_macro_f1, n),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["arm", "source", "score", "binary_f1", "macro_f1"])
    return pd.concat(frames, ignore_index=True)


def fig_metric_parts(parts: pd.DataFrame) -> go.Figure | None:
    """Fold-level binary F1, 9-class macro F1 and their mean (the score) for each arm (``metric_parts_frame``)."""
    fig = go.Figure()
    labels = {"binary_f1": "binary F1", "macro_f1": "9-class macro F1", "score": "score"}
    for arm in parts["arm"].unique():
        s = parts[parts["arm"] == arm]
        x, y = [], []
        for col, lab in labels.items():
            vals = s[col].astype(float).dropna()
            x += [lab] * len(vals)
            y += vals.tolist()
        if y:
            fig.add_trace(
                go.Box(
                    x=x, y=y, name=arm, marker_color=arm_color(arm), boxpoints="all", jitter=0.4, pointpos=0
                )
            )
    if not fig.data:
        return None
    fig.update_layout(
        boxmode="group",
        title="Metric parts per fold of each arm's best configuration",
        yaxis_title="F1 / score",
        height=420,
        **LAYOUT,
    )
    return fig


def fig_per_class_f1(reports: dict[str, ClassReport]) -> go.Figure | None:
    """Out-of-fold F1 per 9-class label, grouped by arm (``Studies.class_reports``)."""
    if not reports:
        return None
    fig = go.Figure()
    for arm, rep in reports.items():
        fig.add_trace(
            go.Bar(
                x=list(NINE_CLASSES),
                y=[rep.per_class_f1[c] for c in NINE_CLASSES],
                name=arm,
                marker_color=arm_color(arm),
                hovertemplate="%{x}<br>F1 %{y:.3f}" + hover_extra(arm),
            )
        )
    fig.update_layout(
        barmode="group",
        title="Out-of-fold F1 per 9-class label",
        yaxis=dict(title="F1", range=[0, 1]),
        xaxis=dict(tickangle=-30),
        height=460,
        **LAYOUT,
    )
    return fig


def fig_confusion(arm: str, rep: ClassReport) -> go.Figure:
    """Row-normalised 9-class confusion matrix of out-of-fold predictions (counts on hover)."""
    cm = rep.confusion.astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    labels = list(NINE_CLASSES)
    fig = go.Figure(
        go.Heatmap(
            z=frac,
            x=labels,
            y=labels,
            customdata=rep.confusion,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            texttemplate="%{z:.2f}",
            textfont=dict(size=10),
            colorbar=dict(title="row share"),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} sequences (%{z:.1%} of the row)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="true label")
    fig.update_xaxes(tickangle=-35, title_text="predicted label")
    fig.update_layout(
        title=f"{arm}: 9-class confusion matrix ({rep.source}, {rep.n} sequences)",
        height=560,
        **{**LAYOUT, "margin": dict(l=190, r=30, t=60, b=170)},
    )
    return fig

"""Plotly figures of the comparison and the metric parts, and the style every figure shares.

Each ``fig_*`` draws one plain record (:mod:`~study.report.compare`,
:mod:`~study.report.figure_data`) and returns ``None`` when it has nothing to show; the
search and parameter figures are in :mod:`~study.report.search_figures`.

Plotly renders tags in hover texts, so strings from the storage (arm and parameter
names, fail reasons) are HTML-escaped before they go into one.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cmi_model.labels import NINE_CLASSES
from study.report import fmt
from study.report.compare import ArmComparison
from study.report.data import ClassReport
from study.report.figure_data import ForestInfo

ARM_COLORS = {
    "fixed": "#4C78A8",
    "equal": "#7F7F7F",  # grey: no tuning, the reference
    "uncertainty": "#F58518",
    "direct": "#54A24B",
    "dwa": "#B279A2",
    "famo": "#E45756",
    "imtl_l": "#72B7B2",
    "rlw": "#9D755D",
}
NO_TUNING = "equal: what no tuning gives"  # the label of the equal arm's reference lines
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=60, b=50), font=dict(size=12))


def arm_color(arm: str) -> str:
    return ARM_COLORS.get(arm, "#7F7F7F")


def hover_extra(name: str) -> str:
    """Hover-box side label naming an arm."""
    return f"<extra>{html.escape(name)}</extra>"


# ----------------------------------------------------------------------------- comparison


def _paired_scores(fig: go.Figure, cmp: ArmComparison, hover: list[str], reference: float | None) -> None:
    p = cmp.pairs
    xs, ys = [], []
    for ya, yb in zip(p["a"], p["b"], strict=True):
        xs += [0, 1, None]
        ys += [ya, yb, None]
    line = dict(color="rgba(120,120,120,0.45)", width=1)
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", line=line, hoverinfo="skip", showlegend=False), row=1, col=1
    )
    for x, arm, col in ((0, cmp.a, "a"), (1, cmp.b, "b")):
        fig.add_trace(
            go.Scatter(
                x=[x] * len(p),
                y=p[col],
                mode="markers",
                name=arm,
                text=hover,
                marker=dict(color=arm_color(arm), size=8),
                hovertemplate="%{text}<br>score %{y:.4f}" + hover_extra(arm),
            ),
            row=1,
            col=1,
        )
    if reference is not None:
        fig.add_hline(
            y=reference,
            line=dict(color=arm_color("equal"), dash="dash", width=1.5),
            annotation_text=f"{NO_TUNING} ({reference:.4f})",
            annotation_position="bottom right",
            row=1,
            col=1,
        )
    fig.update_xaxes(tickvals=[0, 1], ticktext=[cmp.a, cmp.b], range=[-0.4, 1.4], row=1, col=1)
    fig.update_yaxes(title_text="competition score", row=1, col=1)


def _differences(fig: go.Figure, cmp: ArmComparison, hover: list[str]) -> None:
    c, p = cmp.comparison, cmp.pairs
    assert c is not None
    seeds = sorted(p["seed"].unique())
    jitter = (p["fold"].to_numpy() - p["fold"].mean()) * 0.12
    xpos = np.array([seeds.index(s) for s in p["seed"]], dtype=float) + jitter
    colors = np.where(p["diff"] >= 0, arm_color(cmp.b), arm_color(cmp.a))
    fig.add_trace(
        go.Scatter(
            x=xpos,
            y=p["diff"],
            mode="markers",
            text=hover,
            name="b − a per pair",
            showlegend=False,
            marker=dict(color=colors, size=8, line=dict(width=0.5, color="white")),
            hovertemplate="%{text}<br>difference %{y:+.4f}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    # Shapes after the trace: plotly skips row/col shapes on subplots that are still empty.
    span = [*p["diff"].tolist(), c.ci_low, c.ci_high, -c.rope, c.rope, 0.0]
    pad = 0.08 * (max(span) - min(span) or 0.01)
    band = dict(line_width=0, layer="below", row=1, col=2)
    fig.add_hrect(y0=c.ci_low, y1=c.ci_high, fillcolor="rgba(76,120,168,0.18)", **band)
    fig.add_hrect(y0=-c.rope, y1=c.rope, fillcolor="rgba(84,162,75,0.12)", **band)
    fig.add_hline(y=0, line=dict(color="black", width=1), row=1, col=2)
    fig.add_hline(
        y=c.mean_diff,
        line=dict(color="#1f3b73", width=2),
        layer="below",
        annotation_text=f"mean {c.mean_diff:+.4f}, {cmp.level}% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
        annotation_position="top left",
        row=1,
        col=2,
    )
    fig.update_yaxes(range=[min(span) - pad, max(span) + pad], zeroline=False, row=1, col=2)
    fig.update_xaxes(tickvals=list(range(len(seeds))), ticktext=[f"seed {s}" for s in seeds], row=1, col=2)
    fig.update_yaxes(title_text=f"{cmp.b} − {cmp.a}  (green band: ±rope {c.rope})", row=1, col=2)


def fig_comparison(cmp: ArmComparison, reference: float | None = None) -> go.Figure | None:
    """Left: paired scores of a and b, one line per (seed, fold), and ``reference`` (the equal arm's
    mean score on the same pairs) as a dashed line. Right: the differences with CI and rope."""
    if cmp.comparison is None or not len(cmp.pairs):
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.4, 0.6],
        subplot_titles=("Paired fold scores (one line per seed × fold)", f"Difference {cmp.b} − {cmp.a}"),
    )
    hover = [f"seed {s}, fold {f}" for s, f in zip(cmp.pairs["seed"], cmp.pairs["fold"], strict=True)]
    _paired_scores(fig, cmp, hover, reference)
    _differences(fig, cmp, hover)
    title = f"{cmp.b} vs {cmp.a}: {cmp.verdict_words()}"
    if cmp.selection_biased:
        title += " (selection-biased: best search trials)"
    fig.update_layout(title=title, height=430, legend=dict(orientation="h", y=-0.15), **LAYOUT)
    return fig


def fig_forest(info: ForestInfo | None) -> go.Figure | None:
    """Every arm's mean difference from the baseline with its interval, best first, on the rope band;
    the equal arm's difference as a dashed line: what no tuning gives."""
    if info is None:
        return None
    rows = info.rows
    labels = [html.escape(r.arm) + (" (search, biased)" if r.selection_biased else "") for r in rows]
    text = [
        f"{html.escape(r.arm)} − {html.escape(r.baseline)} = {r.mean:+.4f}<br>{r.level}% interval "
        f"[{r.low:+.4f}, {r.high:+.4f}]<br>{html.escape(r.verdict)}; corrected p {fmt.p_value(r.p_value)}"
        + ("" if r.p_adjusted is None else f", Holm-adjusted {fmt.p_value(r.p_adjusted)}")
        + f"<br>{r.n} paired scores"
        for r in rows
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[r.mean for r in rows],
            y=labels,
            mode="markers",
            name="mean difference and interval",
            text=text,
            hovertemplate="%{text}<extra></extra>",
            error_x=dict(
                type="data",
                symmetric=False,
                array=[r.high - r.mean for r in rows],
                arrayminus=[r.mean - r.low for r in rows],
                thickness=2,
                width=6,
                color="#333333",
            ),
            marker=dict(
                size=12,
                color=[arm_color(r.arm) for r in rows],
                symbol=["circle-open" if r.selection_biased else "circle" for r in rows],
                line=dict(width=2, color=[arm_color(r.arm) for r in rows]),
            ),
            showlegend=False,
        )
    )
    fig.add_vrect(x0=-info.rope, x1=info.rope, fillcolor="rgba(84,162,75,0.15)", line_width=0, layer="below")
    fig.add_vline(x=0, line=dict(color="black", width=1))
    if info.reference is not None:
        fig.add_vline(
            x=info.reference.mean,
            line=dict(color=arm_color("equal"), dash="dash", width=1.5),
            annotation_text=NO_TUNING,
            annotation_position="top",
        )
    span = [*(r.low for r in rows), *(r.high for r in rows), -info.rope, info.rope]
    pad = 0.08 * (max(span) - min(span) or 0.01)
    base = html.escape(info.baseline)
    fig.update_xaxes(
        range=[min(span) - pad, max(span) + pad],
        zeroline=False,
        title_text=f"arm − {base} (competition score; green band: ±rope {info.rope:g})",
    )
    fig.update_yaxes(autorange="reversed", title_text="")
    fig.update_layout(
        title=f"Every arm against {base}: mean difference and {rows[0].level}% interval, best first",
        height=150 + 42 * len(rows),
        **{**LAYOUT, "margin": dict(l=170, r=30, t=70, b=60)},
    )
    return fig


# ----------------------------------------------------------------------------- metric parts and classes


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
    """Out-of-fold F1 per 9-class label, grouped by arm (``ReportData.class_reports``)."""
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

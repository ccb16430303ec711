"""Plotly figures of the search: trial scores, the fixed-weight landscape, importances.

Drawn here rather than with ``optuna.visualization``: those plots take a live Study,
while these draw the report's plain records of :mod:`~study.report.figure_data` (one
snapshot, budget skips removed, failed trials with their reason), all arms in one
figure, coloured by arm. Strings from the storage are HTML-escaped for plotly's hover
texts, as in :mod:`~study.report.figures`.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from study.report import fmt
from study.report.figure_data import LandscapeInfo, SliceInfo
from study.report.figures import LAYOUT, NO_TUNING, arm_color, hover_extra

# ----------------------------------------------------------------------------- search


def fig_best_so_far(trials: pd.DataFrame) -> go.Figure | None:
    """Best complete score so far against trial number, one line per arm (``search_trials``)."""
    # Hand-written: optuna's plot_optimization_history takes Study objects, not this plain record.
    fig = go.Figure()
    done = trials[(trials["state"] == "COMPLETE") & np.isfinite(trials["value"].astype(float))]
    for arm in done["arm"].unique():
        t = done[done["arm"] == arm].sort_values("number")
        style = dict(color=arm_color(arm))
        reference = arm == "equal"  # drawn as the reference: what no tuning gives
        fig.add_trace(
            go.Scatter(
                x=t["number"],
                y=t["value"].cummax(),
                mode="lines",
                line_shape="hv",
                name=f"{NO_TUNING}, best so far" if reference else f"{arm} best so far",
                line=dict(width=2.5, dash="dash" if reference else "solid", **style),
                legendgroup=arm,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t["number"],
                y=t["value"],
                mode="markers",
                name=f"{arm} trials",
                legendgroup=arm,
                marker=dict(size=6, opacity=0.45, **style),
                hovertemplate="trial #%{x}<br>CV score %{y:.4f}" + hover_extra(arm),
            )
        )
    if not fig.data:
        return None
    last = max(max(tr.x) for tr in fig.data)
    fig.update_layout(
        title="Best CV score so far by trial number",
        xaxis=dict(title="trial number", tickformat="d", dtick=max(1, math.ceil(last / 10))),
        yaxis_title="mean CV score",
        height=420,
        **LAYOUT,
    )
    return fig


_STATE_MARKERS = {
    "COMPLETE": dict(symbol="circle", size=8),
    "PRUNED": dict(symbol="circle-open", size=9),
    "RUNNING": dict(symbol="diamond-open", size=9),
    "FAIL": dict(symbol="x", size=9),
}


def _state_points(s: pd.DataFrame, state: str, fail_y: float) -> tuple[object, list[str]]:
    """y and hover text of one arm's trials in one state."""
    if state == "COMPLETE":
        return s["value"], [
            f"trial #{n}: CV score {v:.4f}" for n, v in zip(s["number"], s["value"], strict=True)
        ]
    if state == "FAIL":
        text = [
            f"trial #{n} failed: {html.escape(r) or 'no reason recorded'}"
            for n, r in zip(s["number"], s["fail_reason"], strict=True)
        ]
        return np.full(len(s), fail_y), text
    text = [
        f"trial #{n} {state.lower()}: mean of {k} fold(s) {fmt.num(m)}"
        for n, k, m in zip(s["number"], s["n_folds_done"], s["fold_mean"], strict=True)
    ]
    return s["fold_mean"], text


def fig_trial_scores(trials: pd.DataFrame) -> go.Figure | None:
    """Every trial of every arm: complete (box + dots), pruned/running (mean of folds so far), failed (✕ below)."""
    # Hand-written: optuna.visualization has no per-state view of trial scores.
    if not len(trials):
        return None
    names = list(trials["arm"].unique())
    scores = pd.concat([trials["fold_mean"], trials["value"]]).astype(float)
    scores = scores[np.isfinite(scores)]
    lo, hi = (scores.min(), scores.max()) if len(scores) else (0.0, 1.0)
    fail_y = lo - 0.08 * max(hi - lo, 0.01)
    fig = go.Figure()
    shown: set[str] = set()
    for i, arm in enumerate(names):
        t = trials[trials["arm"] == arm]
        done = t[t["state"] == "COMPLETE"]
        if len(done):
            fig.add_trace(
                go.Box(
                    x=np.full(len(done), i, dtype=float),
                    y=done["value"],
                    name=f"{arm} complete",
                    boxpoints=False,
                    marker_color=arm_color(arm),
                    width=0.5,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        for state, marker in _STATE_MARKERS.items():
            s = t[t["state"] == state]
            if not len(s):
                continue
            y, text = _state_points(s, state, fail_y)
            fig.add_trace(
                go.Scatter(
                    x=i + ((s["number"].to_numpy() * 0.618) % 1.0 - 0.5) * 0.35,  # fixed jitter per trial
                    y=y,
                    mode="markers",
                    text=text,
                    hovertemplate="%{text}<extra></extra>",
                    name=state.lower() if state != "FAIL" else "failed (drawn below, no score)",
                    legendgroup=state,
                    showlegend=state not in shown,
                    marker=dict(color=arm_color(arm), line=dict(width=1.5, color=arm_color(arm)), **marker),
                )
            )
            shown.add(state)
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=names, range=[-0.6, len(names) - 0.4])
    fig.update_layout(
        title="Trial scores per arm (pruned/running: mean of the folds finished so far)",
        yaxis_title="mean CV score",
        height=440,
        **LAYOUT,
    )
    return fig


# ----------------------------------------------------------------------------- parameters


def fig_fixed_landscape(info: LandscapeInfo | None) -> go.Figure | None:
    """Score of every complete fixed-weight trial over alpha × kl_weight (colour = CV score)."""
    # Hand-written: optuna's plot_contour interpolates a surface; with few trials the dots are the data.
    if info is None:
        return None
    t = info.trials
    text = [
        f"trial #{n}<br>alpha {a:.3f}, kl_weight {k:.3f}<br>nine_class_loss_weight {fmt.num(w, 3)}<br>CV score {v:.4f}"
        for n, a, k, w, v in zip(
            t["number"], t["alpha"], t["kl_weight"], t["nine_class_loss_weight"], t["value"], strict=True
        )
    ]
    marker = dict(color=t["value"], colorscale="Viridis", size=13, showscale=True)
    marker |= dict(colorbar=dict(title="CV score"), line=dict(width=0.5, color="white"))
    fig = go.Figure(
        go.Scatter(
            x=t["alpha"],
            y=t["kl_weight"],
            mode="markers",
            text=text,
            hovertemplate="%{text}<extra></extra>",
            marker=marker,
            name="complete trials",
            showlegend=False,
        )
    )
    if info.best is not None:
        number, alpha, kl = info.best
        ring = dict(symbol="star", size=22, color="rgba(0,0,0,0)", line=dict(width=2, color="crimson"))
        fig.add_trace(
            go.Scatter(
                x=[alpha], y=[kl], mode="markers", name=f"best #{number}", marker=ring, hoverinfo="skip"
            )
        )
    fig.update_layout(
        title="Fixed weights: CV score over alpha × kl_weight (each dot a complete trial)",
        xaxis_title="alpha",
        yaxis_title="kl_weight",
        height=460,
        legend=dict(orientation="h", y=-0.18, x=0),
        **LAYOUT,
    )
    return fig


def fig_slices(info: SliceInfo | None) -> go.Figure | None:
    """CV score against each parameter (one panel per parameter), complete trials only."""
    # Hand-written: optuna's plot_slice needs a Study and puts every parameter in one row.
    if info is None:
        return None
    cols = min(3, len(info.params))
    rows = math.ceil(len(info.params) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=info.params, vertical_spacing=0.16, horizontal_spacing=0.07
    )
    for i, p in enumerate(info.params):
        r, c = i // cols + 1, i % cols + 1
        s = info.trials.dropna(subset=[f"params_{p}"])
        fig.add_trace(
            go.Scatter(
                x=s[f"params_{p}"],
                y=s["value"],
                mode="markers",
                showlegend=False,
                marker=dict(
                    color=s["number"], colorscale="Blues", size=8, line=dict(width=0.5, color="#333")
                ),
                text=[f"trial #{n}" for n in s["number"]],
                hovertemplate="%{text}<br>" + html.escape(p) + " %{x:.4g}<br>score %{y:.4f}<extra></extra>",
            ),
            row=r,
            col=c,
        )
        if info.log[p]:
            fig.update_xaxes(type="log", row=r, col=c)
    fig.update_yaxes(title_text="CV score", col=1)
    fig.update_layout(
        title=f"{info.arm}: CV score against each parameter (darker = later trial)",
        height=300 * rows + 80,
        **LAYOUT,
    )
    return fig


def fig_importances(importances: dict[str, dict[str, float]]) -> go.Figure | None:
    """fANOVA parameter importances, one panel per arm (``importances_info``)."""
    # Hand-written: optuna's plot_param_importances recomputes fANOVA and draws one study per figure.
    if not importances:
        return None
    names = list(importances)
    cols = min(len(names), 4)  # at most four panels a row: any number of arms fits the page
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.15, vertical_spacing=0.35 / rows
    )
    for j, arm in enumerate(names):
        imp = sorted(importances[arm].items(), key=lambda kv: kv[1])
        row, col = j // cols + 1, j % cols + 1
        fig.add_trace(
            go.Bar(
                x=[v for _, v in imp],
                y=[k for k, _ in imp],
                orientation="h",
                marker_color=arm_color(arm),
                showlegend=False,
                hovertemplate="%{y}: %{x:.2f}" + hover_extra(arm),
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(title_text="importance (sums to 1)", range=[0, 1], row=row, col=col)
    fig.update_layout(
        title="Parameter importances (fANOVA on complete trials)", height=80 + 280 * rows, **LAYOUT
    )
    return fig

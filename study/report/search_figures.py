"""The search figures: each arm's best score so far by trial, and every trial by state. The
record (:func:`search_trials`, one snapshot, budget skips removed) sits beside its figures.

Drawn here rather than with ``optuna.visualization``: those plots take a live Study, while
these draw one plain record of all arms in one figure, coloured by arm, failed trials with
their reason.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cmi_model.weighting import NO_TUNING_ARM
from study.report.studies import ArmData, arm_order
from study.report.style import LAYOUT, NO_TUNING, arm_color, esc, hover_extra, num

SEARCH_COLUMNS = ["arm", "number", "state", "value", "fold_mean", "n_folds_done", "fail_reason"]


def search_trials(arms: dict[str, ArmData]) -> pd.DataFrame:
    """Every trial of every arm (budget skips left out), arms in order: the search figures' data."""
    frames = [
        d.trials.assign(arm=arm)[SEARCH_COLUMNS]
        for arm, d in sorted(arms.items(), key=lambda kv: arm_order(kv[0]))
        if len(d.trials)
    ]
    if not frames:
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def fig_best_so_far(trials: pd.DataFrame) -> go.Figure | None:
    """Best complete score so far against trial number, one line per arm (``search_trials``)."""
    # Hand-written: optuna's plot_optimization_history takes Study objects, not this plain record.
    fig = go.Figure()
    done = trials[(trials["state"] == "COMPLETE") & np.isfinite(trials["value"].astype(float))]
    for arm in done["arm"].unique():
        t = done[done["arm"] == arm].sort_values("number")
        style = dict(color=arm_color(arm))
        reference = arm == NO_TUNING_ARM  # drawn as the reference: what no tuning gives
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
            f"trial #{n} failed: {esc(r) or 'no reason recorded'}"
            for n, r in zip(s["number"], s["fail_reason"], strict=True)
        ]
        return np.full(len(s), fail_y), text
    text = [
        f"trial #{n} {state.lower()}: mean of {k} fold(s) {num(m)}"
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

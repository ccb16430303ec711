"""The parameter figures: the fixed-weight landscape (alpha × kl_weight), each parameter's slice
of the baseline arm's search, and fANOVA importances per arm, each record beside its figure.

Hand-written rather than ``optuna.visualization``: those take a live Study (this draws the
report's snapshot), and each function says below what else it does differently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cmi_model.weighting import SCHEMES
from study.report.studies import ArmData, arm_order
from study.report.style import LAYOUT, arm_color, esc, hover_extra, num


def panel_order(arm: ArmData, present: Sequence[str]) -> list[str]:
    """The slice panels: what the arm's trials searched (`present`, read from the study), its
    scheme's own knobs first, then the rest in the order its study recorded its search space (the
    shared knobs), then anything else by name."""
    own = [k.field for k in SCHEMES[arm.arm].knobs] if arm.arm in SCHEMES else []
    order = list(dict.fromkeys([*own, *arm.record.search_space]))
    return [p for p in order if p in present] + sorted(p for p in present if p not in order)


@dataclass(frozen=True)
class LandscapeInfo:
    """Complete fixed-weight trials over alpha × kl_weight, and the best one."""

    trials: pd.DataFrame  # number, alpha, kl_weight, nine_class_loss_weight (NaN if absent), value
    best: tuple[int, float, float] | None  # (number, alpha, kl_weight)


# Fewer dots than this over two weights show no landscape, only points: a sentence says so instead.
MIN_TRIALS_FOR_LANDSCAPE = 5


def landscape_info(fixed: ArmData) -> LandscapeInfo | None:
    """The baseline arm's complete trials over its alpha × kl_weight (None: fewer than
    MIN_TRIALS_FOR_LANDSCAPE of them)."""
    t = _complete_with(fixed, ("alpha", "kl_weight"))
    if len(t) < MIN_TRIALS_FOR_LANDSCAPE:
        return None
    frame = pd.DataFrame(
        {
            "number": t["number"],
            "alpha": t["params_alpha"],
            "kl_weight": t["params_kl_weight"],
            "nine_class_loss_weight": t.get("params_nine_class_loss_weight", np.nan),
            "value": t["value"],
        }
    )
    b = fixed.best
    best = None
    if b is not None and "alpha" in b.params and "kl_weight" in b.params:
        best = (b.number, b.params["alpha"], b.params["kl_weight"])
    return LandscapeInfo(frame.reset_index(drop=True), best)


def landscape_count(fixed: ArmData) -> int:
    """The baseline arm's complete trials that have alpha and kl_weight."""
    return len(_complete_with(fixed, ("alpha", "kl_weight")))


def _complete_with(arm: ArmData, params: Sequence[str]) -> pd.DataFrame:
    t = arm.trials
    cols = [f"params_{p}" for p in params]
    if not len(t) or any(c not in t.columns for c in cols):
        return t.iloc[0:0]
    t = t[t["state"] == "COMPLETE"]
    return t.dropna(subset=cols + ["value"])


def fig_fixed_landscape(info: LandscapeInfo | None) -> go.Figure | None:
    """Score of every complete fixed-weight trial over alpha × kl_weight (colour = CV score)."""
    # Hand-written: optuna's plot_contour interpolates a surface; with few trials the dots are the data.
    if info is None:
        return None
    t = info.trials
    text = [
        f"trial #{n}<br>alpha {a:.3f}, kl_weight {k:.3f}<br>nine_class_loss_weight {num(w, 3)}<br>CV score {v:.4f}"
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


@dataclass(frozen=True)
class SliceInfo:
    """CV score of the complete trials of one arm against each of its parameters."""

    arm: str
    params: list[str]  # one panel each, in this order
    trials: pd.DataFrame  # number, value, params_<name>
    log: dict[str, bool]  # parameter → log-scaled axis


def slice_info(arm: ArmData, params: Sequence[str] | None = None) -> SliceInfo | None:
    t = arm.trials[arm.trials["state"] == "COMPLETE"] if len(arm.trials) else arm.trials
    if params is None:
        present = [c.removeprefix("params_") for c in t.columns if c.startswith("params_")]
        params = panel_order(arm, present)
    params = [p for p in params if f"params_{p}" in t.columns and t[f"params_{p}"].notna().any()]
    if not len(t) or not params:
        return None
    cols = ["number", "value", *(f"params_{p}" for p in params)]
    return SliceInfo(
        arm.arm, params, t[cols].reset_index(drop=True), {p: arm.param_log.get(p, False) for p in params}
    )


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
                hovertemplate="%{text}<br>" + esc(p) + " %{x:.4g}<br>score %{y:.4f}<extra></extra>",
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


def importances_info(arms: dict[str, ArmData]) -> dict[str, dict[str, float]]:
    """fANOVA importances of each arm that has them, arms in order."""
    names = sorted((a for a, d in arms.items() if d.importances), key=arm_order)
    return {a: dict(arms[a].importances or {}) for a in names}


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

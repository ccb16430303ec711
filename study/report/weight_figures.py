"""The learned-weights figure: every weighting arm's best trial on one log-scaled weight axis.

One panel per arm whose weights vary in training (at most three panels a row, every panel on
the same axis). Colour is the loss term (never an arm's colour), line style and marker are the
fold. Arms whose weight is stationary at 1/L_i for the training loss of that epoch (the
scheme's ``inverse_loss_optimum``) are drawn against it (dotted, the term's colour). The
baseline's best trial's weights are stars at the right edge, and the no-tuning arm (every
weight 1) is a dashed line on every panel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cmi_model.weighting import BASELINE_ARM, NO_TUNING_ARM, SCHEMES
from study.report.studies import ArmData, Movement, arm_order, learns
from study.report.style import GREY, LAYOUT, TERMS, esc, num, term_color

FOLD_DASHES = ("solid", "dash", "longdash", "dashdot", "longdashdot")  # never "dot": the reference's
FOLD_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon", "hexagon")
_EQUAL_LINE = "#222222"  # the no-tuning arm's weight 1: not an arm colour (colour is the term's here)
PANELS_PER_ROW = 3


def fixed_reference_weights(arms: dict[str, ArmData]) -> dict[str, float]:
    """Mean over folds of the baseline arm's best trial's effective weights (term → weight)."""
    d = arms.get(BASELINE_ARM)
    if d is None or d.best is None or not d.best.fold_weights:
        return {}
    out = {}
    # In the order the folds recorded the terms: a set's order changes with each process's hash seed.
    for term in dict.fromkeys(k for w in d.best.fold_weights for k in w):
        vals = [v for w in d.best.fold_weights if math.isfinite(v := w.get(term, math.nan))]
        if vals:
            out[term] = float(np.mean(vals))
    return out


@dataclass(frozen=True)
class WeightsPanel:
    """Per-epoch effective weights of one learned arm's best trial, one line per (term, fold)."""

    arm: str
    trial: int
    terms: list[str]
    trajectory: list[dict[str, list[float]]]  # per fold: term → weight after each epoch
    optimum: list[dict[str, list[float]]]  # per fold: term → 1/L_i per epoch ([]: no such reference)
    movement: Movement | None  # how far its log-weights moved (max |Δs|)


@dataclass(frozen=True)
class WeightsInfo:
    """The learned arms side by side on one log-scaled weight axis."""

    panels: list[WeightsPanel]
    fixed: dict[str, float]  # term → the best fixed trial's weight
    equal: bool = False  # the study has the no-tuning arm: a reference line at weight 1

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(t for p in self.panels for t in p.terms))


def has_panel(arm: str) -> bool:
    """Constant weights get no panel: the baseline's best trial is the stars, the no-tuning arm's
    weight 1 the dashed line on every panel."""
    scheme = SCHEMES.get(arm)
    return scheme is None or scheme.weights_vary


def has_inverse_optimum(arm: str) -> bool:
    """Whether the arm's weight is stationary at 1/L_i (drawn as its reference)."""
    scheme = SCHEMES.get(arm)
    return scheme is not None and scheme.inverse_loss_optimum


def _terms(named: set[str]) -> list[str]:
    return [t for t in TERMS if t in named] + sorted(named - set(TERMS))


def _inverse(losses: list[float]) -> list[float]:
    return [1.0 / v if math.isfinite(v) and v > 0 else math.nan for v in losses]


def _panel_info(arm: ArmData, movement: Movement | None) -> WeightsPanel | None:
    best = arm.best
    if best is None or not best.weight_trajectory:
        return None
    terms = _terms({k for w in best.weight_trajectory for k in w})
    if not terms:
        return None
    optimum = []
    if has_inverse_optimum(arm.arm) and any(f.loss_trajectory for f in best.folds):
        optimum = [{t: _inverse(f.loss_trajectory.get(t, [])) for t in terms} for f in best.folds]
    return WeightsPanel(arm.arm, best.number, terms, best.weight_trajectory, optimum, movement)


def weights_info(
    arms: dict[str, ArmData],
    movement: dict[str, Movement] | None = None,
    fixed: dict[str, float] | None = None,
) -> WeightsInfo | None:
    """One panel per arm whose weights vary in training and whose best trial recorded them."""
    panels = [
        p
        for name, d in sorted(arms.items(), key=lambda kv: arm_order(kv[0]))
        if has_panel(name) and (p := _panel_info(d, (movement or {}).get(name))) is not None
    ]
    return WeightsInfo(panels, dict(fixed or {}), equal=NO_TUNING_ARM in arms) if panels else None


# ----------------------------------------------------------------------------- the figure


def fold_style(f: int) -> tuple[str, str]:
    """(line dash, marker symbol) of fold f."""
    return FOLD_DASHES[f % len(FOLD_DASHES)], FOLD_SYMBOLS[f % len(FOLD_SYMBOLS)]


def _positive(values: list[float] | None) -> list[float | None]:
    """A log axis cannot show 0, negative or missing values: gaps instead."""
    return [v if v is not None and math.isfinite(v) and v > 0 else None for v in values or []]


def _panel_title(p: WeightsPanel) -> str:
    moved = p.movement.largest if p.movement is not None else None
    if not learns(p.arm):
        shift = "set by rule, nothing learned"
    elif moved is not None:
        shift = f"max |Δs| {num(moved, 3)} (search + confirm)"
    else:
        shift = "|Δs| not recorded"
    return f"{esc(p.arm)}: best trial #{p.trial}<br>{shift}"


def _panel(fig: go.Figure, p: WeightsPanel, row: int, col: int, terms: list[str]) -> None:
    arm = esc(p.arm)
    for f, weights in enumerate(p.trajectory):
        dash, symbol = fold_style(f)
        for term in p.terms:
            color, name = term_color(term, terms), esc(term)
            y = _positive(weights.get(term))
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(y) + 1)),
                    y=y,
                    mode="lines+markers",  # markers keep 1-epoch runs visible
                    name=f"{term}, fold {f}",
                    legendgroup=term,
                    showlegend=False,
                    line=dict(color=color, dash=dash, width=1.8),
                    marker=dict(symbol=symbol, size=6, color=color),
                    hovertemplate=f"{arm}, fold {f}, epoch %{{x}}<br>{name} weight %{{y:.3g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            ref = _positive(p.optimum[f].get(term)) if f < len(p.optimum) else []
            if any(v is not None for v in ref):
                fig.add_trace(
                    go.Scatter(
                        x=list(range(1, len(ref) + 1)),
                        y=ref,
                        mode="lines+markers",
                        name=f"1/L {term}, fold {f}",
                        legendgroup=term,
                        showlegend=False,
                        opacity=0.8,
                        line=dict(color=color, dash="dot", width=1.3),
                        marker=dict(symbol=f"{symbol}-open", size=5, color=color),
                        hovertemplate=f"{arm}, fold {f}, epoch %{{x}}<br>1/L of {name} %{{y:.3g}}<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )


def _fixed_stars(fig: go.Figure, info: WeightsInfo, row: int, col: int, x: float) -> None:
    for term, w in info.fixed.items():
        if term not in info.terms or not (math.isfinite(w) and w > 0):
            continue
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[w],
                mode="markers",
                name=f"best {BASELINE_ARM} {term}",
                legendgroup=term,
                showlegend=False,
                marker=dict(symbol="star", size=13, color=term_color(term, info.terms), line=dict(width=1)),
                hovertemplate=f"best {BASELINE_ARM} trial: {esc(term)} weight %{{y:.3g}}<extra></extra>",
            ),
            row=row,
            col=col,
        )


def _equal_line(fig: go.Figure, row: int, col: int, x_end: float) -> None:
    """The no-tuning arm's weights: 1 for every term, every epoch."""
    fig.add_trace(
        go.Scatter(
            x=[0.5, x_end],
            y=[1.0, 1.0],
            mode="lines",
            name=f"{NO_TUNING_ARM} arm: every weight 1",
            legendgroup=NO_TUNING_ARM,
            showlegend=False,
            line=dict(color=_EQUAL_LINE, dash="dash", width=1.2),
            hovertemplate=f"{NO_TUNING_ARM} arm (no tuning): every weight 1<extra></extra>",
        ),
        row=row,
        col=col,
    )


def _legend(fig: go.Figure, info: WeightsInfo, n_folds: int) -> None:
    """Legend-only entries: terms by colour, folds by line style and marker, the two references."""

    def entry(name: str, group: str | None = None, **style) -> None:
        fig.add_trace(go.Scatter(x=[None], y=[None], name=name, legendgroup=group, **style), row=1, col=1)

    for term in info.terms:
        entry(esc(term), term, mode="lines", line=dict(color=term_color(term, info.terms), width=3))
    for f in range(n_folds):
        dash, symbol = fold_style(f)
        style = dict(line=dict(color=GREY, dash=dash), marker=dict(symbol=symbol, color=GREY))
        entry(f"fold {f}", mode="lines+markers", **style)
    if any(p.optimum for p in info.panels):
        entry(
            "1/L_i (dotted): stationary weight of "
            + " / ".join(esc(p.arm) for p in info.panels if p.optimum),
            mode="lines",
            line=dict(color=GREY, dash="dot"),
        )
    if info.fixed:
        entry(f"best {BASELINE_ARM} trial", mode="markers", marker=dict(symbol="star", size=11, color=GREY))
    if info.equal:
        entry(
            f"{NO_TUNING_ARM} arm: every weight 1 (no tuning)",
            mode="lines",
            line=dict(color=_EQUAL_LINE, dash="dash"),
        )


def fig_weights(info: WeightsInfo | None) -> go.Figure | None:
    """Effective weight of each loss term per epoch, the arms side by side on a shared log axis."""
    if info is None:
        return None
    n = len(info.panels)
    cols = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        shared_yaxes="all",  # one axis for every panel: weights compare across arms
        subplot_titles=[_panel_title(p) for p in info.panels],
        horizontal_spacing=0.04,
        vertical_spacing=0.3 / rows,
    )
    n_epochs = max((len(v) for p in info.panels for w in p.trajectory for v in w.values()), default=1)
    for i, p in enumerate(info.panels):
        row, col = i // cols + 1, i % cols + 1
        _panel(fig, p, row, col, info.terms)
        _fixed_stars(fig, info, row, col, n_epochs + 0.7)
        if info.equal:
            _equal_line(fig, row, col, n_epochs + 1.2)
        dtick = max(1, math.ceil(n_epochs / 8))
        fig.update_xaxes(
            title_text="epoch", tickformat="d", dtick=dtick, range=[0.5, n_epochs + 1.2], row=row, col=col
        )
    fig.update_annotations(font_size=12)  # the panel titles, two lines each
    _legend(fig, info, max(len(p.trajectory) for p in info.panels))
    fig.update_yaxes(type="log")
    for row in range(1, rows + 1):
        fig.update_yaxes(title_text="effective weight (log scale)", row=row, col=1)
    fig.update_layout(
        title="Effective loss weights per epoch (colour: term; line style and marker: fold)",
        height=150 + 330 * rows,
        legend=dict(orientation="h", y=-0.25 / rows),
        **{**LAYOUT, "margin": dict(l=60, r=30, t=110, b=50)},  # room for the two-line panel titles
    )
    return fig

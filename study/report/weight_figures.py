"""The learned-weights figure: every weighting arm's best trial on one log-scaled weight axis.

One panel per arm but fixed and equal (at most three panels a row, every panel on the same
axis). Colour is the loss term (never an arm's colour), line style and marker are the fold.
Uncertainty and IMTL-L weights are drawn against their stationary point for the training
loss of that epoch, 1/L_i (dotted, the term's colour); DWA, FAMO, random and direct weights
have no such point. The best fixed trial's weights are stars at the right edge, and the equal
arm (every weight 1) is a dashed line on every panel. Strings from the storage are
HTML-escaped for plotly's hover texts, as in :mod:`~study.report.figures`.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from study.report import fmt
from study.report.figure_data import WeightsInfo, WeightsPanel
from study.report.figures import LAYOUT
from study.report.verdict import NOT_LEARNED

TERM_COLORS = {"multiclass": "#1B9E77", "binary": "#D95F02", "nine_class": "#7570B3", "kl": "#E7298A"}
_OTHER_TERMS = ("#66A61E", "#E6AB02", "#A6761D", "#666666")
FOLD_DASHES = ("solid", "dash", "longdash", "dashdot", "longdashdot")  # never "dot": the reference's
FOLD_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon", "hexagon")
_GREY = "#555555"
_EQUAL_LINE = "#222222"  # the equal arm's weight 1: not an arm colour (colour is the term's here)
PANELS_PER_ROW = 3


def term_color(term: str, terms: list[str]) -> str:
    if term in TERM_COLORS:
        return TERM_COLORS[term]
    others = [t for t in terms if t not in TERM_COLORS]
    return _OTHER_TERMS[others.index(term) % len(_OTHER_TERMS)] if term in others else _GREY


def fold_style(f: int) -> tuple[str, str]:
    """(line dash, marker symbol) of fold f."""
    return FOLD_DASHES[f % len(FOLD_DASHES)], FOLD_SYMBOLS[f % len(FOLD_SYMBOLS)]


def _positive(values: list[float] | None) -> list[float | None]:
    """A log axis cannot show 0, negative or missing values: gaps instead."""
    return [v if v is not None and math.isfinite(v) and v > 0 else None for v in values or []]


def _panel_title(p: WeightsPanel) -> str:
    moved = p.movement.largest if p.movement is not None else None
    if p.arm in NOT_LEARNED:
        shift = "set by rule, nothing learned"
    elif moved is not None:
        shift = f"max |Δs| {fmt.num(moved, 3)} (search + confirm)"
    else:
        shift = "|Δs| not recorded"
    return f"{html.escape(p.arm)}: best trial #{p.trial}<br>{shift}"


def _panel(fig: go.Figure, p: WeightsPanel, row: int, col: int, terms: list[str]) -> None:
    arm = html.escape(p.arm)
    for f, weights in enumerate(p.trajectory):
        dash, symbol = fold_style(f)
        for term in p.terms:
            color, name = term_color(term, terms), html.escape(term)
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
                name=f"best fixed {term}",
                legendgroup=term,
                showlegend=False,
                marker=dict(symbol="star", size=13, color=term_color(term, info.terms), line=dict(width=1)),
                hovertemplate=f"best fixed trial: {html.escape(term)} weight %{{y:.3g}}<extra></extra>",
            ),
            row=row,
            col=col,
        )


def _equal_line(fig: go.Figure, row: int, col: int, x_end: float) -> None:
    """The equal arm's weights: 1 for every term, every epoch."""
    fig.add_trace(
        go.Scatter(
            x=[0.5, x_end],
            y=[1.0, 1.0],
            mode="lines",
            name="equal arm: every weight 1",
            legendgroup="equal",
            showlegend=False,
            line=dict(color=_EQUAL_LINE, dash="dash", width=1.2),
            hovertemplate="equal arm (no tuning): every weight 1<extra></extra>",
        ),
        row=row,
        col=col,
    )


def _legend(fig: go.Figure, info: WeightsInfo, n_folds: int) -> None:
    """Legend-only entries: terms by colour, folds by line style and marker, the two references."""

    def entry(name: str, group: str | None = None, **style) -> None:
        fig.add_trace(go.Scatter(x=[None], y=[None], name=name, legendgroup=group, **style), row=1, col=1)

    for term in info.terms:
        entry(html.escape(term), term, mode="lines", line=dict(color=term_color(term, info.terms), width=3))
    for f in range(n_folds):
        dash, symbol = fold_style(f)
        style = dict(line=dict(color=_GREY, dash=dash), marker=dict(symbol=symbol, color=_GREY))
        entry(f"fold {f}", mode="lines+markers", **style)
    if any(p.optimum for p in info.panels):
        entry(
            "1/L_i (dotted): stationary weight of uncertainty / IMTL-L",
            mode="lines",
            line=dict(color=_GREY, dash="dot"),
        )
    if info.fixed:
        entry("best fixed trial", mode="markers", marker=dict(symbol="star", size=11, color=_GREY))
    if info.equal:
        entry(
            "equal arm: every weight 1 (no tuning)", mode="lines", line=dict(color=_EQUAL_LINE, dash="dash")
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

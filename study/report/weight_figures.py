"""The learned-weights figure: every learned arm's best trial on one log-scaled weight axis.

Colour is the loss term (never an arm's colour), line style and marker are the fold. Each
uncertainty weight is drawn against where Kendall et al.'s loss would put it for the
training loss of that epoch, exp(−s*) = 1/L_i (dotted, the term's colour), and the best
fixed trial's weights are stars at the right edge. Strings from the storage are
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

TERM_COLORS = {"multiclass": "#1B9E77", "binary": "#D95F02", "nine_class": "#7570B3", "kl": "#E7298A"}
_OTHER_TERMS = ("#66A61E", "#E6AB02", "#A6761D", "#666666")
FOLD_DASHES = ("solid", "dash", "longdash", "dashdot", "longdashdot")  # never "dot": the reference's
FOLD_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon", "hexagon")
_GREY = "#555555"


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
    shift = f"max |Δs| {fmt.num(moved, 3)} (search + confirm)" if moved is not None else "|Δs| not recorded"
    return f"{html.escape(p.arm)}: best trial #{p.trial}, {shift}"


def _panel(fig: go.Figure, p: WeightsPanel, col: int, terms: list[str]) -> None:
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
                row=1,
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
                    row=1,
                    col=col,
                )


def _fixed_stars(fig: go.Figure, info: WeightsInfo, col: int, x: float) -> None:
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
            row=1,
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
        entry("1/L_i (dotted): Kendall's optimum", mode="lines", line=dict(color=_GREY, dash="dot"))
    if info.fixed:
        entry("best fixed trial", mode="markers", marker=dict(symbol="star", size=11, color=_GREY))


def fig_weights(info: WeightsInfo | None) -> go.Figure | None:
    """Effective weight of each loss term per epoch, learned arms side by side on a shared log axis."""
    if info is None:
        return None
    n = len(info.panels)
    fig = make_subplots(
        rows=1,
        cols=n,
        shared_yaxes=True,
        subplot_titles=[_panel_title(p) for p in info.panels],
        horizontal_spacing=0.04,
    )
    n_epochs = max((len(v) for p in info.panels for w in p.trajectory for v in w.values()), default=1)
    for col, p in enumerate(info.panels, 1):
        _panel(fig, p, col, info.terms)
        _fixed_stars(fig, info, col, n_epochs + 0.7)
        dtick = max(1, math.ceil(n_epochs / 8))
        fig.update_xaxes(
            title_text="epoch", tickformat="d", dtick=dtick, range=[0.5, n_epochs + 1.2], row=1, col=col
        )
    _legend(fig, info, max(len(p.trajectory) for p in info.panels))
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="effective weight (log scale)", row=1, col=1)
    fig.update_layout(
        title="Learned loss weights per epoch (colour: term; line style and marker: fold)",
        height=480,
        legend=dict(orientation="h", y=-0.2),
        **LAYOUT,
    )
    return fig

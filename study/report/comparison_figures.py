"""The comparison figures: every arm against the baseline at a glance (the forest plot), and each
comparison's paired scores and differences, each record beside the function that draws it.

Each ``fig_*`` returns ``None`` when it has nothing to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cmi_model.weighting import NO_TUNING_ARM
from study.report.analyse import ArmComparison
from study.report.studies import Studies, arm_order, family_of
from study.report.style import LAYOUT, NO_TUNING, arm_color, esc, hover_extra, p_value

# ----------------------------------------------------------------------------- every arm against the baseline


@dataclass(frozen=True)
class ForestRow:
    """One comparison with numbers: arm b against the baseline a (difference b − a)."""

    arm: str
    baseline: str
    family: str  # the arm's (FAMILIES), shown beside its row; Holm runs over every family together
    mean: float
    low: float
    high: float
    level: int  # of the interval, in percent
    verdict: str  # in words ("fixed better", "practically equivalent", ...)
    p_value: float  # the primary test's (subject level, else the corrected resampled t-test)
    p_adjusted: float | None  # Holm-adjusted over the comparisons with the baseline
    p_equivalent: float  # posterior probability of |difference| <= rope
    n: int  # paired scores: (subject, seed) cells at subject level, (seed, fold) pairs else
    selection_biased: bool  # from the best search trials, not the confirmation
    new_subjects: bool  # about new subjects (subject level), not only these held-out ones


@dataclass(frozen=True)
class ForestInfo:
    """Every comparison with an interval, best difference first, and the rope they share."""

    rows: list[ForestRow]
    rope: float
    reference: ForestRow | None  # the no-tuning arm's row: what no tuning gives

    @property
    def baseline(self) -> str:
        return self.rows[0].baseline


def forest_row(cmp: ArmComparison) -> ForestRow | None:
    c = cmp.primary
    if c is None:
        return None
    return ForestRow(
        arm=cmp.b,
        baseline=cmp.a,
        family=family_of(cmp.b),
        mean=float(c.mean_diff),
        low=float(c.ci_low),
        high=float(c.ci_high),
        level=cmp.level,
        verdict=cmp.verdict_words(),
        p_value=float(c.p_value),
        p_adjusted=cmp.p_adjusted,
        p_equivalent=float(c.p_equivalent),
        n=int(c.n),
        selection_biased=cmp.selection_biased,
        new_subjects=cmp.about_new_subjects,
    )


def sorted_comparisons(comparisons: list[ArmComparison]) -> list[ArmComparison]:
    """Largest mean difference first; comparisons without numbers last, in arm order."""

    def key(cmp: ArmComparison) -> tuple[int, float, tuple[int, str]]:
        c = cmp.primary
        return (c is None, -float(c.mean_diff) if c is not None else 0.0, arm_order(cmp.b))

    return sorted(comparisons, key=key)


def forest_info(comparisons: list[ArmComparison]) -> ForestInfo | None:
    """The forest plot's rows: every comparison with an interval, sorted (None: none has one)."""
    rows = [r for cmp in sorted_comparisons(comparisons) if (r := forest_row(cmp)) is not None]
    if not rows:
        return None
    rope = next(cmp.primary.rope for cmp in comparisons if cmp.primary is not None)
    reference = next((r for r in rows if r.arm == NO_TUNING_ARM), None)
    return ForestInfo(rows, float(rope), reference)


def reference_score(data: Studies, cmp: ArmComparison, arm: str = NO_TUNING_ARM) -> float | None:
    """Mean score of ``arm`` over the (seed, fold) pairs of ``cmp`` (confirmation), or of its best
    search trial's folds: the line "what no tuning gives" beside another comparison's scores."""
    if arm in (cmp.a, cmp.b) or not len(cmp.pairs):
        return None
    if cmp.source == "confirmation" and data.confirm is not None:
        s = data.confirm.scores
        s = s[s["arm"] == arm].merge(cmp.pairs[["seed", "fold"]], on=["seed", "fold"])
        vals = s["score"].astype(float)
    elif cmp.source == "search" and arm in data.arms and data.arms[arm].best is not None:
        vals = pd.Series(data.arms[arm].best.fold_scores, dtype=float)
    else:
        return None
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if len(vals) else None


def fig_forest(info: ForestInfo | None) -> go.Figure | None:
    """Every arm's mean difference from the baseline with its interval, best first, on the rope band;
    the no-tuning arm's difference as a dashed line: what no tuning gives."""
    if info is None:
        return None
    rows = info.rows
    labels = [esc(r.arm) + (" (search, biased)" if r.selection_biased else "") for r in rows]
    text = [
        f"{esc(r.arm)} ({esc(r.family)}) − {esc(r.baseline)} = {r.mean:+.4f}<br>{r.level}% interval "
        f"[{r.low:+.4f}, {r.high:+.4f}] {'for new subjects' if r.new_subjects else 'on these subjects'}"
        f"<br>{esc(r.verdict)}; p {p_value(r.p_value)}"
        + ("" if r.p_adjusted is None else f", Holm-adjusted {p_value(r.p_adjusted)}")
        + f"<br>{r.n} {'(subject, seed) differences' if r.new_subjects else 'paired scores'}"
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
            line=dict(color=arm_color(NO_TUNING_ARM), dash="dash", width=1.5),
            annotation_text=NO_TUNING,
            annotation_position="top",
        )
    for label, r in zip(labels, rows, strict=True):  # each row's family, in the right margin
        fig.add_annotation(
            x=1.01,
            xref="paper",
            y=label,
            yref="y",
            text=esc(r.family),
            showarrow=False,
            xanchor="left",
            font=dict(size=11, color="#6B7280"),
            name="family",
        )
    span = [*(r.low for r in rows), *(r.high for r in rows), -info.rope, info.rope]
    pad = 0.08 * (max(span) - min(span) or 0.01)
    base = esc(info.baseline)
    fig.update_xaxes(
        range=[min(span) - pad, max(span) + pad],
        zeroline=False,
        title_text=f"arm − {base} (competition score; green band: ±rope {info.rope:g})",
    )
    fig.update_yaxes(autorange="reversed", title_text="")
    fig.update_layout(
        title=f"Every arm against {base}: mean difference and {rows[0].level}% interval, best first",
        height=150 + 42 * len(rows),
        **{**LAYOUT, "margin": dict(l=170, r=120, t=70, b=60)},
    )
    return fig


# ----------------------------------------------------------------------------- one comparison


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
            line=dict(color=arm_color(NO_TUNING_ARM), dash="dash", width=1.5),
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
    """Left: paired scores of a and b, one line per (seed, fold), and ``reference`` (the no-tuning arm's
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
    title = f"{cmp.b} vs {cmp.a}: {cmp.verdict_words(cmp.comparison)}"
    if cmp.about_new_subjects:
        title += " on these held-out subjects (fold level)"
    if cmp.selection_biased:
        title += " (selection-biased: best search trials)"
    fig.update_layout(title=title, height=430, legend=dict(orientation="h", y=-0.15), **LAYOUT)
    return fig


# ----------------------------------------------------------------------------- one comparison, subject by subject


def fig_subjects(cmp: ArmComparison) -> go.Figure | None:
    """Each held-out subject's difference b − a: one small dot per seed, a large one for its mean
    over seeds, subjects sorted by that mean; the band is the interval for new subjects, the green
    one the rope. The spread of the large dots is the subject spread τ the verdict accounts for."""
    c, p = cmp.subjects, cmp.subject_pairs
    if c is None or p is None or not len(p):
        return None
    means = p.groupby("subject")["diff"].mean().sort_values()
    order = {subject: i for i, subject in enumerate(means.index)}
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[order[x] for x in p["subject"]],
            y=p["diff"],
            mode="markers",
            name="one seed",
            text=[f"{esc(str(x))}, seed {k}" for x, k in zip(p["subject"], p["seed"], strict=True)],
            marker=dict(size=6, color="rgba(90,90,90,0.45)"),
            hovertemplate="%{text}<br>difference %{y:+.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(range(len(means))),
            y=means.to_numpy(),
            mode="markers",
            name="mean over seeds",
            text=[esc(str(x)) for x in means.index],
            marker=dict(size=11, color=arm_color(cmp.b), line=dict(width=1, color="white")),
            hovertemplate="%{text}<br>mean difference %{y:+.4f}<extra></extra>",
        )
    )
    span = [*p["diff"].tolist(), c.ci_low, c.ci_high, -c.rope, c.rope, 0.0]
    pad = 0.08 * (max(span) - min(span) or 0.01)
    fig.add_hrect(y0=c.ci_low, y1=c.ci_high, fillcolor="rgba(76,120,168,0.18)", line_width=0, layer="below")
    fig.add_hrect(y0=-c.rope, y1=c.rope, fillcolor="rgba(84,162,75,0.12)", line_width=0, layer="below")
    fig.add_hline(y=0, line=dict(color="black", width=1))
    fig.add_hline(
        y=c.mean_diff,
        line=dict(color="#1f3b73", width=2),
        annotation_text=f"mean {c.mean_diff:+.4f}, {cmp.level}% interval for new subjects "
        f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
        annotation_position="top left",
    )
    fig.update_xaxes(
        tickvals=list(range(len(means))), ticktext=[esc(str(x)) for x in means.index], tickangle=-35
    )
    fig.update_yaxes(range=[min(span) - pad, max(span) + pad], zeroline=False)
    fig.update_layout(
        title=f"{esc(cmp.b)} − {esc(cmp.a)} per held-out subject ({c.n_subjects} subjects × {c.n_seeds} seeds): "
        f"{esc(cmp.verdict_words())} for new subjects",
        yaxis_title=f"{esc(cmp.b)} − {esc(cmp.a)} (green band: ±rope {c.rope:g})",
        height=430,
        legend=dict(orientation="h", y=-0.3),
        **LAYOUT,
    )
    return fig

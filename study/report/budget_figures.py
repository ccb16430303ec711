"""What tuning buys: each arm's expected best CV score after n trials, its record
(:func:`budget_curves`) beside the figure (:func:`fig_budget`), and how many trials one arm needed
to reach another's score (:func:`trials_to_match`).

The expected best after n trials is the expected maximum of n trials drawn without replacement
from the arm's completed ones (Dodge, Gururangan, Card, Schwartz & Smith 2019, "Show Your Work:
Improved Reporting of Experimental Results", EMNLP, §3, "expected validation performance"): what a
user with a budget of n trials would have got on average, computed exactly from the trials run. It
treats the trials as exchangeable draws, which a sequential sampler's are not (its later trials
are better informed): the curve is a lower bound on what the same sampler would reach in n trials,
and the search section's best-so-far line shows the order the trials actually ran in. With outer
folds each outer fold's search is an independent repetition: the curve is their mean and the band
their range. The compute axis scales n by the arm's measured seconds per completed trial (the
trials' own timestamps; pruned trials' time is counted in, since it was spent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.special import gammaln

from study.report.studies import ArmData, Studies, arm_order
from study.report.style import LAYOUT, arm_color, esc

BUDGET_COLUMNS = ["arm", "outer_fold", "n", "expected_best", "seconds", "baseline"]


def expected_best(values) -> np.ndarray:
    """E[max of n draws without replacement] from `values`, for n = 1 … N: the i-th smallest of N
    values is the maximum of n draws with probability C(i − 1, n − 1) / C(N, n)."""
    v = np.sort(np.asarray(values, dtype=float))
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("expected_best needs at least one value, all finite")
    big_n = v.size
    i = np.arange(1, big_n + 1)[None, :]
    n = np.arange(1, big_n + 1)[:, None]
    log_comb = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    with np.errstate(invalid="ignore"):
        w = np.where(i >= n, np.exp(log_comb(i - 1, np.minimum(n, i) - 1) - log_comb(big_n, n)), 0.0)
    return w @ v


def _one_search(arm: str, d: ArmData, outer_fold: int) -> pd.DataFrame | None:
    """One search's curve: n, its expected best, n × seconds per completed trial, the enqueued
    baseline's (trial 0's) score."""
    t = d.trials
    done = t[(t["state"] == "COMPLETE") & np.isfinite(t["value"].astype(float))]
    if done.empty:
        return None
    spent = t[t["state"].isin(["COMPLETE", "PRUNED"])]["duration_s"].astype(float)
    per_trial = float(np.nansum(spent)) / len(done)
    first = done[done["number"] == t["number"].min()]["value"]
    n = np.arange(1, len(done) + 1)
    return pd.DataFrame(
        {
            "arm": arm,
            "outer_fold": outer_fold,
            "n": n,
            "expected_best": expected_best(done["value"].to_numpy(dtype=float)),
            "seconds": n * per_trial,
            "baseline": float(first.iloc[0]) if len(first) else np.nan,
        }
    )


def searches_of(studies: Studies) -> dict[int, dict[str, ArmData]]:
    """Outer fold → its arm searches; a run without outer folds is one search, outer fold 1."""
    return {k: part.arms for k, part in studies.outer} if studies.outer else {1: studies.arms}


def budget_curves(searches: dict[int, dict[str, ArmData]]) -> pd.DataFrame:
    """Every arm's curve in every search, outer fold → arm → its data (one entry, outer fold 1, for a
    run without outer folds): the figure's and the sentences' plain record."""
    frames = [
        frame
        for k, arms in sorted(searches.items())
        for arm, d in sorted(arms.items(), key=lambda kv: arm_order(kv[0]))
        if (frame := _one_search(arm, d, k)) is not None
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BUDGET_COLUMNS)


def _bands(curves: pd.DataFrame) -> pd.DataFrame:
    """Per arm and n (up to the shortest search's trials): mean, min and max over the searches."""
    short = curves.groupby(["arm", "outer_fold"])["n"].max().groupby("arm").min()
    kept = curves[curves["n"] <= curves["arm"].map(short)]
    return (
        kept.groupby(["arm", "n"])
        .agg(
            mean=("expected_best", "mean"),
            low=("expected_best", "min"),
            high=("expected_best", "max"),
            seconds=("seconds", "mean"),
            searches=("outer_fold", "nunique"),
        )
        .reset_index()
    )


def fig_budget(curves: pd.DataFrame) -> go.Figure | None:
    """Expected best CV score against the trial budget, one line per arm with its searches' range as
    a band and its enqueued baseline marked at n = 1; a button switches the x-axis to compute."""
    if curves.empty:
        return None
    bands = _bands(curves)
    fig = go.Figure()
    xs_trials, xs_seconds = [], []
    for arm in sorted(bands["arm"].unique(), key=arm_order):
        b = bands[bands["arm"] == arm]
        color = arm_color(arm)
        k = int(b["searches"].max())
        if k > 1:
            fig.add_trace(
                go.Scatter(
                    x=np.r_[b["n"], b["n"][::-1]],
                    y=np.r_[b["high"], b["low"][::-1]],
                    fill="toself",
                    line=dict(width=0),
                    fillcolor=color,
                    opacity=0.18,
                    hoverinfo="skip",
                    name=f"{arm}: range over {k} searches",
                    legendgroup=arm,
                    showlegend=False,
                )
            )
            xs_trials.append(np.r_[b["n"], b["n"][::-1]])
            xs_seconds.append(np.r_[b["seconds"], b["seconds"][::-1]])
        fig.add_trace(
            go.Scatter(
                x=b["n"],
                y=b["mean"],
                mode="lines",
                name=esc(arm),
                line=dict(color=color, width=2.5),
                legendgroup=arm,
                customdata=np.c_[b["seconds"], b["low"], b["high"]],
                hovertemplate=f"{esc(arm)}: %{{x}} trials (%{{customdata[0]:.0f}} s)<br>expected best %{{y:.4f}}"
                + ("<br>searches' range %{customdata[1]:.4f} – %{customdata[2]:.4f}" if k > 1 else "")
                + "<extra></extra>",
            )
        )
        xs_trials.append(b["n"].to_numpy())
        xs_seconds.append(b["seconds"].to_numpy())
        base = curves[(curves["arm"] == arm)].groupby("outer_fold")["baseline"].first().mean()
        if np.isfinite(base):
            fig.add_trace(
                go.Scatter(
                    x=[1],
                    y=[base],
                    mode="markers",
                    marker=dict(symbol="diamond-open", size=11, color=color, line=dict(width=2)),
                    name=f"{esc(arm)}: enqueued baseline (untuned)",
                    legendgroup=arm,
                    hovertemplate=f"{esc(arm)}'s enqueued baseline: %{{y:.4f}}<extra></extra>",
                )
            )
            xs_trials.append(np.array([1]))
            xs_seconds.append(b["seconds"].to_numpy()[:1])
    fig.update_layout(
        title="What tuning buys: expected best CV score after n trials",
        xaxis_title="trials (budget)",
        yaxis_title="expected best mean CV score",
        height=440,
        updatemenus=[
            dict(
                type="buttons",
                direction="right",
                x=1.0,
                y=1.12,
                buttons=[
                    dict(
                        label="trials",
                        method="update",
                        args=[{"x": xs_trials}, {"xaxis.title.text": "trials (budget)"}],
                    ),
                    dict(
                        label="compute",
                        method="update",
                        args=[{"x": xs_seconds}, {"xaxis.title.text": "compute (seconds of training)"}],
                    ),
                ],
            )
        ],
        **LAYOUT,
    )
    return fig


@dataclass(frozen=True)
class Match:
    """How many trials `arm` needed, in each search, to reach `target`'s score `what` (None: not
    within its budget)."""

    arm: str
    target: str
    what: str  # "untuned" (the target's enqueued baseline) or "tuned" (its best after its whole budget)
    needed: tuple[int | None, ...]  # per search, in outer-fold order
    budgets: tuple[int, ...]  # the arm's completed trials per search

    @property
    def reached(self) -> list[int]:
        """The trials needed in the searches that reached the score, fewest first."""
        return sorted(n for n in self.needed if n is not None)

    @property
    def typical(self) -> int | None:
        """The median of ``reached`` (rounded up), None when no search reached it."""
        r = self.reached
        return int(np.ceil(np.median(r))) if r else None


def trials_to_match(curves: pd.DataFrame, arm: str, target: str, what: str) -> Match | None:
    """Per search, the fewest trials n at which `arm`'s expected best reaches `target`'s untuned
    score (its enqueued baseline) or its tuned one (its expected best after its whole budget)."""
    needed, budgets = [], []
    for k, mine in curves[curves["arm"] == arm].groupby("outer_fold"):
        theirs = curves[(curves["arm"] == target) & (curves["outer_fold"] == k)]
        if theirs.empty:
            continue
        goal = (
            float(theirs["baseline"].iloc[0])
            if what == "untuned"
            else float(theirs["expected_best"].iloc[-1])
        )
        if not np.isfinite(goal):
            continue
        reached = mine[mine["expected_best"] >= goal]["n"]
        needed.append(int(reached.min()) if len(reached) else None)
        budgets.append(int(mine["n"].max()))
    return Match(arm, target, what, tuple(needed), tuple(budgets)) if needed else None

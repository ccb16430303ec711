"""The trade-off between the metric's two halves, binary F1 (x) against 9-class macro F1 (y): the
baseline arm's search trials and the front they trace, and where each arm's confirmation lands
against that front. The dominance rule (:func:`pareto_mask`, :func:`position`) is a pure function of
points; the record (:class:`TradeoffInfo`, from :func:`tradeoff_info`) sits beside its figure.

Points. Each complete search trial of the baseline arm (the tuned fixed weights) at its mean over
folds of (binary F1, macro F1); a trial without both F1s in every fold is left out. The front is
the trials that no other trial dominates (maximising both halves: another trial at least as good on
both and better on one). Each arm's marker is its confirmation mean over the (seed, fold) scores
of its current confirmation runs (those the verdict pairs), with a 95% Student-t interval on each
axis: mean ± t(0.975, J − 1) · sd / √J over its J (seed, fold) values. That interval treats the J
values as independent; the folds share training subjects, so it is narrower than an honest one and
describes where the arm's scores lie, not a test (the verdict's corrected tests are the tests).

Caveat the page states: the trials are scored on the search subjects, the confirmation on its own
(held-out) subjects, and the front is the envelope of many noisy trials, so it is optimistic. The
baseline arm's own confirmation marker shows how far those two effects move one configuration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from scipy import stats

from cmi_model.weighting import BASELINE_ARM
from study.report.studies import ArmData, ConfirmData, Studies, family_of, family_order
from study.report.style import LAYOUT, arm_color, esc, family_symbol, num

LEVEL = 0.95  # of each arm's interval on either axis
POSITIONS = ("beyond", "on", "inside")  # where a point lands against the front
TIE = 1e-9  # F1 values closer than this are equal (F1s are ratios of counts: far coarser than this)


# ----------------------------------------------------------------------------- dominance


def pareto_mask(points: Sequence[Sequence[float]] | np.ndarray, tie: float = TIE) -> np.ndarray:
    """Which rows of an (n, 2) array no other row dominates, maximising both columns.

    Row j dominates row i when it is at least as good in both columns and better in one; values
    within ``tie`` of each other are equal (means of the same scores summed in another order
    differ in the last bit), and equal rows do not dominate each other, so duplicates of a front
    point are all on the front.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    at_least = (pts[None, :, :] >= pts[:, None, :] - tie).all(axis=2)  # [i, j]: j ≥ i in both
    better = (pts[None, :, :] > pts[:, None, :] + tie).any(axis=2)  # [i, j]: j > i in one
    return ~(at_least & better).any(axis=1)


def dominators(
    point: Sequence[float], points: Sequence[Sequence[float]] | np.ndarray, tie: float = TIE
) -> np.ndarray:
    """Indices of the rows of ``points`` that dominate ``point`` (maximising both; ties as in pareto_mask)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    p = np.asarray(point, dtype=float)
    return np.flatnonzero((pts >= p - tie).all(axis=1) & (pts > p + tie).any(axis=1))


def position(point: Sequence[float], points: Sequence[Sequence[float]] | np.ndarray, tie: float = TIE) -> str:
    """Where ``point`` lands against the front of ``points``: ``inside`` when one of them dominates
    it, ``on`` when it equals one of them (within ``tie``) and none dominates it, else ``beyond``."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(dominators(point, pts, tie)):
        return "inside"
    equal = (np.abs(pts - np.asarray(point, dtype=float)) <= tie).all(axis=1)
    return "on" if equal.any() else "beyond"


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class TrialPoint:
    """One complete search trial of the baseline arm: its mean over folds."""

    number: int
    binary_f1: float
    macro_f1: float
    score: float  # the trial's value (mean CV score)
    on_front: bool


@dataclass(frozen=True)
class ArmPoint:
    """One arm's confirmation mean, its t-intervals (NaN with fewer than 2 values) and its place."""

    arm: str
    family: str
    binary_f1: float
    macro_f1: float
    binary_interval: tuple[float, float]
    macro_interval: tuple[float, float]
    n: int  # (seed, fold) values behind the mean
    position: str  # one of POSITIONS
    dominated_by: int | None  # the number of a front trial that dominates it (inside only)


@dataclass(frozen=True)
class TradeoffInfo:
    """The baseline arm's trial points and each confirmed arm's point, in family order."""

    baseline: str
    trials: tuple[TrialPoint, ...]
    arms: tuple[ArmPoint, ...]
    unplaced: tuple[str, ...] = ()  # confirmed arms without binary and macro F1 in their folds
    level: int = int(round(100 * LEVEL))

    @property
    def front(self) -> list[TrialPoint]:
        """The non-dominated trials by binary F1 (so by falling macro F1): the staircase's corners."""
        return sorted((t for t in self.trials if t.on_front), key=lambda t: (t.binary_f1, -t.macro_f1))

    def placed(self, where: str) -> list[str]:
        """The arms that land ``where`` (one of POSITIONS), in family order."""
        return [a.arm for a in self.arms if a.position == where]


def _trial_points(d: ArmData | None) -> tuple[list[tuple[int, float, float, float]], int]:
    """(number, binary F1, macro F1, value) of each complete trial with both F1s in every fold,
    and how many complete trials there are."""
    if d is None or not len(d.trials):
        return [], 0
    complete = d.trials[d.trials["state"] == "COMPLETE"]
    values = dict(zip(complete["number"], complete["value"].astype(float), strict=True))
    out: list[tuple[int, float, float, float]] = []
    if not values or not len(d.folds):
        return out, len(values)
    folds = d.folds[d.folds["number"].isin(list(values))]
    for number, f in folds.groupby("number", sort=True):
        b, m = f["binary_f1"].astype(float).to_numpy(), f["macro_f1"].astype(float).to_numpy()
        if np.isfinite(b).all() and np.isfinite(m).all():
            out.append((int(number), float(b.mean()), float(m.mean()), float(values[number])))
    return out, len(values)


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaN with fewer than 2; zero width without spread)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    mean = float(x.mean())
    if (x == x[0]).all():  # no spread (scipy's sem would be rounding noise, not zero)
        return (mean, mean)
    sem = float(stats.sem(x))
    low, high = stats.t.interval(level, x.size - 1, loc=mean, scale=sem)
    return (float(low), float(high))


def _arm_values(confirm: ConfirmData | None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per confirmed arm (family order), its (seed, fold) binary and macro F1 where both are finite;
    and the confirmed arms with none."""
    if confirm is None or not len(confirm.scores):
        return {}, []
    s = confirm.scores
    found, unplaced = {}, []
    for arm in sorted(set(s["arm"]), key=family_order):
        rows = s[s["arm"] == arm]
        b, m = rows["binary_f1"].astype(float).to_numpy(), rows["macro_f1"].astype(float).to_numpy()
        keep = np.isfinite(b) & np.isfinite(m)
        if keep.any():
            found[arm] = (b[keep], m[keep])
        else:
            unplaced.append(arm)
    return found, unplaced


def tradeoff_info(data: Studies) -> TradeoffInfo | None:
    """The figure's record; None without a baseline trial point or a confirmed arm to place
    (:func:`why_not_drawn` says which)."""
    trials, _ = _trial_points(data.arms.get(BASELINE_ARM))
    values, unplaced = _arm_values(data.confirm)
    if not trials or not values:
        return None
    pts = np.array([(b, m) for _, b, m, _ in trials])
    mask = pareto_mask(pts)
    points = tuple(TrialPoint(n, b, m, v, bool(on)) for (n, b, m, v), on in zip(trials, mask, strict=True))
    front = [(i, p) for i, p in enumerate(points) if p.on_front]
    arms = []
    for arm, (b, m) in values.items():
        mean = (float(b.mean()), float(m.mean()))
        where = position(mean, pts)
        # Some front trial dominates whatever any trial dominates: name the first of them.
        doms = set(dominators(mean, pts).tolist())
        by = next((p.number for i, p in front if i in doms), None)
        arms.append(
            ArmPoint(
                arm=arm,
                family=family_of(arm),
                binary_f1=mean[0],
                macro_f1=mean[1],
                binary_interval=t_interval(b),
                macro_interval=t_interval(m),
                n=int(b.size),
                position=where,
                dominated_by=by if where == "inside" else None,
            )
        )
    return TradeoffInfo(BASELINE_ARM, points, tuple(arms), tuple(unplaced))


def why_not_drawn(data: Studies) -> tuple[str, int] | None:
    """Why :func:`tradeoff_info` has nothing to draw: (the reason, the complete baseline trials), in
    words by sentences.tradeoff_note; None when it has."""
    trials, complete = _trial_points(data.arms.get(BASELINE_ARM))
    if BASELINE_ARM not in data.arms:
        return "no study", complete
    if not complete:
        return "no complete trial", complete
    if not trials:
        return "no F1 parts", complete
    values, _ = _arm_values(data.confirm)
    if data.confirm is None or not len(data.confirm.scores):
        return "no confirmation", complete
    if not values:
        return "no confirmation F1 parts", complete
    return None


# ----------------------------------------------------------------------------- the figure


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo or 0.02)
    return lo - pad, hi + pad


def _arm_hover(a: ArmPoint, baseline: str, level: int) -> str:
    where = {
        "beyond": f"beyond the {esc(baseline)} front: no {esc(baseline)} trial is as good on both",
        "on": f"on the {esc(baseline)} front: equal to a {esc(baseline)} trial",
        "inside": f"inside the {esc(baseline)} front: dominated by trial #{a.dominated_by}",
    }[a.position]
    lo_b, hi_b = a.binary_interval
    lo_m, hi_m = a.macro_interval
    return (
        f"{esc(a.arm)} ({esc(a.family)}), confirmation mean of {a.n} (seed, fold) runs"
        f"<br>binary F1 {num(a.binary_f1)}, {level}% t-interval [{num(lo_b)}, {num(hi_b)}]"
        f"<br>macro F1 {num(a.macro_f1)}, {level}% t-interval [{num(lo_m)}, {num(hi_m)}]<br>{where}"
    )


def _error(mean: float, interval: tuple[float, float]) -> dict:
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return dict(visible=False)
    return dict(
        type="data", symmetric=False, array=[hi - mean], arrayminus=[mean - lo], thickness=1.5, width=4
    )


def fig_tradeoff(info: TradeoffInfo | None) -> go.Figure | None:
    """Binary F1 against macro F1: the baseline arm's trials (small dots, the front's corners
    larger), the front as a staircase (everything below and left of it is dominated), and each
    arm's confirmation mean with its t-interval on both axes, marker shape by family."""
    if info is None:
        return None
    base, color = esc(info.baseline), arm_color(info.baseline)
    xs = [t.binary_f1 for t in info.trials] + [a.binary_f1 for a in info.arms]
    ys = [t.macro_f1 for t in info.trials] + [a.macro_f1 for a in info.arms]
    for a in info.arms:
        xs += [v for v in a.binary_interval if math.isfinite(v)]
        ys += [v for v in a.macro_interval if math.isfinite(v)]
    (x0, x1), (y0, y1) = _span(xs), _span(ys)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[t.binary_f1 for t in info.trials],
            y=[t.macro_f1 for t in info.trials],
            mode="markers",
            name=f"{base} search trials (mean over folds)",
            text=[
                f"{base} trial #{t.number}: CV score {num(t.score)}{' (on the front)' if t.on_front else ''}"
                for t in info.trials
            ],
            hovertemplate="%{text}<br>binary F1 %{x:.4f}<br>macro F1 %{y:.4f}<extra></extra>",
            marker=dict(
                color=color,
                size=[8 if t.on_front else 5 for t in info.trials],
                opacity=0.55,
                line=dict(width=0),
            ),
        )
    )
    front = info.front
    # The staircase bounding what the trials dominate, run out to the axes: from the left edge at
    # the first corner's height, down at each corner's binary F1, then across (plotly's "vh").
    fig.add_trace(
        go.Scatter(
            x=[x0, *(t.binary_f1 for t in front), front[-1].binary_f1],
            y=[front[0].macro_f1, *(t.macro_f1 for t in front), y0],
            mode="lines",
            line=dict(color=color, width=2, shape="vh"),
            name=f"{base} front ({len(front)} of {len(info.trials)} trials)",
            hoverinfo="skip",
        )
    )
    for a in info.arms:
        fig.add_trace(
            go.Scatter(
                x=[a.binary_f1],
                y=[a.macro_f1],
                mode="markers",
                name=esc(a.arm),
                legendgroup=esc(a.family),
                legendgrouptitle_text=esc(a.family),
                text=[_arm_hover(a, info.baseline, info.level)],
                hovertemplate="%{text}<extra></extra>",
                error_x=dict(color=arm_color(a.arm), **_error(a.binary_f1, a.binary_interval)),
                error_y=dict(color=arm_color(a.arm), **_error(a.macro_f1, a.macro_interval)),
                marker=dict(
                    size=13,
                    color=arm_color(a.arm),
                    symbol=family_symbol(a.family),
                    line=dict(width=1.5, color="white"),
                ),
            )
        )
    fig.update_xaxes(range=[x0, x1], title_text="binary F1 (target vs non-target)")
    fig.update_yaxes(range=[y0, y1], title_text="9-class macro F1")
    fig.update_layout(
        title=f"Binary F1 against 9-class macro F1: the {base} search's front and each arm's confirmation "
        f"(mean, {info.level}% t-intervals)",
        height=520,
        legend=dict(groupclick="toggleitem"),
        **LAYOUT,
    )
    return fig

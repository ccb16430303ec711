"""One plain record per figure, derived from :class:`~study.report.data.ReportData`.

As in ``optuna.visualization`` (``_get_*_info`` → ``_get_*_plot``): each figure of
:mod:`~study.report.figures` and :mod:`~study.report.search_figures` draws exactly one of
these records, and everything a figure shows that is not styling is decided here, without
plotly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study import space
from study.report.compare import ArmComparison
from study.report.data import ArmData, ReportData, arm_order
from study.report.verdict import Movement

TERMS: tuple[str, ...] = ("multiclass", "binary", "nine_class", "kl")  # loss terms, in panel order
# Slice panels: each arm's own knobs in arm order, then the shared ones.
PARAM_ORDER: tuple[str, ...] = tuple(
    dict.fromkeys(p.name for params in (*space.ARM_PARAMS.values(), space.SHARED) for p in params)
)
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


def fixed_reference_weights(arms: dict[str, ArmData]) -> dict[str, float]:
    """Mean over folds of the best fixed trial's effective weights (term → weight)."""
    d = arms.get("fixed")
    if d is None or d.best is None or not d.best.fold_weights:
        return {}
    out = {}
    for term in {k for w in d.best.fold_weights for k in w}:
        vals = [v for w in d.best.fold_weights if math.isfinite(v := w.get(term, math.nan))]
        if vals:
            out[term] = float(np.mean(vals))
    return out


# Arms whose weight has a stationary point at 1/L_i: uncertainty (Σ exp(−s)·L + s, exp(−s*) = 1/L)
# and IMTL-L (Σ exp(s)·L − s, exp(s*) = 1/L). DWA, FAMO (weights normalised to sum to 1), random
# and direct weights have no such point, so no reference is drawn for them.
KENDALL_ARMS: tuple[str, ...] = ("uncertainty", "imtl_l")
# Arms without a weights panel: fixed (its best trial's weights are the stars) and equal (every
# weight 1: the reference line on every panel).
NO_PANEL: tuple[str, ...] = ("fixed", "equal")


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
    equal: bool = False  # the study has an equal arm: a reference line at weight 1 ("no tuning")

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(t for p in self.panels for t in p.terms))


def _terms(named: set[str]) -> list[str]:
    return [t for t in TERMS if t in named] + sorted(named - set(TERMS))


def _inverse(losses: list[float]) -> list[float]:
    return [1.0 / v if math.isfinite(v) and v > 0 else math.nan for v in losses]


def _panel(arm: ArmData, movement: Movement | None) -> WeightsPanel | None:
    best = arm.best
    if best is None or not best.weight_trajectory:
        return None
    terms = _terms({k for w in best.weight_trajectory for k in w})
    if not terms:
        return None
    optimum = []
    if arm.arm in KENDALL_ARMS and any(f.loss_trajectory for f in best.folds):
        optimum = [{t: _inverse(f.loss_trajectory.get(t, [])) for t in terms} for f in best.folds]
    return WeightsPanel(arm.arm, best.number, terms, best.weight_trajectory, optimum, movement)


def weights_info(
    arms: dict[str, ArmData],
    movement: dict[str, Movement] | None = None,
    fixed: dict[str, float] | None = None,
) -> WeightsInfo | None:
    """One panel per arm but fixed and equal whose best trial recorded a weight trajectory."""
    panels = [
        p
        for name, d in sorted(arms.items(), key=lambda kv: arm_order(kv[0]))
        if name not in NO_PANEL and (p := _panel(d, (movement or {}).get(name))) is not None
    ]
    return WeightsInfo(panels, dict(fixed or {}), equal="equal" in arms) if panels else None


# ----------------------------------------------------------------------------- every arm against fixed


@dataclass(frozen=True)
class ForestRow:
    """One comparison with numbers: arm b against the baseline a (difference b − a)."""

    arm: str
    baseline: str
    mean: float
    low: float
    high: float
    level: int  # of the interval, in percent
    verdict: str  # in words ("fixed better", "practically equivalent", ...)
    p_value: float  # corrected resampled t-test
    p_adjusted: float | None  # Holm-adjusted over the comparisons with the baseline
    p_equivalent: float  # posterior probability of |difference| <= rope
    n: int  # paired scores
    selection_biased: bool  # from the best search trials, not the confirmation


@dataclass(frozen=True)
class ForestInfo:
    """Every comparison with an interval, best difference first, and the rope they share."""

    rows: list[ForestRow]
    rope: float
    reference: ForestRow | None  # the equal arm's row: what no tuning gives

    @property
    def baseline(self) -> str:
        return self.rows[0].baseline


def forest_row(cmp: ArmComparison) -> ForestRow | None:
    c = cmp.comparison
    if c is None:
        return None
    return ForestRow(
        arm=cmp.b,
        baseline=cmp.a,
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
    )


def sorted_comparisons(comparisons: list[ArmComparison]) -> list[ArmComparison]:
    """Largest mean difference first; comparisons without numbers last, in arm order."""

    def key(cmp: ArmComparison) -> tuple[int, float, tuple[int, str]]:
        c = cmp.comparison
        return (c is None, -float(c.mean_diff) if c is not None else 0.0, arm_order(cmp.b))

    return sorted(comparisons, key=key)


def forest_info(comparisons: list[ArmComparison]) -> ForestInfo | None:
    """The forest plot's rows: every comparison with an interval, sorted (None: none has one)."""
    rows = [r for cmp in sorted_comparisons(comparisons) if (r := forest_row(cmp)) is not None]
    if not rows:
        return None
    rope = next(cmp.comparison.rope for cmp in comparisons if cmp.comparison is not None)
    reference = next((r for r in rows if r.arm == "equal"), None)
    return ForestInfo(rows, float(rope), reference)


def reference_score(data: ReportData, cmp: ArmComparison, arm: str = "equal") -> float | None:
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


@dataclass(frozen=True)
class LandscapeInfo:
    """Complete fixed-weight trials over alpha × kl_weight, and the best one."""

    trials: pd.DataFrame  # number, alpha, kl_weight, nine_class_loss_weight (NaN if absent), value
    best: tuple[int, float, float] | None  # (number, alpha, kl_weight)


def landscape_info(fixed: ArmData) -> LandscapeInfo | None:
    t = _complete_with(fixed, ("alpha", "kl_weight"))
    if not len(t):
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


def _complete_with(arm: ArmData, params: Sequence[str]) -> pd.DataFrame:
    t = arm.trials
    cols = [f"params_{p}" for p in params]
    if not len(t) or any(c not in t.columns for c in cols):
        return t.iloc[0:0]
    t = t[t["state"] == "COMPLETE"]
    return t.dropna(subset=cols + ["value"])


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
        params = [p for p in PARAM_ORDER if p in present] + sorted(p for p in present if p not in PARAM_ORDER)
    params = [p for p in params if f"params_{p}" in t.columns and t[f"params_{p}"].notna().any()]
    if not len(t) or not params:
        return None
    cols = ["number", "value", *(f"params_{p}" for p in params)]
    return SliceInfo(
        arm.arm, params, t[cols].reset_index(drop=True), {p: arm.param_log.get(p, False) for p in params}
    )


def importances_info(arms: dict[str, ArmData]) -> dict[str, dict[str, float]]:
    """fANOVA importances of each arm that has them, arms in order."""
    names = sorted((a for a, d in arms.items() if d.importances), key=arm_order)
    return {a: dict(arms[a].importances or {}) for a in names}


def _pad(values: Sequence[float], n: int) -> list[float]:
    return list(values[:n]) + [math.nan] * (n - len(values[:n]))


def metric_parts_frame(data: ReportData) -> pd.DataFrame:
    """Per arm and fold: score, binary F1, macro F1 of its best configuration (confirmation preferred)."""
    frames = []
    for arm in data.arm_names():
        if data.confirm is not None and (data.confirm.scores["arm"] == arm).any():
            s = data.confirm.scores[data.confirm.scores["arm"] == arm]
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": "confirmation",
                        "score": s["score"],
                        "binary_f1": s["binary_f1"],
                        "macro_f1": s["macro_f1"],
                    }
                )
            )
        elif arm in data.arms and data.arms[arm].best is not None:
            b = data.arms[arm].best
            n = len(b.fold_scores)
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": f"search trial #{b.number}",
                        "score": b.fold_scores,
                        "binary_f1": _pad(b.fold_binary_f1, n),
                        "macro_f1": _pad(b.fold_macro_f1, n),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["arm", "source", "score", "binary_f1", "macro_f1"])
    return pd.concat(frames, ignore_index=True)

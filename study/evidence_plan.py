"""What more confirm seeds, or the remaining outer folds' subjects, would give: the verdict the user
reads, with a stated probability, at a stated true difference (:func:`evidence_plan`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

from study.stats import EQUIVALENCE_ALPHA, MAX_SEEDS
from study.subject_level import SubjectComparison

PLAN_PROBABILITY = 0.8  # a plan names the seeds at which its verdict comes with at least this probability


@dataclass(frozen=True)
class EvidencePlan:
    """What more confirm seeds, or the remaining outer folds' subjects, would give (see
    :func:`evidence_plan`)."""

    verdict: str  # "better" (either side) or "practically equivalent"
    effect: float  # the true difference the promise assumes (0 for equivalence)
    probability_now: float  # chance of that verdict at the current H and R, were the effect true
    seeds_needed: int | None  # fewest seeds (≤ MAX_SEEDS) at `subjects` reaching PLAN_PROBABILITY
    note: str  # the promise, or why more seeds cannot keep it
    subjects: int = 0  # the held-out subjects the plan assumes (more than now: the remaining outer folds)


def projected_se(
    cmp: SubjectComparison, n_seeds: int, high: bool = True, n_subjects: int | None = None
) -> tuple[float, float]:
    """(standard error, df) the comparison would have with n_seeds seeds at n_subjects held-out
    subjects (default its own H) and as many subjects per fold model as now: Var = τ²/H +
    σ_m²/(K·R') + σ_e²/(H·R'), τ² and σ_m² at their upper bounds (``high``) or point estimates,
    Welch–Satterthwaite df over the subject and model parts."""
    if not cmp.decidable:
        raise ValueError("one seed: the variance components are not estimated, so nothing can be projected")
    h, r = n_subjects or cmp.n_subjects, int(n_seeds)
    k = max(cmp.models_per_seed * h / cmp.n_subjects, 1.0)
    if r < 2:
        raise ValueError(f"projection needs at least 2 seeds, got {r}")
    tau2, model2 = cmp.components_high if high else (max(cmp.components[0], 0.0), max(cmp.components[1], 0.0))
    resid2 = max(cmp.components[2], 0.0)
    t1, t2 = tau2 / h + resid2 / (h * r), model2 / (k * r)
    var = t1 + t2
    if var <= 0:
        return 0.0, float(h - 1)
    df = var**2 / (t1**2 / (h - 1) + t2**2 / max(k * r - 1, 1))
    return math.sqrt(var), float(min(max(df, 1.0), h - 1))


def verdict_probability(
    verdict: str, effect: float, se: float, df: float, rope: float, alpha: float, m: int = 1
) -> float:
    """Chance that a comparison with this standard error and df gives `verdict` when the true
    difference is `effect` (the estimate ~ N(effect, se²)). "better": the interval beyond the rope on
    the effect's side; "practically equivalent": both one-sided tests of the rope's edges rejected,
    i.e. |estimate| ≤ rope − t·se; both at the strictest Holm level of m comparisons."""
    if se <= 0:
        return float(abs(effect) > rope) if verdict == "better" else float(abs(effect) <= rope)
    if verdict == "better":
        return float(sps.norm.sf(sps.t.ppf(1 - alpha / (2 * m), df) - (abs(effect) - rope) / se))
    edge = rope - sps.t.ppf(1 - EQUIVALENCE_ALPHA / m, df) * se
    if edge <= 0:
        return 0.0
    return float(sps.norm.cdf((edge - effect) / se) - sps.norm.cdf((-edge - effect) / se))


def evidence_plan(
    cmp: SubjectComparison,
    effects: Sequence[float] | None = None,
    *,
    n_comparisons: int = 1,
    all_subjects: int | None = None,
) -> list[EvidencePlan]:
    """The confirm seeds at the current held-out subjects with which the verdict the user reads
    would come with probability ≥ 0.8: "better" if the true difference is each stated effect
    (default 2 × rope), "practically equivalent" if it is 0. τ and the model noise are taken at
    their upper interval bounds; with several comparisons the verdicts are Holm-adjusted, so the
    plan assumes the strictest level, α / n_comparisons. Never at the observed difference
    (observed power: Hoenig & Heisey 2001). Seeds shrink only the training noise: when the subject
    spread alone keeps a promise out of reach, the plan says so and promises nothing.

    all_subjects: the subjects every outer fold of a nested run would evaluate, when some outer
    folds are not run yet (more than cmp's H): the plan then offers them first, at the current
    seeds, and names the seeds it needs with them.
    """
    effects = (2 * cmp.rope,) if effects is None else tuple(float(e) for e in effects)
    if any(not (math.isfinite(e) and e > 0) for e in effects):
        raise ValueError(f"effects must be positive numbers, got {effects}")
    if not cmp.decidable:
        return []
    m = max(1, int(n_comparisons))
    more = all_subjects if all_subjects is not None and all_subjects > cmp.n_subjects else None
    out = []
    for verdict, effect in [*(("better", e) for e in effects), ("practically equivalent", 0.0)]:

        def prob(r: int, h: int | None = None, verdict=verdict, effect=effect) -> float:
            se, df = projected_se(cmp, r, n_subjects=h)
            return verdict_probability(verdict, effect, se, df, cmp.rope, cmp.alpha, m)

        now = prob(cmp.n_seeds)
        what = f"'{verdict}'" + (
            f" if the true difference is ±{effect:.3g}" if effect else " if the true difference is 0"
        )
        if more is not None:
            given = prob(cmp.n_seeds, more)
            seeds = next(
                (r for r in range(cmp.n_seeds, MAX_SEEDS + 1) if prob(r, more) >= PLAN_PROBABILITY), None
            )
            note = f"{what}: the remaining outer folds ({more} subjects in all) give it with probability {given:.2f} at {cmp.n_seeds} seeds (now {now:.2f})"
            if seeds is not None and seeds > cmp.n_seeds:
                note += f"; with them, {seeds} seeds give it with probability ≥ {PLAN_PROBABILITY:g}"
            elif seeds is None:
                note += f"; even with them no number of seeds up to {MAX_SEEDS} reaches {PLAN_PROBABILITY:g}"
            out.append(EvidencePlan(verdict, effect, now, seeds, note, more))
            continue
        seeds = next((r for r in range(cmp.n_seeds, MAX_SEEDS + 1) if prob(r) >= PLAN_PROBABILITY), None)
        if seeds == cmp.n_seeds:
            note = f"{what}: already likely (probability {now:.2f}) at {cmp.n_seeds} seeds"
        elif seeds is not None:
            note = (
                f"{what}: {seeds} seeds at these {cmp.n_subjects} held-out subjects give it with probability "
                f"≥ {PLAN_PROBABILITY:g} (now {now:.2f})"
            )
        else:
            floor_se = math.sqrt(cmp.components_high[0] / cmp.n_subjects)
            note = (
                f"{what}: more seeds cannot give it with probability {PLAN_PROBABILITY:g} (at most "
                f"{prob(MAX_SEEDS):.2f} at {MAX_SEEDS} seeds): the subject spread (τ up to "
                f"{math.sqrt(cmp.components_high[0]):.3g}) over {cmp.n_subjects} subjects leaves a standard "
                f"error ≥ {floor_se:.3g}; only more held-out subjects shrink it"
            )
        out.append(EvidencePlan(verdict, effect, now, seeds, note, cmp.n_subjects))
    return out

"""What a reader needs beside each comparison's numbers, as plain data: how much more evidence
would decide it, which subjects scored it, how each fold's model was chosen, and whether the
learned arm's weights moved at all.

The sentences are written by ``templates/verdict.txt.j2``, shared by the page and the
optuna-dashboard note; this module only decides what they say.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from study.report.compare import ArmComparison
from study.report.data import FoldFacts, ReportData

MOVED = 0.1  # learned log-weights that moved less than this (max |Δs| over folds) are effectively fixed
ARM_LABELS = {
    "fixed": "tuned fixed weights",
    "equal": "equal weights, no tuning",
    "uncertainty": "learned uncertainty weights",
    "direct": "learned direct weights",
    "dwa": "Dynamic Weight Average (DWA)",
    "famo": "FAMO weights",
    "imtl_l": "learned IMTL-L scales",
    "rlw": "random loss weights (RLW)",
}
# Where each scheme comes from, for the arms table.
ARM_PAPERS = {
    "fixed": "hand-tuned by the search",
    "equal": "every weight 1",
    "uncertainty": "Kendall, Gal & Cipolla 2018",
    "direct": "naive baseline",
    "dwa": "Liu, Johns & Davison 2019",
    "famo": "Liu et al. 2023",
    "imtl_l": "Liu et al. 2021",
    "rlw": "Lin et al. 2022",
}
# Arms whose weights are set by a rule and learn nothing: no movement to judge.
NOT_LEARNED = frozenset({"fixed", "equal", "rlw"})


@dataclass(frozen=True)
class Movement:
    """How far a learned arm's log-weights moved within a fold (max |Δs| over folds)."""

    arm: str
    search: float | None  # over the folds of its best search trial (None: not recorded)
    search_trial: int | None
    search_folds: int  # folds that recorded it
    confirm: float | None  # over the folds of its confirmation runs
    confirm_folds: int

    @property
    def largest(self) -> float | None:
        known = [v for v in (self.search, self.confirm) if v is not None]
        return max(known) if known else None

    @property
    def effectively_fixed(self) -> bool:
        return self.largest is not None and self.largest < MOVED


def _max_delta(folds: list[FoldFacts]) -> tuple[float | None, int]:
    known = [f.max_abs_delta_s for f in folds if f.max_abs_delta_s is not None]
    return (max(known) if known else None), len(known)


def weight_movement(data: ReportData) -> dict[str, Movement]:
    """Every learned arm (any but :data:`NOT_LEARNED`) with a best search trial or confirmation runs."""
    out = {}
    for arm in data.arm_names():
        d = data.arms.get(arm)
        best = d.best if d is not None else None
        confirm = data.confirm.fold_facts.get(arm, []) if data.confirm is not None else []
        if arm in NOT_LEARNED or (best is None and not confirm):
            continue
        search, n_search = _max_delta(best.folds if best else [])
        moved, n_confirm = _max_delta(confirm)
        out[arm] = Movement(arm, search, best.number if best else None, n_search, moved, n_confirm)
    return out


@dataclass(frozen=True)
class Verdict:
    """One comparison with the facts its headline states."""

    cmp: ArmComparison
    seeds_used: int  # confirmation seeds behind the pairs (0 for the search's best trials)
    more_seeds: int | None  # inconclusive: confirm seeds still to run to decide at this effect size
    subjects: list[str]  # the subjects whose validation folds scored the pairs (may be unrecorded: [])
    subjects_kind: str  # "holdout", "shared" (confirmation without hold-out), "search" or "none"
    rules: dict[str, int]  # "last_epoch" / "inner" / "unrecorded" → number of scoring folds
    leaky_folds: int  # folds whose epoch was chosen on subjects that also score them
    effectively_fixed: list[Movement]  # learned arms of this comparison whose weights barely moved

    @property
    def a_label(self) -> str:
        return ARM_LABELS.get(self.cmp.a, self.cmp.a)

    @property
    def b_label(self) -> str:
        return ARM_LABELS.get(self.cmp.b, self.cmp.b)


def _scoring_folds(cmp: ArmComparison, data: ReportData) -> list[FoldFacts]:
    arms = (cmp.a, cmp.b)
    if cmp.source == "confirmation" and data.confirm is not None:
        return [f for arm in arms for f in data.confirm.fold_facts.get(arm, [])]
    if cmp.source == "search":
        return [f for arm in arms if (d := data.arms.get(arm)) and d.best for f in d.best.folds]
    return []


def _subjects(cmp: ArmComparison, data: ReportData, folds: list[FoldFacts]) -> tuple[list[str], str]:
    recorded = sorted({s for f in folds for s in f.val_subjects})
    if cmp.source == "confirmation" and data.confirm is not None:
        held = data.confirm.record.holdout_subjects
        return (sorted(held), "holdout") if held else (recorded, "shared")
    return recorded, "search" if cmp.source == "search" else "none"


def _more_seeds(cmp: ArmComparison, seeds_used: int) -> int | None:
    c = cmp.comparison
    if c is None or c.verdict != "inconclusive" or c.seeds_needed is None:
        return None
    return max(1, c.seeds_needed - seeds_used)


def holm_family(comparisons: list[ArmComparison]) -> tuple[int, str] | None:
    """(number of comparisons, their common baseline) when the p-values were Holm-adjusted, else None."""
    adjusted = [c for c in comparisons if c.p_adjusted is not None]
    return (adjusted[0].n_adjusted, adjusted[0].a) if adjusted else None


def verdicts(data: ReportData) -> list[Verdict]:
    moved = weight_movement(data)
    out = []
    for cmp in data.comparisons:
        folds = _scoring_folds(cmp, data)
        seeds = int(cmp.pairs["seed"].nunique()) if cmp.source == "confirmation" else 0
        subjects, kind = _subjects(cmp, data, folds)
        rules = Counter(f.rule or "unrecorded" for f in folds)
        still = [moved[a] for a in (cmp.a, cmp.b) if a in moved and moved[a].effectively_fixed]
        out.append(
            Verdict(
                cmp=cmp,
                seeds_used=seeds,
                more_seeds=_more_seeds(cmp, seeds),
                subjects=subjects,
                subjects_kind=kind,
                rules=dict(sorted(rules.items())),
                leaky_folds=sum(f.leaks for f in folds),
                effectively_fixed=still,
            )
        )
    return out

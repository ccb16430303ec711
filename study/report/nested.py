"""A nested run's outer folds → one :class:`~study.report.studies.Studies`.

Each outer fold k was read on its own (its searches and its confirmation). The verdict is about
the procedure, so the confirmations are merged: every evaluated subject's per-seed scores
together, with each (outer fold, confirmation fold) its own fold number, since each is its own
fold model. The search figures show outer fold 1's searches; every outer fold's pick is in the
page's outer-fold table (:func:`picks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import f_oneway

from study import records
from study.nesting import Crossing
from study.report.studies import ConfirmData, Studies, arm_order, class_report


def _recoded(frame: pd.DataFrame, k: int, n_folds: int) -> pd.DataFrame:
    """Folds of outer fold k numbered after those of outer folds 1..k-1, and the outer fold named."""
    out = frame.copy()
    if "fold" in out.columns and len(out):
        out["fold"] = out["fold"] + (k - 1) * n_folds
    out["outer"] = k
    return out


def _common_seeds(confirms: list[tuple[int, ConfirmData]]) -> list[int]:
    """The seeds every confirmed outer fold has scores for: a seed missing in one outer fold would
    leave its subjects with empty cells, and the subject table would drop them all."""
    done = [set(c.scores["seed"]) for _, c in confirms if len(c.scores)]
    return sorted(set.intersection(*done)) if done else []


def _merge_confirm(parts: list[tuple[int, Studies]], warnings: list[str]) -> ConfirmData | None:
    confirms = [(k, s.confirm) for k, s in parts if s.confirm is not None]
    if not confirms:
        return None
    first = confirms[0][1]
    n_folds = max((c.n_folds or 0) for _, c in confirms) or 1
    seeds = _common_seeds(confirms)
    every = sorted({int(x) for _, c in confirms if len(c.scores) for x in c.scores["seed"]})
    if every != seeds:
        each = ", ".join(
            f"outer fold {k}: {sorted(set(c.scores['seed']))}" for k, c in confirms if len(c.scores)
        )
        warnings.append(
            f"The outer folds were confirmed with different seeds ({each}): "
            f"the verdict uses the seeds every outer fold has ({', '.join(map(str, seeds)) or 'none'}); "
            "run `cmi-study confirm --seeds R` to give every outer fold the same."
        )
    arms = sorted({a for _, c in confirms for a in c.arms}, key=arm_order)
    held = sorted({s for _, c in confirms for s in c.record.holdout_subjects})
    oofs = {arm: [o for _, c in confirms for o in c.oofs.get(arm, [])] for arm in arms}
    reports = {
        arm: class_report(
            [v for o in pairs for v in o[0]],
            [v for o in pairs for v in o[1]],
            f"{arm} confirmation, {len(confirms)} outer fold(s)",
        )
        for arm, pairs in oofs.items()
        if pairs
    }

    def frames(attr: str, keep_seeds: bool = True) -> pd.DataFrame:
        got = [_recoded(getattr(c, attr), k, n_folds) for k, c in confirms]
        out = pd.concat(got, ignore_index=True)
        return out[out["seed"].isin(seeds)].reset_index(drop=True) if keep_seeds and "seed" in out else out

    def merged(attr: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for _, c in confirms:
            for arm, items in getattr(c, attr).items():
                out.setdefault(arm, []).extend(items)
        return out

    return ConfirmData(
        study_name=first.study_name,
        record=first.record.model_copy(update={"holdout_subjects": held}),
        arms=arms,
        seeds=seeds,
        n_folds=n_folds * len(confirms),  # each (outer fold, fold) its own fold of every seed
        trials=frames("trials", keep_seeds=False),
        scores=frames("scores"),
        params=first.params,
        oof_reports=reports,
        oofs=oofs,
        fold_facts=merged("fold_facts"),
        subject_scores=frames("subject_scores"),
        superseded=merged("superseded"),
        forced=tuple(sorted({a for _, c in confirms for a in c.forced}, key=arm_order)),
        sources=first.sources,
    )


def merge(name: str, parts: list[tuple[int, Studies]], crossing: Crossing) -> Studies:
    """One Studies of every outer fold read (`parts`, by k)."""
    first = parts[0][1]
    n_outer = next(
        (
            int(n)
            for _, part in parts
            for d in part.arms.values()
            if isinstance(n := (d.record.settings.get("study") or {}).get("outer_folds"), int)
        ),
        None,
    )
    warnings: list[str] = []
    confirm = _merge_confirm(parts, warnings)
    return Studies(
        name=name,
        storage_url=first.storage_url,
        existing_studies=first.existing_studies,
        arms=first.arms,
        confirm=confirm,
        read_warnings=tuple(warnings),
        generated_at=first.generated_at,
        outer=tuple(parts),
        n_outer=n_outer,
        crossing=crossing,
    )


@dataclass(frozen=True)
class Pick:
    """One arm's search in one outer fold: what it picked and what that pick scored."""

    outer: int
    arm: str
    held_out: int  # subjects of the outer fold
    trials: str  # state summary of the search
    best_trial: int | None
    cv_score: float | None  # the pick's own (selection-biased) inner-CV score
    params: dict[str, Any]
    confirmed: float | None  # the pick's mean held-out score over its confirmation folds and seeds


def _no_search(arm: str) -> str:
    source = records.source_arm(arm)
    return f"no search: {source}'s pick at its learned weights" if source != arm else "no search"


def picks(data: Studies) -> list[Pick]:
    """Every (outer fold, arm) search's pick: do the searches agree?"""
    out = []
    for k, part in data.outer:
        held = len(part.confirm.record.holdout_subjects) if part.confirm is not None else 0
        if not held:
            held = len(next(iter(part.arms.values())).record.holdout_subjects) if part.arms else 0
        scores = part.confirm.scores if part.confirm is not None else pd.DataFrame()
        for arm in part.arm_names():
            d = part.arms.get(arm)
            mine = scores[scores["arm"] == arm]["score"] if len(scores) else pd.Series(dtype=float)
            out.append(
                Pick(
                    outer=k,
                    arm=arm,
                    held_out=held,
                    trials=d.state_summary() if d is not None else _no_search(arm),
                    best_trial=d.best.number if d is not None and d.best is not None else None,
                    cv_score=d.best.value if d is not None and d.best is not None else None,
                    params=dict(d.best.params)
                    if d is not None and d.best is not None
                    else dict(part.confirm.params.get(arm, {}) if part.confirm is not None else {}),
                    confirmed=float(mine.mean()) if len(mine) else None,
                )
            )
    return out


@dataclass(frozen=True)
class SearchSpread:
    """How much of one comparison's difference varies with the outer fold (its searches and its
    subjects) beyond what the spread of subjects within an outer fold explains."""

    a: str
    b: str
    per_outer: dict[int, tuple[int, float]]  # k → (subjects, mean of their per-subject differences)
    p_value: float  # one-way ANOVA of the per-subject mean differences by outer fold
    search_sd: float  # sd of the outer-fold component (method of moments, 0 when below the noise)
    within_sd: float  # sd of the per-subject mean differences within an outer fold


def search_spread(a: str, b: str, subject_pairs: pd.DataFrame | None, data: Studies) -> SearchSpread | None:
    """The outer-fold component of b − a (None without two outer folds of scored subjects)."""
    if subject_pairs is None or not len(subject_pairs) or not data.outer:
        return None
    outer_of = {s: k for k, part in data.outer if part.confirm for s in part.confirm.record.holdout_subjects}
    per_subject = subject_pairs.groupby("subject")["diff"].mean()
    groups: dict[int, list[float]] = {}
    for subject, d in per_subject.items():
        if subject in outer_of:
            groups.setdefault(outer_of[subject], []).append(float(d))
    groups = {k: v for k, v in sorted(groups.items()) if len(v) >= 2}
    if len(groups) < 2:
        return None
    values = list(groups.values())
    p = float(f_oneway(*values).pvalue)
    sizes = np.array([len(v) for v in values], float)
    n, g = sizes.sum(), len(values)
    means = np.array([np.mean(v) for v in values])
    grand = np.concatenate(values).mean()
    ms_between = float((sizes * (means - grand) ** 2).sum() / (g - 1))
    ms_within = float(
        sum(((np.asarray(v) - m) ** 2).sum() for v, m in zip(values, means, strict=True)) / (n - g)
    )
    n0 = (n - (sizes**2).sum() / n) / (g - 1)  # the mean group size, for unequal groups
    return SearchSpread(
        a=a,
        b=b,
        per_outer={k: (len(v), float(np.mean(v))) for k, v in groups.items()},
        p_value=p,
        search_sd=float(np.sqrt(max(0.0, (ms_between - ms_within) / n0))),
        within_sd=float(np.sqrt(ms_within)),
    )

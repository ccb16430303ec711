"""Studies → :class:`Report`: the second stage (read → analyse → draw). The arms' scores
paired and compared with :mod:`study.stats` and :mod:`study.subject_level`, what each comparison's headline states, how
far each learned arm's weights moved, and every warning, computed once into one immutable
record that the page and the optuna-dashboard note both read.

The honest comparison pairs the confirmation study's scores by (seed, fold): each arm's best
configuration re-trained on the same fresh splits. Without it, the best search trials of two
arms are paired by fold, when both searches used the same split, and the result is flagged
as selection-biased.

Verdict sentences are written by ``templates/verdict.txt.j2`` (:mod:`.sentences`); this
module only decides what they say.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cmi_model.weighting import BASELINE_ARM, SCHEMES
from study import frozen, records
from study.evidence_plan import EvidencePlan, evidence_plan
from study.records import DataInfo
from study.report.nested import Pick, SearchSpread, picks, search_spread
from study.report.studies import ArmData, ConfirmData, FoldFacts, Movement, Studies, weight_movement
from study.stats import DEFAULT_ROPE, VERDICTS, Comparison, check_rope, holm, paired_comparison
from study.subject_level import SubjectComparison, family_verdicts, subject_comparison

MIN_PAIRS = 3  # fewer paired scores give no interval worth showing (t with 1 df: ±12.7 standard errors)


def label(arm: str) -> str:
    """An arm in words (its own name when this version does not know it)."""
    if frozen.is_frozen(arm):
        return f"fixed at {records.source_arm(arm)}'s learned weights"
    scheme = SCHEMES.get(arm)
    return scheme.label if scheme is not None else arm


# ----------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class ArmComparison:
    """Paired comparison of arm b against arm a (differences are b − a)."""

    a: str
    b: str
    source: str  # "confirmation", "search" (selection-biased best trials) or "none"
    pairs: pd.DataFrame  # seed, fold, a, b, diff
    comparison: Comparison | None
    note: str  # what the numbers rest on, or why there are none
    p_adjusted: float | None = None  # Holm-adjusted p-value (of the primary test), over several arms
    n_adjusted: int = 1  # the number of comparisons the adjustment is over
    # The primary comparison, about new subjects: the held-out subjects' per-seed scores as subjects
    # × seeds (subject_level.subject_comparison). None without per-subject records: then the fold-level
    # `comparison` (about these held-out subjects only) is all there is.
    subjects: SubjectComparison | None = None
    subject_pairs: pd.DataFrame | None = None  # subject, seed, a, b, diff
    plan: tuple[EvidencePlan, ...] = ()  # what more seeds would give, for an inconclusive verdict

    @property
    def primary(self) -> Comparison | SubjectComparison | None:
        """The comparison the headline states: about new subjects where it can be, else fold level."""
        return self.subjects if self.subjects is not None else self.comparison

    @property
    def about_new_subjects(self) -> bool:
        return self.subjects is not None

    @property
    def too_few(self) -> bool:
        """Some paired scores, but fewer than MIN_PAIRS: no interval and no verdict."""
        return self.primary is None and 0 < len(self.pairs) < MIN_PAIRS

    @property
    def selection_biased(self) -> bool:
        return self.source == "search"

    @property
    def level(self) -> int:
        """Confidence level of the interval in percent (0 when there is no comparison)."""
        return int(round(100 * (1 - self.primary.alpha))) if self.primary is not None else 0

    def verdict_words(self, of: Comparison | SubjectComparison | None = None) -> str:
        """The primary verdict in words (or that of `of`, e.g. the fold-level comparison)."""
        c = of if of is not None else self.primary
        if c is None:
            return "no verdict"
        return {"a better": f"{self.a} better", "b better": f"{self.b} better"}.get(c.verdict, c.verdict)


def _pairs_frame(sa: pd.DataFrame, sb: pd.DataFrame) -> pd.DataFrame:
    """Scores of a and b (columns seed, fold, score) joined on (seed, fold); finite pairs only."""
    merged = sa.merge(sb, on=["seed", "fold"], suffixes=("_a", "_b"))
    out = pd.DataFrame(
        {"seed": merged["seed"], "fold": merged["fold"], "a": merged["score_a"], "b": merged["score_b"]}
    )
    out = out[np.isfinite(out["a"].astype(float)) & np.isfinite(out["b"].astype(float))]
    out = out.sort_values(["seed", "fold"]).reset_index(drop=True)
    out["diff"] = out["b"] - out["a"]
    return out


def _none(a: str, b: str, note: str, pairs: pd.DataFrame | None = None) -> ArmComparison:
    empty = pd.DataFrame(columns=["seed", "fold", "a", "b", "diff"])
    return ArmComparison(a, b, "none", empty if pairs is None else pairs, None, note)


def _from_confirmation(a: str, b: str, confirm: ConfirmData, rope: float) -> ArmComparison | None:
    s = confirm.scores
    cols = ["seed", "fold", "score"]
    pairs = _pairs_frame(s[s["arm"] == a][cols], s[s["arm"] == b][cols])
    k = confirm.n_folds
    if not len(pairs) or k is None or k < 2:
        return None
    if len(pairs) < MIN_PAIRS:
        return ArmComparison(a, b, "confirmation", pairs, None, _too_few(len(pairs), "confirmation"))
    ratio = confirm.record.test_train_ratio
    ratio = ratio if ratio is not None and math.isfinite(ratio) and ratio > 0 else None  # else K-fold's
    overlap = (
        f"n_test/n_train {ratio:.3g} of its folds" if ratio else f"n_test/n_train 1/{k - 1} of {k}-fold CV"
    )
    note = (
        f"{len(pairs)} paired scores from the confirmation study ({pairs['seed'].nunique()} seed(s) × {k} "
        f"folds): each arm's best configuration re-trained on fresh fold splits; the corrected test uses "
        f"{overlap}."
    )
    comparison = paired_comparison(pairs["a"], pairs["b"], n_folds=k, rope=rope, test_train_ratio=ratio)
    return ArmComparison(
        a, b, "confirmation", pairs, comparison, note, **_about_new_subjects(a, b, confirm, rope)
    )


def _about_new_subjects(a: str, b: str, confirm: ConfirmData, rope: float) -> dict:
    """The subject-level comparison of a and b (fields of ArmComparison), if per-subject scores
    of held-out subjects were recorded for both: one paired difference per (subject, seed)."""
    s = confirm.subject_scores
    held = set(confirm.record.holdout_subjects)
    if not len(s) or not held:
        return {}
    s = s[s["subject"].isin(held)]
    table = {
        arm: s[s["arm"] == arm].pivot_table(index="subject", columns="seed", values="score") for arm in (a, b)
    }
    subjects = sorted(set(table[a].index) | set(table[b].index))
    seeds = sorted(set(table[a].columns) | set(table[b].columns))
    ta, tb = (table[arm].reindex(index=subjects, columns=seeds) for arm in (a, b))
    # The fold whose model pair scored each (subject, seed): both arms share each seed's split.
    folds = None
    if "fold" in s.columns:
        f = s[s["arm"] == a].pivot_table(index="subject", columns="seed", values="fold", aggfunc="first")
        f = f.reindex(index=subjects, columns=seeds).to_numpy(float)
        # one code per (seed, fold): fold k of seed r is another model than fold k of seed r'
        step = np.nanmax(f) + 1 if np.isfinite(f).any() else 1.0
        folds = np.where(np.isnan(f), np.nan, f + step * np.arange(len(seeds))[None, :])
    try:
        cmp = subject_comparison(ta, tb, folds=folds, rope=rope)
    except ValueError:  # fewer than 2 subjects scored by both: the fold level is all there is
        return {}
    ta, tb = ta.to_numpy(float), tb.to_numpy(float)
    long = pd.DataFrame(
        [
            (subj, seed, x, y)
            for i, subj in enumerate(subjects)
            for j, seed in enumerate(seeds)
            if np.isfinite(x := ta[i, j]) and np.isfinite(y := tb[i, j])
        ],
        columns=["subject", "seed", "a", "b"],
    )
    long["diff"] = long["b"] - long["a"]
    return {"subjects": cmp, "subject_pairs": long}


def _too_few(n: int, where: str) -> str:
    return f"{n} paired score(s) from the {where}; a verdict needs at least {MIN_PAIRS}."


def _from_search(a: str, b: str, arm_a: ArmData | None, arm_b: ArmData | None, rope: float) -> ArmComparison:
    if arm_a is None or arm_b is None or arm_a.best is None or arm_b.best is None:
        missing = [x for x, d in ((a, arm_a), (b, arm_b)) if d is None or d.best is None]
        return _none(
            a,
            b,
            f"No confirmation scores and no complete search trial for {', '.join(missing)}: nothing to compare yet.",
        )
    seed_a, seed_b = arm_a.record.seed, arm_b.record.seed
    k = arm_a.record.n_folds or len(arm_a.best.fold_scores)
    if seed_a != seed_b or arm_b.record.n_folds not in (None, k):
        return _none(
            a,
            b,
            f"No confirmation scores, and the {a} and {b} searches used different fold splits "
            f"(seed {seed_a} vs {seed_b}): their fold scores cannot be paired.",
        )
    seed = seed_a if seed_a is not None else 0
    fa, fb = (
        pd.DataFrame({"seed": seed, "fold": range(len(s)), "score": s})
        for s in (arm_a.best.fold_scores, arm_b.best.fold_scores)
    )
    pairs = _pairs_frame(fa, fb)
    if not len(pairs) or k < 2:
        return _none(a, b, "No paired fold scores: nothing to compare yet.", pairs)
    if len(pairs) < MIN_PAIRS:
        return ArmComparison(a, b, "search", pairs, None, _too_few(len(pairs), "best search trials"))
    note = (
        f"SELECTION-BIASED: no confirmation scores, so these are the {len(pairs)} fold scores of each arm's best "
        f"search trial (#{arm_a.best.number} vs #{arm_b.best.number}). The best of many noisy trials "
        f"overestimates its own score, and more so for the arm with more or noisier trials. "
        f"Run `cmi-study confirm` for an honest comparison."
    )
    comparison = paired_comparison(pairs["a"], pairs["b"], n_folds=k, rope=rope)
    return ArmComparison(a, b, "search", pairs, comparison, note)


def _compare(a: str, b: str, data: Studies, rope: float) -> ArmComparison:
    """Confirmation scores when both arms have paired ones, else the best search trials."""
    if data.confirm is not None and len(data.confirm.scores):
        found = _from_confirmation(a, b, data.confirm, rope)
        if found is not None:
            return found
    return _from_search(a, b, data.arms.get(a), data.arms.get(b), rope)


def comparison_pairs(arms: list[str]) -> list[tuple[str, str]]:
    """Every other arm against the baseline arm, or against the first arm without it."""
    pairs = (
        [(BASELINE_ARM, b) for b in arms if b != BASELINE_ARM]
        if BASELINE_ARM in arms
        else [(arms[0], b) for b in arms[1:]]
    )
    # A frozen configuration also against the learned arm it froze: did learning matter, or only
    # where it ended? (study.frozen)
    sources = [(records.source_arm(b), b) for b in arms if frozen.is_frozen(b)]
    return pairs + [(a, b) for a, b in sources if a in arms and (a, b) not in pairs]


def _subjects_in_all(data: Studies) -> int | None:
    """The subjects a nested run evaluates once every outer fold is confirmed, while some are not
    (None otherwise: more subjects are then not to be had)."""
    info = data.data_info()
    if (
        not data.outer
        or not data.n_outer
        or len(data.confirmed_outer_folds()) >= data.n_outer
        or info is None
    ):
        return None
    return info.n_subjects


def compare_all(data: Studies, rope: float) -> list[ArmComparison]:
    """Every comparison of :func:`comparison_pairs`. With several, their p-values are Holm-adjusted
    and the subject-level verdicts are made at Holm-adjusted levels (subject_level.family_verdicts): the
    chance of any false "better" (or any false "equivalent") over the family stays ≤ 5%. Each
    evidence plan assumes the strictest of those levels."""
    names = data.arm_names()
    out = [_compare(a, b, data, rope) for a, b in comparison_pairs(names)] if len(names) >= 2 else []
    tested = [i for i, c in enumerate(out) if c.primary is not None]
    if len(tested) > 1:
        adjusted = holm([out[i].primary.p_value for i in tested])  # type: ignore[union-attr]
        for i, p in zip(tested, adjusted, strict=True):
            out[i] = replace(out[i], p_adjusted=p, n_adjusted=len(tested))
    decided = [i for i, c in enumerate(out) if c.subjects is not None and c.subjects.decidable]
    if len(decided) > 1:
        subj = [out[i].subjects for i in decided]
        codes = family_verdicts(
            [c.p_direction for c in subj],
            [c.p_nonequivalence for c in subj],
            [c.mean_diff for c in subj],
            0.05,
        )
        for i, c, code in zip(decided, subj, codes, strict=True):
            out[i] = replace(out[i], subjects=replace(c, verdict=VERDICTS[int(code)]))
    remaining = _subjects_in_all(data)
    for i, c in enumerate(out):
        if c.subjects is not None and c.subjects.decidable and c.subjects.verdict == "inconclusive":
            plan = tuple(
                evidence_plan(c.subjects, n_comparisons=max(1, len(decided)), all_subjects=remaining)
            )
            out[i] = replace(out[i], plan=plan)
    return out


# ----------------------------------------------------------------------------- what each headline states


@dataclass(frozen=True)
class Verdict:
    """One comparison with the facts its headline states."""

    cmp: ArmComparison
    seeds_used: int  # confirmation seeds behind the pairs (0 for the search's best trials)
    subjects: list[str]  # the subjects whose validation folds scored the pairs (may be unrecorded: [])
    subjects_kind: str  # "holdout", "shared" (confirmation without hold-out), "search" or "none"
    rules: dict[str, int]  # "last_epoch" / "inner" / "unrecorded" → number of scoring folds
    leaky_folds: int  # folds whose epoch was chosen on subjects that also score them
    effectively_fixed: list[Movement]  # learned arms of this comparison whose weights barely moved
    outer_folds: int = 0  # outer folds whose subjects scored the pairs (0: one held-out set)
    n_outer: int | None = None  # outer folds of the nested run
    data_subjects: int | None = None  # subjects in the data
    spread: SearchSpread | None = None  # the outer-fold (search) component of the difference

    @property
    def a_label(self) -> str:
        return label(self.cmp.a)

    @property
    def b_label(self) -> str:
        return label(self.cmp.b)


def _scoring_folds(cmp: ArmComparison, data: Studies) -> list[FoldFacts]:
    arms = (cmp.a, cmp.b)
    if cmp.source == "confirmation" and data.confirm is not None:
        return [f for arm in arms for f in data.confirm.fold_facts.get(arm, [])]
    if cmp.source == "search":
        return [f for arm in arms if (d := data.arms.get(arm)) and d.best for f in d.best.folds]
    return []


def _subjects(cmp: ArmComparison, data: Studies, folds: list[FoldFacts]) -> tuple[list[str], str]:
    recorded = sorted({s for f in folds for s in f.val_subjects})
    if cmp.source == "confirmation" and data.confirm is not None:
        held = data.confirm.record.holdout_subjects
        if data.outer:  # every outer fold's held-out subjects: the procedure's verdict
            return sorted(held), "outer"
        return (sorted(held), "holdout") if held else (recorded, "shared")
    return recorded, "search" if cmp.source == "search" else "none"


def verdicts(data: Studies, comparisons: list[ArmComparison], moved: dict[str, Movement]) -> list[Verdict]:
    out = []
    for cmp in comparisons:
        folds = _scoring_folds(cmp, data)
        seeds = int(cmp.pairs["seed"].nunique()) if cmp.source == "confirmation" else 0
        subjects, kind = _subjects(cmp, data, folds)
        rules = Counter(f.rule or "unrecorded" for f in folds)
        still = [moved[a] for a in (cmp.a, cmp.b) if a in moved and moved[a].effectively_fixed]
        out.append(
            Verdict(
                cmp=cmp,
                seeds_used=seeds,
                subjects=subjects,
                subjects_kind=kind,
                rules=dict(sorted(rules.items())),
                leaky_folds=sum(f.leaks for f in folds),
                effectively_fixed=still,
                outer_folds=len(data.confirmed_outer_folds()),
                n_outer=data.n_outer,
                data_subjects=info.n_subjects if (info := data.data_info()) is not None else None,
                spread=search_spread(cmp.a, cmp.b, cmp.subject_pairs, data),
            )
        )
    return out


# ----------------------------------------------------------------------------- the report's record


@dataclass(frozen=True)
class Report:
    """Everything the report shows, as plain data, built once by :func:`analyse`."""

    studies: Studies
    data_info: DataInfo | None
    comparisons: tuple[ArmComparison, ...]
    verdicts: tuple[Verdict, ...]
    movements: dict[str, Movement]  # learned arm → how far its weights moved
    warnings: tuple[str, ...]
    rope: float  # the rope every verdict here uses
    stored_rope: float | None  # the rope stored with the study (None: an older study without one)
    picks: tuple[Pick, ...] = ()  # a nested run: each (outer fold, arm) search's pick

    @property
    def rope_overridden(self) -> bool:
        """This report reads the scores under another rope than the study's (`report --rope`)."""
        return self.stored_rope is not None and self.rope != self.stored_rope

    @property
    def holm(self) -> tuple[int, str] | None:
        """(number of comparisons, their common baseline) when the p-values were Holm-adjusted."""
        adjusted = [c for c in self.comparisons if c.p_adjusted is not None]
        return (adjusted[0].n_adjusted, adjusted[0].a) if adjusted else None


def analyse(studies: Studies, *, rope: float | None = None) -> Report:
    """The report's record; `rope` overrides the one stored with the study (else DEFAULT_ROPE)."""
    stored = studies.stored_rope()
    rope = check_rope(rope if rope is not None else stored if stored is not None else DEFAULT_ROPE)
    comparisons = compare_all(studies, rope)
    moved = weight_movement(studies)
    return Report(
        studies=studies,
        data_info=studies.data_info(),
        comparisons=tuple(comparisons),
        verdicts=tuple(verdicts(studies, comparisons, moved)),
        movements=moved,
        warnings=tuple(studies.warnings()),
        rope=rope,
        stored_rope=stored,
        picks=tuple(picks(studies)),
    )

"""Simulator of the confirmation's data-generating process, to calibrate the comparison tests.

H held-out subjects; subject h has a true difference of arms δ_h = Δ + τ·z_h (b − a), z_h standard
Gaussian, t(3) scaled to unit variance, or a centred exponential (skewed, skewness 2). For each of
R seeds the subjects are scored by K fold models: re-dealt into K folds every seed (``redealt``: a
single held-out set, as ``cmi_model.folds.holdout_folds``), in the same K folds in every seed
(``fixed``: each fold's model shared by its subjects in every seed, the harshest case), or in
``outer_folds`` fixed groups each re-dealt into K slices every seed (``nested``: what
``run --outer-folds`` and ``confirm`` do, K·outer_folds models per seed). The training
noise of one subject's difference, sd σ per seed, splits into a share ``fold_share`` shared by the
subjects one fold model scored, an optional share ``seed_share`` shared by every model of a seed
(the method assumes none: a stress case), and the rest per (subject, seed). Arrays are
(studies, H, R), vectorised over studies.

Default σ = sqrt(2 (0.007² + 0.01²)) ≈ 0.0172: a fold model's noise 0.007 per arm and a subject's
own 0.01 per arm, which reproduces the real data's 5-fold CV spread of ≈ 0.011 (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from study.evidence_plan import evidence_plan
from study.stats import DEFAULT_ROPE, VERDICTS
from study.subject_level import family_verdicts, subject_comparison, subject_decisions
from study.variance_components import variance_components

SIGMA = float(np.sqrt(2 * (0.007**2 + 0.01**2)))  # training noise of one subject's difference
DISTRIBUTIONS = ("gaussian", "t3", "skewed")
DESIGNS = ("redealt", "fixed", "nested")


@dataclass(frozen=True)
class Cell:
    n_subjects: int  # H
    n_seeds: int  # R
    tau_multiple: float  # τ / σ
    n_folds: int = 4  # K fold models per seed (per outer fold when nested)
    design: str = "redealt"
    outer_folds: int = 3  # nested only: fixed groups of subjects, each re-dealt into n_folds slices
    fold_share: float = 0.33  # of σ², shared by a fold model's subjects
    seed_share: float = 0.0  # of σ², shared by every model of a seed (assumed absent by the method)
    distribution: str = "gaussian"
    sigma: float = SIGMA
    delta: float = 0.0  # population difference Δ

    @property
    def tau(self) -> float:
        return self.tau_multiple * self.sigma


def subject_effects(rng: np.random.Generator, shape: tuple, distribution: str) -> np.ndarray:
    """Unit-variance draws of the subjects' own differences."""
    if distribution == "gaussian":
        return rng.normal(size=shape)
    if distribution == "t3":
        return rng.standard_t(3, size=shape) / np.sqrt(3.0)
    if distribution == "skewed":
        return rng.exponential(size=shape) - 1.0
    raise ValueError(f"unknown distribution {distribution!r}; one of {DISTRIBUTIONS}")


def _redeal(rng: np.random.Generator, n_studies: int, n_seeds: int, n_subjects: int, k: int) -> np.ndarray:
    """(studies, subjects, seeds) slice 0..k-1 of each subject: a fresh permutation cut by array_split
    every seed."""
    lookup = np.concatenate(
        [np.full(len(p), i) for i, p in enumerate(np.array_split(np.arange(n_subjects), k))]
    )
    order = np.argsort(rng.random((n_studies, n_seeds, n_subjects)), axis=2)  # subject at position i
    fold = np.empty((n_studies, n_seeds, n_subjects), dtype=np.int64)
    np.put_along_axis(fold, order, np.broadcast_to(lookup, (n_studies, n_seeds, n_subjects)), axis=2)
    return np.swapaxes(fold, 1, 2)


def deal_folds(rng: np.random.Generator, n_studies: int, cell: Cell) -> np.ndarray:
    """Fold model of each (study, subject, seed): array_split sizes, re-dealt per seed, fixed, or
    fixed outer groups re-dealt inside (model = group·K + slice)."""
    s, h, r, k = n_studies, cell.n_subjects, cell.n_seeds, cell.n_folds
    if cell.design == "redealt":
        return _redeal(rng, s, r, h, k)
    groups = np.array_split(np.arange(h), k if cell.design == "fixed" else cell.outer_folds)
    if cell.design == "fixed":
        lookup = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
        return np.broadcast_to(lookup[None, :, None], (s, h, r)).copy()
    if cell.design != "nested":
        raise ValueError(f"unknown design {cell.design!r}; one of {DESIGNS}")
    return np.concatenate([i * k + _redeal(rng, s, r, len(g), k) for i, g in enumerate(groups)], axis=1)


def simulate(rng: np.random.Generator, n_studies: int, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """(d, fold): differences b − a and each cell's fold, both (studies, H, R)."""
    s, h, r = n_studies, cell.n_subjects, cell.n_seeds
    fold = deal_folds(rng, s, cell)
    k = int(fold.max()) + 1  # fold models per seed
    resid_share = 1.0 - cell.fold_share - cell.seed_share
    models = rng.normal(0.0, cell.sigma * np.sqrt(cell.fold_share), (s, r, k))
    fold_noise = models[np.arange(s)[:, None, None], np.arange(r)[None, None, :], fold]
    seed_noise = rng.normal(0.0, cell.sigma * np.sqrt(cell.seed_share), (s, 1, r))
    resid = rng.normal(0.0, cell.sigma * np.sqrt(max(resid_share, 0.0)), (s, h, r))
    u = cell.delta + cell.tau * subject_effects(rng, (s, h, 1), cell.distribution)
    return u + fold_noise + seed_noise + resid, fold


def subject_level(d: np.ndarray, fold: np.ndarray | None, rope: float, alpha: float = 0.05) -> dict:
    """Vectorised :func:`study.subject_level.subject_comparison` on complete (studies, H, R) differences."""
    comp = variance_components(d, fold, alpha)
    dec = subject_decisions(comp.mean, comp.se, comp.df, rope, alpha, comp.skew)
    return dec | {"mean": comp.mean, "se": comp.se}


def rates(res: dict, delta: float) -> dict[str, float]:
    """Coverage of delta and verdict shares."""
    v = res["verdict"]
    return {
        "coverage": float(np.mean((res["ci_low"] <= delta) & (delta <= res["ci_high"]))),
        "a_better": float(np.mean(v == VERDICTS.index("a better"))),
        "b_better": float(np.mean(v == VERDICTS.index("b better"))),
        "equivalent": float(np.mean(v == VERDICTS.index("practically equivalent"))),
    }


def run_cell(rng: np.random.Generator, cell: Cell, n_studies: int = 2000, rope: float = DEFAULT_ROPE) -> dict:
    """One cell: coverage and verdict rates of the subject-level comparison (R = 1 gives no verdict:
    only its coverage is measured)."""
    d, fold = simulate(rng, n_studies, cell)
    if cell.n_seeds == 1:
        mean, se = d.mean(axis=(1, 2)), d[:, :, 0].std(axis=1, ddof=1) / np.sqrt(cell.n_subjects)
        half = sps.t.ppf(0.975, cell.n_subjects - 1) * se
        out = {"coverage": float(np.mean(np.abs(mean - cell.delta) <= half))}
        out |= {"a_better": 0.0, "b_better": 0.0, "equivalent": 0.0}
    else:
        out = rates(subject_level(d, fold, rope), cell.delta)
    return {**cell.__dict__, **out}


def family_rate(rng: np.random.Generator, cell: Cell, n_arms: int, n_studies: int, rope: float) -> dict:
    """n_arms arms all equal to the baseline: the chance of any false directional verdict (and of
    any "practically equivalent", the right answer) when every comparison is decided alone and when
    decided at Holm-adjusted levels. Each arm's scores = the baseline's + its own noise, so the
    comparisons share the baseline's noise, as in a study."""
    d0, fold = simulate(rng, n_studies, cell)  # the baseline's share of every difference
    p_dir, p_neq, means, alone = [], [], [], []
    for _ in range(n_arms):
        d1, _ = simulate(rng, n_studies, cell)
        # d_arm = arm − baseline: independent halves, scaled so each difference keeps variance σ²
        d = (d1 - d0) / np.sqrt(2.0)
        comp = variance_components(d, fold)
        dec = subject_decisions(comp.mean, comp.se, comp.df, rope, 0.05, comp.skew)
        p_dir.append(dec["p_direction"])
        p_neq.append(dec["p_nonequivalence"])
        means.append(comp.mean)
        alone.append(dec["verdict"])
    stack = lambda x: np.stack(x, axis=-1)  # noqa: E731
    holm = family_verdicts(stack(p_dir), stack(p_neq), stack(means), 0.05)
    directional = (VERDICTS.index("a better"), VERDICTS.index("b better"))
    return {
        "any_false_directional_alone": float(np.mean(np.isin(stack(alone), directional).any(axis=1))),
        "any_false_directional_holm": float(np.mean(np.isin(holm, directional).any(axis=1))),
        "all_equivalent_holm": float(np.mean((holm == VERDICTS.index("practically equivalent")).all(axis=1))),
    }


def follow_plans(rng: np.random.Generator, pilot: Cell, n_pilots: int, rope: float) -> dict:
    """Plans followed: pilots at pilot.delta (0 for equivalence, ±2·rope for "better"); each pilot's
    plan for that verdict names its seeds; a fresh study with that many seeds (same subjects' effects,
    new training noise) then gives the promised verdict or not. Returns the share of plans kept."""
    want = "practically equivalent" if pilot.delta == 0 else "better"
    d, fold = simulate(rng, n_pilots, pilot)
    kept, offered = [], 0
    for i in range(n_pilots):
        cmp = subject_comparison(0.5 + 0 * d[i], 0.5 + d[i], folds=fold[i], rope=rope)
        if cmp.verdict != "inconclusive":
            continue
        plan = next(p for p in evidence_plan(cmp, (abs(pilot.delta) or 2 * rope,)) if p.verdict == want)
        if plan.seeds_needed is None or plan.seeds_needed == pilot.n_seeds:
            continue
        offered += 1
        again = Cell(**{**pilot.__dict__, "n_seeds": plan.seeds_needed})
        d2, f2 = simulate(rng, 1, again)
        v = subject_comparison(0.5 + 0 * d2[0], 0.5 + d2[0], folds=f2[0], rope=rope).verdict
        kept.append(
            v == "practically equivalent" if want == "practically equivalent" else v.endswith("better")
        )
    return {"offered": offered, "kept": float(np.mean(kept)) if kept else float("nan")}

"""Simulator of the confirmation's data-generating process, to calibrate the comparison tests.

H held-out subjects; subject h has a true difference of arms δ_h ~ N(Δ, τ²) (b − a) and a baseline
score level that both arms share (it cancels in differences). For each of R seeds the H subjects
are shuffled and cut into K folds (``numpy.array_split``, as ``cmi_model.folds.holdout_folds``);
each (seed, fold, arm) trains one model whose noise N(0, σ_seed²) is shared by the fold's
subjects; each (subject, seed, arm) score has its own residual N(0, σ_resid²). Everything is
vectorised over studies: arrays are (studies, H, R).

Default scales (competition score units): σ_seed = 0.007, σ_resid = 0.01, baseline sd 0.03. A
single model's score on a fold of 16 of the 81 subjects then varies with sd
sqrt(0.007² + (0.03² + 0.01²)/16) ≈ 0.011, the 5-fold std seen on the real data; one subject's
training noise (0.01 per arm) is larger than a fold model's (0.007). τ is counted in units of the
seed noise of one subject's difference, sqrt(2 (σ_seed² + σ_resid²)) ≈ 0.0173; in these units the
fold-level test reproduces what was seen before (τ = 2: 93% coverage at R = 2, 75% at R = 50).
The rope is 0.005.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from study.stats import DECISION_PROBABILITY, VERDICTS, subject_decisions, two_way_estimates

SIGMA_SEED = 0.007  # per (seed, fold, arm) model noise shared by the fold's subjects
SIGMA_RESID = 0.01  # per (subject, seed, arm) residual
SIGMA_BASE = 0.03  # per-subject baseline level (cancels)
ROPE = 0.005
# The unit of τ: the seed (training) noise of one subject's difference b − a, its sd from seed to
# seed, sqrt(2 (σ_seed² + σ_resid²)) ≈ 0.0172 (what SubjectComparison.seed_sd estimates).
SEED_NOISE = float(np.sqrt(2 * (SIGMA_SEED**2 + SIGMA_RESID**2)))
TAU_MULTIPLES = (0, 1, 2, 4)  # τ / SEED_NOISE
SEED_COUNTS = (2, 5, 10, 20, 50)


@dataclass(frozen=True)
class Shape:
    name: str
    n_subjects: int  # H held out
    n_folds: int  # K
    n_total: int  # subjects in the data: folds train on the other n_total − H/K

    @property
    def test_train_ratio(self) -> float:
        n_test = self.n_subjects / self.n_folds
        return n_test / (self.n_total - n_test)


REAL = Shape("real", 20, 5, 81)
DEMO = Shape("demo", 6, 2, 18)  # the demo preset: 6 of 18 subjects held out, 2 folds


def simulate(
    rng: np.random.Generator,
    n_studies: int,
    shape: Shape,
    n_seeds: int,
    tau: float,
    delta: float = 0.0,
    sigma_seed: float = SIGMA_SEED,
    sigma_resid: float = SIGMA_RESID,
    sigma_base: float = SIGMA_BASE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, fold): scores of both arms (studies, H, R) and each subject's fold (studies, H, R)."""
    s, h, k, r = n_studies, shape.n_subjects, shape.n_folds, n_seeds
    lookup = np.concatenate([np.full(len(p), i) for i, p in enumerate(np.array_split(np.arange(h), k))])
    order = np.argsort(rng.random((s, r, h)), axis=2)  # order[s, r, i]: the subject at position i
    fold = np.empty((s, r, h), dtype=np.int64)
    np.put_along_axis(fold, order, np.broadcast_to(lookup, (s, r, h)), axis=2)
    model = rng.normal(0.0, sigma_seed, size=(2, s, r, k))
    noise_a = np.take_along_axis(model[0], fold, axis=2)
    noise_b = np.take_along_axis(model[1], fold, axis=2)
    base = rng.normal(0.75, sigma_base, size=(s, 1, h))
    true_diff = rng.normal(delta, tau, size=(s, 1, h)) if tau > 0 else np.full((s, 1, h), delta)
    resid = rng.normal(0.0, sigma_resid, size=(2, s, r, h))
    a = base + noise_a + resid[0]
    b = base + true_diff + noise_b + resid[1]
    return (np.swapaxes(x, 1, 2) for x in (a, b, fold))  # type: ignore[return-value]


def fold_differences(d: np.ndarray, fold: np.ndarray, n_folds: int) -> np.ndarray:
    """Per-(seed, fold) mean differences (studies, R·K), seed-major, from d and fold (studies, H, R)."""
    onehot = fold[..., None] == np.arange(n_folds)  # (S, H, R, K)
    sums = np.einsum("shr,shrk->srk", d, onehot)
    return (sums / onehot.sum(axis=1)).reshape(d.shape[0], -1)


def fold_level(dj: np.ndarray, n_folds: int, ratio: float, rope: float, alpha: float = 0.05) -> dict:
    """Vectorised :func:`study.stats.paired_comparison` on rows of per-(seed, fold) differences."""
    j = dj.shape[1]
    mean = dj.mean(axis=1)
    sd = dj.std(axis=1, ddof=1)
    se = np.sqrt((1.0 / j + ratio) * sd**2)
    half = sps.t.ppf(1 - alpha / 2, j - 1) * se
    p_a = sps.t.cdf((-rope - mean) / se, j - 1)
    p_b = sps.t.sf((rope - mean) / se, j - 1)
    p_eq = np.maximum(0.0, 1.0 - p_a - p_b)
    verdict = np.full(mean.shape, VERDICTS.index("inconclusive"))
    verdict = np.where(p_eq >= DECISION_PROBABILITY, VERDICTS.index("practically equivalent"), verdict)
    verdict = np.where(p_b >= DECISION_PROBABILITY, VERDICTS.index("b better"), verdict)
    verdict = np.where(p_a >= DECISION_PROBABILITY, VERDICTS.index("a better"), verdict)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "verdict": verdict}


def subject_level(d: np.ndarray, rope: float, alpha: float = 0.05) -> dict:
    """Vectorised :func:`study.stats.subject_comparison` on complete (studies, H, R) differences."""
    tw = two_way_estimates(d)
    out = subject_decisions(tw.mean, tw.se, tw.df, rope, alpha)
    return out | {"mean": tw.mean, "se": tw.se, "df": tw.df}


def rates(res: dict, delta: float) -> dict[str, float]:
    """Coverage of delta, verdict shares and rejections of 0 per side."""
    v = res["verdict"]
    return {
        "coverage": float(np.mean((res["ci_low"] <= delta) & (delta <= res["ci_high"]))),
        "a_better": float(np.mean(v == VERDICTS.index("a better"))),
        "b_better": float(np.mean(v == VERDICTS.index("b better"))),
        "equivalent": float(np.mean(v == VERDICTS.index("practically equivalent"))),
        "below_0": float(np.mean(res["ci_high"] < 0)),  # interval wholly below 0: p < α, a side
        "above_0": float(np.mean(res["ci_low"] > 0)),
    }


def run_cell(
    rng: np.random.Generator,
    shape: Shape,
    n_seeds: int,
    tau_multiple: float,
    n_studies: int = 2000,
    delta: float = 0.0,
    rope: float = ROPE,
) -> dict:
    """One cell of the calibration grid: rates of the subject-level and the fold-level tests."""
    a, b, fold = simulate(rng, n_studies, shape, n_seeds, tau_multiple * SEED_NOISE, delta)
    d = b - a
    subj = rates(subject_level(d, rope), delta)
    fold_res = fold_level(
        fold_differences(d, fold, shape.n_folds), shape.n_folds, shape.test_train_ratio, rope
    )
    return {
        "shape": shape.name,
        "H": shape.n_subjects,
        "K": shape.n_folds,
        "R": n_seeds,
        "tau_multiple": tau_multiple,
        "subject": subj,
        "fold": rates(fold_res, delta),
    }

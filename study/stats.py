"""Paired comparison of two arms scored on the same (seed, fold) splits.

Scores from repeated K-fold cross-validation are not independent: any two training
sets share most of their data, so a naive paired t-test on the J = seeds × folds
differences badly underestimates the variance of their mean and rejects far too
often. Two corrections that model this overlap are used here:

* Nadeau & Bengio (2003), "Inference for the Generalization Error", Machine Learning
  52(3):239-281: the corrected resampled t-test inflates the variance of the mean
  difference from ``var / J`` to ``(1/J + n_test/n_train) · var``; with K-fold CV,
  ``n_test/n_train = 1/(K−1)``; with held-out validation folds the actual ratio of
  the folds is passed in. Bouckaert & Frank (2004, PAKDD) recommend it for
  repeated cross-validation.
* Corani & Benavoli (2015), "A Bayesian approach for comparing cross-validated
  algorithms on multiple data sets", Machine Learning 100(2):285-304; and Benavoli,
  Corani, Demšar & Zaffalon (2017), "Time for a change: a tutorial for comparing
  multiple classifiers through Bayesian analysis", JMLR 18(77): the Bayesian
  correlated t-test. Its posterior for the mean difference is a Student t with J−1
  degrees of freedom, location the sample mean and scale
  ``sqrt((1/J + ρ/(1−ρ)) · var)`` with ρ = n_test/n_total (1/K for K-fold CV), which
  gives the probabilities that either arm is better by more than a region of practical
  equivalence (``rope``) or that they are practically equivalent.

What the data can tell: ``mde`` is the smallest true difference the corrected test
detects with 80% power at this J and spread (Cohen 1988's shift of the t quantiles);
``seeds_needed`` the number of confirmation seeds at which the observed difference would
be decided. The overlap term ``n_test/n_train`` does not shrink with more seeds, so some
differences can never be decided by re-splitting the same subjects. Several arms compared
against one are Holm-adjusted (Holm 1979, Scand. J. Statist. 6(2):65-70).

Convention: differences are ``b − a``; positive means arm ``b`` scores higher.

Subject-level comparison (:func:`subject_comparison`)
-----------------------------------------------------
The fold-level test answers "would these arms differ on these same held-out subjects if
re-trained?"; users ask "is arm b better on NEW people?". When the true difference varies from
subject to subject (spread τ), seeds average out training noise but never the spread over the
H subjects that happen to be held out, and the fold-level test, whose variance shrinks with
seeds, loses coverage of the population difference as seeds grow. :func:`subject_comparison`
takes one difference ``d[h, r]`` per (held-out subject, seed) and treats subjects and seeds as
crossed random factors (Cameron, Gelbach & Miller 2011, "Robust inference with multiway
clustering", J. Bus. Econ. Stat. 29(2):238-249; Searle, Casella & McCulloch 1992, "Variance
Components", ch. 4 for the two-way mean squares):

* mean difference = grand mean of d;
* Var(mean) = S²(subject means over seeds)/H + S²(per-seed means over subjects)/R. The seed
  term carries the training noise shared by all subjects of a seed and by the subjects of one
  fold (who share one trained model): without it the interval is a plain t over subject means,
  which covers only 81–88% even with τ = 0. Both terms contain the subject × seed residual, so
  the estimate is conservative by MS_E/(H·R) (the unbiased (MS_A + MS_B − MS_E)/(H·R) was tried
  in the simulation: its Satterthwaite df fell to ≈ 1 at R = 2 and the interval covered ≈ 99.5%);
* degrees of freedom by Welch–Satterthwaite (Satterthwaite 1946, Biometrics Bull. 2(6):110-114)
  over the two terms with H − 1 and R − 1 df; no Nadeau–Bengio overlap term (the training-set
  overlap is part of the seed term, estimated, not assumed);
* with one seed (R = 1) the seed term cannot be estimated: the subject term alone is used with
  H − 1 df, ``seed_term_estimated`` is False and the interval is too narrow (see above);
* the variance split by the method of moments on the two-way layout: τ² = (MS_A − MS_E)/R,
  clamped at 0 (MS_A = R·S²(subject means), MS_E the subject × seed residual mean square; in the
  confirmation's fold design the fold-shared noise enters MS_A and MS_E alike, so this is
  unbiased), with a 95% generalized confidence interval (Weerahandi 1993, "Generalized
  confidence intervals", JASA 88(423):899-905): the pivot (MS_A·ν_A/W_A − MS_E·ν_E/W_E)/R with
  W ~ χ²(ν) drawn 4,000 times from a fixed seed, clamped at 0, its 2.5% and 97.5% quantiles
  (approximate: the fold structure makes the residual mean square only roughly χ²);
* verdict: "a better" / "b better" when the t posterior (location the mean, scale the standard
  error, Welch–Satterthwaite df; the flat-prior posterior whose interval is the confidence
  interval) puts ≥ 1 − α/2 (0.975) beyond the rope on that side, i.e. the (1 − α) interval lies
  wholly beyond ±rope; else "practically equivalent" when P(|diff| ≤ rope) ≥ 0.95; else
  "inconclusive". ``p_value`` (against 0) is the one to Holm-adjust across arms; p < α is
  necessary, not sufficient, for a directional verdict;
* ``mde`` is the smallest true difference the test of 0 detects with 80% power at this H, R
  (a directional verdict beyond the rope needs about rope + mde); :func:`evidence_plan` states
  the seeds or held-out subjects that would detect STATED effect sizes, never the observed one
  (observed power is a function of the p-value and says nothing new: Hoenig & Heisey 2001,
  "The abuse of power", Am. Stat. 55(1):19-24).

Calibrated by simulation of the confirmation's design in ``study/calibration.py`` (see
``tests/test_stats_calibration.py`` and ``benchmarks/bench_calibration.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

VERDICTS = ("a better", "b better", "practically equivalent", "inconclusive")
DECISION_PROBABILITY = 0.95  # posterior probability needed to declare a verdict
POWER = 0.8  # for the minimum detectable effect
MAX_SEEDS = 50  # beyond this, seeds_needed is None: more seeds are not a practical answer


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`paired_comparison` (differences are b − a)."""

    mean_diff: float  # mean of b − a over the J pairs
    ci_low: float  # (1 − alpha) interval of the mean difference, corrected variance, t with J−1 df
    ci_high: float
    p_value: float  # two-sided Nadeau–Bengio corrected resampled t-test
    p_a_better: float  # Bayesian correlated t-test: P(diff < −rope)
    p_equivalent: float  # P(−rope ≤ diff ≤ rope)
    p_b_better: float  # P(diff > rope)
    n: int  # J, the number of paired scores (seeds × folds)
    verdict: str  # one of VERDICTS
    n_folds: int  # K, used for the correlation correction
    rope: float
    alpha: float
    sd_diff: float  # sample standard deviation of the differences (ddof=1)
    t_stat: float  # corrected t statistic (±inf when the differences are constant and non-zero)
    df: int  # J − 1
    naive_p_value: float  # plain paired t-test, for context only: it ignores the fold overlap
    test_train_ratio: float  # n_test / n_train of the folds, the Nadeau–Bengio overlap term
    mde: float  # smallest true |difference| detected with 80% power at this J and spread
    seeds_needed: int | None  # seeds (of n_folds pairs each) at which this mean would be decided


def _corrected_se(sd: float, j: int, ratio: float) -> float:
    """Nadeau–Bengio standard error of the mean of j differences with this overlap ratio."""
    return math.sqrt((1.0 / j + ratio) * sd**2)


def _posterior(mean: float, sd: float, j: int, ratio: float, rope: float) -> tuple[float, float, float]:
    """(P(diff < −rope), P(|diff| ≤ rope), P(diff > rope)) of the correlated t posterior."""
    if sd == 0.0:
        p_a, p_b = float(mean < -rope), float(mean > rope)
        return p_a, 1.0 - p_a - p_b, p_b
    post = sps.t(df=j - 1, loc=mean, scale=_corrected_se(sd, j, ratio))
    p_a, p_b = float(post.cdf(-rope)), float(post.sf(rope))
    return p_a, float(max(0.0, 1.0 - p_a - p_b)), p_b


def minimum_detectable_effect(sd: float, j: int, ratio: float, alpha: float = 0.05) -> float:
    """Smallest true difference that the two-sided corrected t-test at level alpha rejects
    with probability POWER, for j pairs with this spread and overlap ratio."""
    df = j - 1
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(POWER, df)) * _corrected_se(sd, j, ratio))


def seeds_needed(mean: float, sd: float, n_folds: int, ratio: float, rope: float) -> int | None:
    """Fewest seeds (n_folds pairs each) at which the posterior of this mean and spread reaches
    a verdict; None if not within MAX_SEEDS."""
    for r in range(1, MAX_SEEDS + 1):
        if max(_posterior(mean, sd, r * n_folds, ratio, rope)) >= DECISION_PROBABILITY:
            return r
    return None


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate([(m - i) * p[k] for i, k in enumerate(order)])
    out = np.empty(m)
    out[order] = np.minimum(1.0, adjusted)
    return out.tolist()


def _validate(a: Sequence[float], b: Sequence[float], n_folds: int) -> np.ndarray:
    """Return the differences b − a after checking the inputs."""
    a_arr = np.asarray(a, dtype=float)
    b_arr = np.asarray(b, dtype=float)
    if a_arr.ndim != 1 or b_arr.ndim != 1:
        raise ValueError(f"scores must be 1-D sequences, got shapes {a_arr.shape} and {b_arr.shape}")
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired scores must have equal lengths, got {a_arr.size} and {b_arr.size}")
    if a_arr.size < 2:
        raise ValueError(f"need at least 2 paired scores, got {a_arr.size}")
    if not (np.all(np.isfinite(a_arr)) and np.all(np.isfinite(b_arr))):
        raise ValueError("scores contain NaN or infinite values")
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer ≥ 2, got {n_folds!r}")
    return b_arr - a_arr


def _is_constant(d: np.ndarray) -> bool:
    """All differences equal (up to float round-off of the subtraction)."""
    scale = max(1.0, float(np.max(np.abs(d))))
    return float(np.ptp(d)) <= 1e-12 * scale


def naive_paired_t_pvalue(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the ordinary paired t-test (variance of the mean = var/J).

    Shown for context only: on cross-validated scores it ignores the overlap of the
    training sets and rejects far more often than its nominal level
    (Nadeau & Bengio 2003; Dietterich 1998, Neural Computation 10(7)).
    """
    d = _validate(a, b, n_folds=2)
    if _is_constant(d):
        return 1.0 if float(np.mean(d)) == 0.0 else 0.0
    j = d.size
    t = float(np.mean(d)) / (float(np.std(d, ddof=1)) / math.sqrt(j))
    return float(2.0 * sps.t.sf(abs(t), df=j - 1))


def paired_comparison(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_folds: int,
    rope: float = 0.005,
    alpha: float = 0.05,
    test_train_ratio: float | None = None,
) -> Comparison:
    """Compare arms a and b on paired per-(seed, fold) scores (same order in both).

    ``n_folds`` is K of the K-fold split; the number of pairs J = len(a) is seeds × K.
    ``test_train_ratio`` is n_test/n_train of the folds (default 1/(K−1), plain K-fold CV).
    The frequentist part is the corrected resampled t-test of Nadeau & Bengio (2003):
    ``t = mean / sqrt((1/J + n_test/n_train) · var)`` with J−1 degrees of freedom. The
    Bayesian part is the correlated t-test of Corani & Benavoli (2015) with the same
    scale; its probabilities decide the verdict: a side whose posterior probability of
    being better by more than ``rope`` is ≥ 0.95 wins, else "practically equivalent" if
    P(|diff| ≤ rope) ≥ 0.95, else "inconclusive".

    When every difference is the same value (zero variance) the posterior collapses
    onto that value: the probabilities are 0/1, the interval has zero width and the
    p-value is 1 if the difference is 0, else 0.
    """
    d = _validate(a, b, n_folds)
    if rope < 0:
        raise ValueError(f"rope must be ≥ 0, got {rope}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    j = int(d.size)
    k = int(n_folds)
    ratio = 1.0 / (k - 1) if test_train_ratio is None else float(test_train_ratio)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"test_train_ratio must be a positive number, got {test_train_ratio!r}")
    df = j - 1
    mean = float(np.mean(d))
    sd = 0.0 if _is_constant(d) else float(np.std(d, ddof=1))
    if sd == 0.0:
        t_stat = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p_value = 1.0 if mean == 0.0 else 0.0
        ci_low = ci_high = mean
    else:
        se = _corrected_se(sd, j, ratio)
        t_stat = mean / se
        p_value = float(min(1.0, 2.0 * sps.t.sf(abs(t_stat), df=df)))
        half = float(sps.t.ppf(1.0 - alpha / 2.0, df=df)) * se
        ci_low, ci_high = mean - half, mean + half
    p_a, p_eq, p_b = _posterior(mean, sd, j, ratio, rope)

    if p_a >= DECISION_PROBABILITY:
        verdict = "a better"
    elif p_b >= DECISION_PROBABILITY:
        verdict = "b better"
    elif p_eq >= DECISION_PROBABILITY:
        verdict = "practically equivalent"
    else:
        verdict = "inconclusive"

    return Comparison(
        mean_diff=mean,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=float(p_value),
        p_a_better=p_a,
        p_equivalent=p_eq,
        p_b_better=p_b,
        n=j,
        verdict=verdict,
        n_folds=k,
        rope=float(rope),
        alpha=float(alpha),
        sd_diff=sd,
        t_stat=float(t_stat),
        df=df,
        naive_p_value=float(naive_paired_t_pvalue(a, b)),
        test_train_ratio=ratio,
        mde=minimum_detectable_effect(sd, j, ratio, alpha),
        seeds_needed=seeds_needed(mean, sd, k, ratio, rope),
    )


# ---------------------------------------------------------------------------------------------
# Subject-level comparison: held-out subjects × seeds as crossed random factors
# ---------------------------------------------------------------------------------------------

DOMINANT = ("subjects", "seeds", "unknown")  # which part of the standard error is larger
TAU_DRAWS = 4000  # draws of the generalized pivot for the interval of subject_sd


@dataclass(frozen=True)
class TwoWay:
    """Vectorised two-way estimates over the last two axes (H subjects, R seeds) of d."""

    mean: np.ndarray  # grand mean
    se: np.ndarray  # sqrt(subject_term + seed_term)
    df: np.ndarray  # Welch–Satterthwaite degrees of freedom (H − 1 when R = 1)
    subject_term: np.ndarray  # S²(subject means over seeds) / H
    seed_term: np.ndarray  # S²(per-seed means over subjects) / R; 0 when R = 1 (not estimated)
    ms_subject: np.ndarray  # MS_A = R · S²(subject means), H − 1 df
    ms_seed: np.ndarray  # MS_B = H · S²(seed means), R − 1 df (nan when R = 1)
    ms_residual: np.ndarray  # MS_E, the subject × seed residual, (H − 1)(R − 1) df (nan when R = 1)


def two_way_estimates(d: np.ndarray) -> TwoWay:
    """Mean, standard error and mean squares of complete differences d[..., H, R] (H ≥ 2, R ≥ 1)."""
    d = np.asarray(d, dtype=float)
    h, r = d.shape[-2:]
    mean = d.mean(axis=(-2, -1))
    subj = d.mean(axis=-1)
    seed = d.mean(axis=-2)
    s_subj = subj.var(axis=-1, ddof=1)
    subject_term = s_subj / h
    if r >= 2:
        s_seed = seed.var(axis=-1, ddof=1)
        seed_term = s_seed / r
        resid = d - subj[..., :, None] - seed[..., None, :] + mean[..., None, None]
        ms_e = (resid**2).sum(axis=(-2, -1)) / ((h - 1) * (r - 1))
        ms_b = h * s_seed
        var = subject_term + seed_term
        denom = subject_term**2 / (h - 1) + seed_term**2 / (r - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            df = np.where(denom > 0, var**2 / np.where(denom > 0, denom, 1.0), float(h - 1 + r - 1))
    else:
        seed_term = np.zeros_like(subject_term)
        ms_e = ms_b = np.full_like(subject_term, np.nan)
        var = subject_term
        df = np.full_like(subject_term, float(h - 1))
    return TwoWay(mean, np.sqrt(var), df, subject_term, seed_term, r * s_subj, ms_b, ms_e)


def subject_decisions(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, rope: float, alpha: float
) -> dict[str, np.ndarray]:
    """Vectorised p-value, interval, posterior probabilities and verdict index (into VERDICTS).

    A zero (or round-off) standard error collapses the posterior onto the mean."""
    mean, se, df = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mean, se, df)))
    scale = np.maximum(1.0, np.abs(mean))
    degenerate = se <= 1e-12 * scale
    safe_se = np.where(degenerate, 1.0, se)
    t = np.where(degenerate, 0.0, mean / safe_se)
    p_value = np.where(degenerate, np.where(mean == 0, 1.0, 0.0), 2.0 * sps.t.sf(np.abs(t), df))
    half = np.where(degenerate, 0.0, sps.t.ppf(1.0 - alpha / 2.0, df) * safe_se)
    p_a = np.where(degenerate, (mean < -rope).astype(float), sps.t.cdf((-rope - mean) / safe_se, df))
    p_b = np.where(degenerate, (mean > rope).astype(float), sps.t.sf((rope - mean) / safe_se, df))
    p_eq = np.maximum(0.0, 1.0 - p_a - p_b)
    mde = np.where(degenerate, 0.0, (sps.t.ppf(1.0 - alpha / 2.0, df) + sps.t.ppf(POWER, df)) * safe_se)
    side = 1.0 - alpha / 2.0
    verdict = np.full(mean.shape, VERDICTS.index("inconclusive"))
    verdict = np.where(p_eq >= DECISION_PROBABILITY, VERDICTS.index("practically equivalent"), verdict)
    verdict = np.where(p_b >= side, VERDICTS.index("b better"), verdict)
    verdict = np.where(p_a >= side, VERDICTS.index("a better"), verdict)
    t_stat = np.where(degenerate, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), t)
    return {
        "p_value": np.minimum(1.0, p_value),
        "ci_low": mean - half,
        "ci_high": mean + half,
        "p_a_better": p_a,
        "p_equivalent": p_eq,
        "p_b_better": p_b,
        "verdict": verdict,
        "mde": mde,
        "t_stat": t_stat,
    }


@dataclass(frozen=True)
class SubjectComparison:
    """Result of :func:`subject_comparison` (differences are b − a, target: the population of
    subjects the held-out ones were drawn from)."""

    mean_diff: float  # grand mean of b − a over the H × R (subject, seed) cells used
    ci_low: float  # (1 − alpha) interval, t with the Welch–Satterthwaite df
    ci_high: float
    p_value: float  # two-sided t-test of 0 with the Welch–Satterthwaite df (Holm-adjust this one)
    p_a_better: float  # t posterior: P(diff < −rope)
    p_equivalent: float  # P(−rope ≤ diff ≤ rope)
    p_b_better: float  # P(diff > rope)
    n: int  # H × R cells used
    verdict: str  # one of VERDICTS
    rope: float
    alpha: float
    df: float  # Welch–Satterthwaite degrees of freedom (H − 1 when R = 1)
    mde: float  # smallest true |difference| the test of 0 detects with 80% power at this H, R
    n_subjects: int  # H used
    n_seeds: int  # R used
    se: float  # standard error of mean_diff: sqrt(subject_term + seed_term)
    t_stat: float  # mean_diff / se (±inf when se = 0 and the mean is not)
    subject_term: float  # S²(subject means over seeds) / H
    seed_term: float  # S²(per-seed means over subjects) / R (0.0 when not estimated)
    seed_term_estimated: bool  # False with one seed: the interval then misses the shared training noise
    seed_sd: float | None  # training noise of one (subject, seed) difference: pooled within-subject sd
    seed_shared_sd: float | None  # its part shared by all subjects of a seed: sqrt((MS_B − MS_E)/H) ≥ 0
    residual_sd: float | None  # the subject × seed residual: sqrt(MS_E)
    subject_sd: float | None  # τ, spread of the true per-subject difference: sqrt((MS_A − MS_E)/R) ≥ 0
    subject_sd_low: float | None  # 95% generalized confidence interval of τ
    subject_sd_high: float | None
    dominant: str  # one of DOMINANT: τ²/H (subjects) vs the rest of se² (seeds); unknown with R = 1
    dropped_subjects: tuple[int, ...]  # row indices left out for missing scores
    dropped_seeds: tuple[int, ...]  # column indices left out for missing scores
    note: str  # empty, or what limits the result (one seed, dropped cells)


def _complete_table(d: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """Rows (subjects) and columns (seeds) kept so that no cell is missing.

    Rule: a cell is missing when either arm's score is NaN. Repeatedly drop the row or column
    with the largest share of missing cells (a seed on ties: subjects are the population, seeds
    can be re-run) until none is missing."""
    rows, cols = list(range(d.shape[0])), list(range(d.shape[1]))
    miss = np.isnan(d)
    while rows and cols:
        sub = miss[np.ix_(rows, cols)]
        if not sub.any():
            break
        row_share, col_share = sub.mean(axis=1), sub.mean(axis=0)
        if col_share.max() >= row_share.max():
            del cols[int(np.argmax(col_share))]
        else:
            del rows[int(np.argmax(row_share))]
    return d[np.ix_(rows, cols)], rows, cols


def _tau_interval(ms_a: float, ms_e: float, h: int, r: int) -> tuple[float, float]:
    """95% generalized confidence interval of τ (Weerahandi 1993), fixed seed."""
    rng = np.random.default_rng(0)
    nu_a, nu_e = h - 1, (h - 1) * (r - 1)
    w_a = rng.chisquare(nu_a, TAU_DRAWS)
    w_e = rng.chisquare(nu_e, TAU_DRAWS)
    pivot = np.maximum(0.0, (ms_a * nu_a / w_a - ms_e * nu_e / w_e) / r)
    low, high = np.quantile(pivot, [0.025, 0.975])
    return float(math.sqrt(low)), float(math.sqrt(high))


def subject_comparison(a, b, *, rope: float = 0.005, alpha: float = 0.05) -> SubjectComparison:
    """Compare arms a and b on per-(held-out subject, seed) scores, arrays of shape (H, R).

    ``a[h, r]`` and ``b[h, r]`` are the scores of subject h validated under seed r's split (the
    same subjects in every seed). NaN marks a missing score; rows and columns are dropped by the
    rule of :func:`_complete_table` and reported in ``dropped_subjects`` / ``dropped_seeds``.
    Needs at least 2 subjects and 1 seed left; see the module docstring for the method.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.ndim != 2 or b_arr.ndim != 2:
        raise ValueError(
            f"scores must be 2-D arrays (subjects × seeds), got shapes {a_arr.shape} and {b_arr.shape}"
        )
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"a and b must have the same shape (subjects × seeds), got {a_arr.shape} and {b_arr.shape}"
        )
    if np.isinf(a_arr).any() or np.isinf(b_arr).any():
        raise ValueError("scores contain infinite values (NaN marks a missing score)")
    if rope < 0:
        raise ValueError(f"rope must be ≥ 0, got {rope}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    d, rows, cols = _complete_table(b_arr - a_arr)
    h, r = d.shape
    if h < 2 or r < 1:
        raise ValueError(
            f"need at least 2 subjects and 1 seed with complete scores, have {h} × {r} "
            f"of {a_arr.shape[0]} × {a_arr.shape[1]} after dropping missing (NaN) cells"
        )
    dropped_s = tuple(i for i in range(a_arr.shape[0]) if i not in rows)
    dropped_r = tuple(j for j in range(a_arr.shape[1]) if j not in cols)
    if _is_constant(d):
        d = np.full_like(d, float(d.mean()))  # exact zero spread, not float round-off
    tw = two_way_estimates(d)
    dec = subject_decisions(tw.mean, tw.se, tw.df, rope, alpha)
    se = float(tw.se)
    notes = []
    if r >= 2:
        ms_a, ms_b, ms_e = float(tw.ms_subject), float(tw.ms_seed), float(tw.ms_residual)
        tau2 = max(0.0, (ms_a - ms_e) / r)
        seed_sd = math.sqrt(float(np.mean(d.var(axis=1, ddof=1))))
        seed_shared_sd = math.sqrt(max(0.0, (ms_b - ms_e) / h))
        subject_sd = math.sqrt(tau2)
        residual_sd = math.sqrt(ms_e)
        tau_low, tau_high = _tau_interval(ms_a, ms_e, h, r) if ms_a + ms_e > 0 else (0.0, 0.0)
        dominant = "subjects" if tau2 / h > se**2 - tau2 / h else "seeds"
    else:
        seed_sd = seed_shared_sd = residual_sd = subject_sd = tau_low = tau_high = None
        dominant = "unknown"
        notes.append(
            "one seed: the training noise shared by a seed's (and a fold's) subjects cannot be "
            "estimated, so the interval is too narrow and subject spread and training noise cannot "
            "be told apart; run at least 2 seeds"
        )
    if dropped_s or dropped_r:
        notes.append(f"dropped {len(dropped_s)} subject(s) and {len(dropped_r)} seed(s) with missing scores")
    return SubjectComparison(
        mean_diff=float(tw.mean),
        ci_low=float(dec["ci_low"]),
        ci_high=float(dec["ci_high"]),
        p_value=float(dec["p_value"]),
        p_a_better=float(dec["p_a_better"]),
        p_equivalent=float(dec["p_equivalent"]),
        p_b_better=float(dec["p_b_better"]),
        n=h * r,
        verdict=VERDICTS[int(dec["verdict"])],
        rope=float(rope),
        alpha=float(alpha),
        df=float(tw.df),
        mde=float(dec["mde"]),
        n_subjects=h,
        n_seeds=r,
        se=se,
        t_stat=float(dec["t_stat"]),
        subject_term=float(tw.subject_term),
        seed_term=float(tw.seed_term),
        seed_term_estimated=r >= 2,
        seed_sd=seed_sd,
        seed_shared_sd=seed_shared_sd,
        residual_sd=residual_sd,
        subject_sd=subject_sd,
        subject_sd_low=tau_low,
        subject_sd_high=tau_high,
        dominant=dominant,
        dropped_subjects=dropped_s,
        dropped_seeds=dropped_r,
        note="; ".join(notes),
    )


@dataclass(frozen=True)
class EvidencePlan:
    """What would detect a STATED true difference ``effect`` (see :func:`evidence_plan`)."""

    effect: float
    detectable_now: bool  # mde at the current H, R ≤ effect
    seeds_needed: int | None  # fewest seeds (≤ MAX_SEEDS) at the current H; None: more seeds cannot
    subjects_needed: int | None  # fewest held-out subjects (≤ max_subjects) at the current R; None: cannot
    neither_practical: bool  # neither lever reaches it within its limit
    note: str  # which lever works and why


def projected_mde(cmp: SubjectComparison, n_subjects: int, n_seeds: int, alpha: float | None = None) -> float:
    """The mde the subject-level test would have with n_subjects held out and n_seeds seeds, for
    the variance components estimated in cmp (needs cmp.n_seeds ≥ 2).

    Expected estimator: Var = (τ² + σ_E²/R')/H' + (σ_B² + σ_E²/H')/R' with σ_B² the noise shared
    by a seed's subjects (seed_shared_sd²) and σ_E² the residual; Welch–Satterthwaite df. At the
    current H, R it equals se² (up to the clamping of τ² and σ_B² at 0)."""
    if not cmp.seed_term_estimated:
        raise ValueError("one seed: the seed term is not estimated, so nothing can be projected")
    alpha = cmp.alpha if alpha is None else alpha
    h, r = int(n_subjects), int(n_seeds)
    if h < 2 or r < 2:
        raise ValueError(f"projection needs at least 2 subjects and 2 seeds, got {h} and {r}")
    tau2, sb2, se2 = cmp.subject_sd**2, cmp.seed_shared_sd**2, cmp.residual_sd**2
    t1, t2 = (tau2 + se2 / r) / h, (sb2 + se2 / h) / r
    var = t1 + t2
    if var <= 0:
        return 0.0
    df = var**2 / (t1**2 / (h - 1) + t2**2 / (r - 1))
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(POWER, df)) * math.sqrt(var))


def evidence_plan(
    cmp: SubjectComparison, effects: Sequence[float] | None = None, *, max_subjects: int | None = None
) -> list[EvidencePlan]:
    """For each stated true difference (default: rope and 2 × rope) the seeds at the current H, and
    the held-out subjects at the current R, with which the test of 0 would detect it with 80% power.

    A planning statement at stated effects, never at the observed difference ("observed power",
    Hoenig & Heisey 2001). Seeds shrink only the training-noise part of the variance; subjects
    shrink the subject spread τ²/H and the residual, but not the noise shared by each seed's fold
    models (σ_B²/R). ``max_subjects`` bounds H' (e.g. the subjects the data holds); without it H'
    is searched up to 100,000.
    """
    effects = (cmp.rope, 2 * cmp.rope) if effects is None else tuple(float(e) for e in effects)
    if any(not (math.isfinite(e) and e > 0) for e in effects):
        raise ValueError(f"effects must be positive numbers, got {effects}")
    if max_subjects is not None and max_subjects < 2:
        raise ValueError(f"max_subjects must be ≥ 2, got {max_subjects}")
    h, r = cmp.n_subjects, cmp.n_seeds
    out = []
    for effect in effects:
        now = cmp.mde <= effect
        if not cmp.seed_term_estimated:
            out.append(
                EvidencePlan(effect, now, None, None, False, "one seed: run at least 2 seeds before planning")
            )
            continue
        seeds = next((k for k in range(2, MAX_SEEDS + 1) if projected_mde(cmp, h, k) <= effect), None)
        cap = 100_000 if max_subjects is None else int(max_subjects)
        subjects = None
        if projected_mde(cmp, cap, r) <= effect:  # monotone in H': bisect
            lo, hi = 2, cap
            while lo < hi:
                mid = (lo + hi) // 2
                if projected_mde(cmp, mid, r) <= effect:
                    hi = mid
                else:
                    lo = mid + 1
            subjects = lo
        parts = []
        if seeds is None:
            t_sum = sps.t.ppf(1 - cmp.alpha / 2, h - 1) + sps.t.ppf(POWER, h - 1)
            floor = t_sum * cmp.subject_sd / math.sqrt(h)  # infinitely many seeds: τ²/H is left
            why = (
                f"the subject spread alone (τ ≈ {cmp.subject_sd:.3g} over {h} subjects) leaves an mde ≥ {floor:.3g}"
                if floor > effect
                else f"not within {MAX_SEEDS} seeds"
            )
            parts.append(f"more seeds cannot: {why}")
        else:
            parts.append(f"{seeds} seeds at {h} held-out subjects")
        if subjects is None:
            floor = (
                (sps.norm.ppf(1 - cmp.alpha / 2) + sps.norm.ppf(POWER)) * cmp.seed_shared_sd / math.sqrt(r)
            )
            why = (
                f"the training noise shared by each seed's models (sd {cmp.seed_shared_sd:.3g} over {r} seeds) "
                f"leaves an mde ≥ {floor:.3g}: more seeds are needed"
                if floor > effect
                else f"not within {cap} held-out subjects"
            )
            parts.append(f"more subjects cannot: {why}")
        else:
            parts.append(f"{subjects} held-out subjects at {r} seeds")
        out.append(
            EvidencePlan(effect, now, seeds, subjects, seeds is None and subjects is None, "; ".join(parts))
        )
    return out

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

The comparison about new subjects is in :mod:`study.subject_level`, the evidence plan in
:mod:`study.evidence_plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from cmi_model.errors import InputError

VERDICTS = ("a better", "b better", "practically equivalent", "inconclusive")
# The region of practical equivalence, in competition-score units: the user's setting (`run --rope`,
# stored with the study; `report --rope` reads the same scores under another). Why 0.01: on this
# competition 5-fold CV moves 0.01-0.02 between folds, and the top leaderboard places sit ~0.005
# apart, so a smaller rope asks the study for differences no single run could show (README).
DEFAULT_ROPE = 0.01
DECISION_PROBABILITY = 0.95  # posterior probability needed to declare a verdict (fold level)
# The subject-level verdicts are tests at this level: a side when the (1 − α) interval lies beyond the
# rope, "practically equivalent" by two one-sided tests (Schuirmann 1987): each of "diff ≤ −rope" and
# "diff ≥ rope" rejected at EQUIVALENCE_ALPHA, i.e. the (1 − 2·EQUIVALENCE_ALPHA) interval inside ±rope.
EQUIVALENCE_ALPHA = 0.05
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
    rope: float = DEFAULT_ROPE,
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


def check_rope(rope: float) -> float:
    """The rope as a float, or InputError naming it: a relevance threshold in score units, 0 < rope < 1."""
    try:
        value = float(rope)
    except (TypeError, ValueError):
        raise InputError(f"rope must be a number between 0 and 1, got {rope!r}") from None
    if not (math.isfinite(value) and 0 < value < 1):
        raise InputError(f"rope must be between 0 and 1 (exclusive), got {rope!r}")
    return value

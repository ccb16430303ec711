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


# ---------------------------------------------------------------------------------------------
# Subject-level comparison: held-out subjects, fold models and seeds as sources of noise
# ---------------------------------------------------------------------------------------------

DOMINANT = ("subjects", "training", "unknown")  # which part of the standard error is larger
TAU_DRAWS = 4000  # draws of the generalized pivot for the interval of subject_sd
MAX_COMPONENT_SWEEPS = 200  # label-propagation sweeps when counting connected designs (≤ H needed)


def check_rope(rope: float) -> float:
    """The rope as a float, or InputError naming it: a relevance threshold in score units, 0 < rope < 1."""
    try:
        value = float(rope)
    except (TypeError, ValueError):
        raise InputError(f"rope must be a number between 0 and 1, got {rope!r}") from None
    if not (math.isfinite(value) and 0 < value < 1):
        raise InputError(f"rope must be between 0 and 1 (exclusive), got {rope!r}")
    return value


def _components_count(fold: np.ndarray) -> np.ndarray:
    """Connected components of the subject–model graph per study: subjects linked when one fold
    model scored both. fold (S, H, R); returns (S,). 1 when folds are re-dealt every seed (almost
    surely), K when each subject stays in one of K folds in every seed."""
    s, h, r = fold.shape
    k = int(fold.max()) + 1
    onehot = fold[..., None] == np.arange(k)  # (S, H, R, K)
    label = np.broadcast_to(np.arange(h, dtype=float), (s, h)).copy()
    for _ in range(MAX_COMPONENT_SWEEPS):
        model_min = np.where(onehot, label[:, :, None, None], np.inf).min(axis=1)  # (S, R, K)
        new = np.take_along_axis(model_min, np.swapaxes(fold, 1, 2), axis=2).min(axis=1)  # (S, H)
        if np.array_equal(new, label):
            break
        label = new
    return (label == np.arange(h)).sum(axis=1)


@dataclass(frozen=True)
class Components:
    """Vectorised variance components of differences d (S, H, R) scored by fold models (S, H, R).

    Model: d[h, r] = Δ + u_h + c_m(h, r) + e_hr with u ~ (0, τ²) the subject's own true difference,
    c ~ (0, σ_m²) the (seed, fold) model pair's noise shared by the subjects it scored, e ~ (0, σ_e²)
    the rest. Var(mean) = τ²/H + σ_m² Σ n_m²/N² + σ_e²/N (N = H·R, n_m subjects per model)."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray
    tau2: np.ndarray  # unbiased, may be negative
    model2: np.ndarray
    resid2: np.ndarray
    tau2_high: np.ndarray  # upper (1 − α/2) bounds: the subject and model sums of squares inflated
    model2_high: np.ndarray
    models_per_seed: np.ndarray  # M / R
    seed_excess: np.ndarray  # H·S²(seed means) − its expectation without a seed-shared part, over H


def variance_components(d: np.ndarray, fold: np.ndarray | None = None, alpha: float = 0.05) -> Components:
    """Henderson's method I (Searle, Casella & McCulloch 1992, "Variance Components", §5.2) on the
    subject, model and total sums of squares; the variance of the mean from the unbiased components;
    Welch–Satterthwaite degrees of freedom over the subject (H − c), model (M − c) and residual
    (N − H − M + c) pieces, c the connected components of the design (1 when folds are re-dealt,
    K when they are fixed), at most H − 1. Needs R ≥ 2. Without fold labels every seed is one model.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim == 2:
        d = d[None]
    fold = np.zeros(d.shape, dtype=np.int64) if fold is None else np.asarray(fold, dtype=np.int64)
    fold = np.broadcast_to(fold.reshape((-1, *d.shape[-2:])), d.shape)
    s, h, r = d.shape
    n = h * r
    mean = d.mean(axis=(1, 2))
    s_t = ((d - mean[:, None, None]) ** 2).sum(axis=(1, 2))
    s_a = r * ((d.mean(axis=2) - mean[:, None]) ** 2).sum(axis=1)
    seed_means = d.mean(axis=1)
    onehot = fold[..., None] == np.arange(int(fold.max()) + 1)  # (S, H, R, K)
    n_m = onehot.sum(axis=1)  # (S, R, K) subjects per model
    model_means = np.einsum("shr,shrk->srk", d, onehot) / np.maximum(n_m, 1)
    s_m = (n_m * (model_means - mean[:, None, None]) ** 2).sum(axis=(1, 2))
    q = (n_m**2).sum(axis=(1, 2)).astype(float)
    m = (n_m > 0).sum(axis=(1, 2)).astype(float)
    c = _components_count(fold).astype(float)
    one = np.ones(s)
    # E[S] = C @ (τ², σ_m², σ_e²) for S = (S_T, S_A, S_M): each subject once per seed, in R models.
    coef = np.stack(
        [
            np.stack([(n - r) * one, n - q / n, (n - 1) * one], axis=1),
            np.stack([(n - r) * one, h - q / n, (h - 1) * one], axis=1),
            np.stack([m - r, n - q / n, m - 1], axis=1),
        ],
        axis=1,
    )
    inv = np.linalg.pinv(coef)  # (S, 3, 3); pinv: a design with no residual df stays finite

    def solve(s_a_, s_m_):
        return np.einsum("sij,sj->si", inv, np.stack([s_t, s_a_, s_m_], axis=1))

    comp = solve(s_a, s_m)
    weights = np.stack([one / h, q / n**2, one / n], axis=1)
    var = (comp * weights).sum(axis=1)
    lam = np.einsum("si,sij->sj", weights, inv)  # var = lam · (S_T, S_A, S_M)
    nu = np.stack([h - c, m - c, n - h - m + c], axis=1)
    pieces = np.stack(
        [(lam[:, 1] + lam[:, 0]) * s_a, (lam[:, 2] + lam[:, 0]) * s_m, lam[:, 0] * (s_t - s_a - s_m)], 1
    )
    scale = np.maximum(np.abs(mean), 1.0)
    var = np.maximum(var, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(nu > 0, pieces**2 / np.where(nu > 0, nu, 1.0), 0.0).sum(axis=1)
        df = np.where((denom > 0) & (var > (1e-12 * scale) ** 2), var**2 / denom, float(h - 1))
    df = np.clip(df, 1.0, float(h - 1))
    inflate = lambda ss, dof: ss * dof / sps.chi2.ppf(alpha / 2, np.maximum(dof, 1))  # noqa: E731
    high = solve(inflate(s_a, nu[:, 0]), inflate(s_m, nu[:, 1]))
    expected_seed = (comp[:, 1] * q / (r * h) + comp[:, 2]) if r >= 2 else np.zeros(s)
    seed_excess = (h * seed_means.var(axis=1, ddof=1) - expected_seed) / h if r >= 2 else np.full(s, np.nan)
    return Components(
        mean,
        np.sqrt(var),
        df,
        comp[:, 0],
        comp[:, 1],
        comp[:, 2],
        np.maximum(high[:, 0], 0.0),
        np.maximum(high[:, 1], 0.0),
        m / r,
        seed_excess,
    )


def subject_decisions(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, rope: float, alpha: float
) -> dict[str, np.ndarray]:
    """Vectorised p-value, interval, posterior probabilities, the two decision p-values and the
    verdict index (into VERDICTS) of one comparison on its own (no multiplicity).

    ``p_direction``: 2·min over sides of P(the difference is not beyond the rope on that side), the
    two-sided p-value of "beyond the rope" (≤ α ⇔ the (1 − α) interval lies wholly beyond ±rope);
    ``p_nonequivalence``: the two one-sided tests' p-value, the larger of P(diff < −rope) and
    P(diff > rope) (≤ EQUIVALENCE_ALPHA ⇔ the 90% interval lies inside ±rope ⇔ equivalent): a
    test of size EQUIVALENCE_ALPHA when the true difference is on the rope's edge.
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
    p_direction = np.minimum(1.0, 2.0 * np.minimum(1.0 - p_a, 1.0 - p_b))
    out = {
        "p_value": np.minimum(1.0, p_value),
        "ci_low": mean - half,
        "ci_high": mean + half,
        "p_a_better": p_a,
        "p_equivalent": p_eq,
        "p_b_better": p_b,
        "p_direction": p_direction,
        "p_nonequivalence": np.maximum(p_a, p_b),
        "mde": mde,
        "t_stat": np.where(degenerate, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), t),
    }
    out["verdict"] = decide(p_direction, out["p_nonequivalence"], mean, alpha)
    return out


def decide(p_direction, p_nonequivalence, mean, alpha: float) -> np.ndarray:
    """Verdict indices (into VERDICTS) from decision p-values, plain or Holm-adjusted: a side when
    p_direction ≤ α (the side of the mean), else equivalent when p_nonequivalence ≤ EQUIVALENCE_ALPHA."""
    p_direction, p_nonequivalence, mean = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (p_direction, p_nonequivalence, mean))
    )
    verdict = np.full(mean.shape, VERDICTS.index("inconclusive"))
    verdict = np.where(
        p_nonequivalence <= EQUIVALENCE_ALPHA, VERDICTS.index("practically equivalent"), verdict
    )
    side = np.where(mean > 0, VERDICTS.index("b better"), VERDICTS.index("a better"))
    return np.where(p_direction <= alpha, side, verdict)


def holm_matrix(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (vectorised :func:`holm`)."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    ranked = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, axis=-1)
    return out


def family_verdicts(p_direction, p_nonequivalence, mean, alpha: float) -> np.ndarray:
    """Verdicts of several comparisons (last axis) decided at Holm-adjusted levels: the family-wise
    rate of false directional verdicts, and of false equivalence verdicts, stays ≤ α / 0.05."""
    return decide(holm_matrix(p_direction), holm_matrix(p_nonequivalence), mean, alpha)


@dataclass(frozen=True)
class SubjectComparison:
    """Result of :func:`subject_comparison` (differences are b − a, target: the population of
    subjects the held-out ones were drawn from)."""

    mean_diff: float  # grand mean of b − a over the H × R (subject, seed) cells used
    ci_low: float  # (1 − alpha) interval, t with the Welch–Satterthwaite df
    ci_high: float
    p_value: float  # two-sided t-test of 0 (context: a verdict needs the interval beyond the rope)
    p_a_better: float  # t posterior: P(diff < −rope)
    p_equivalent: float  # P(−rope ≤ diff ≤ rope)
    p_b_better: float  # P(diff > rope)
    p_direction: float  # p-value of "beyond the rope" on the mean's side (Holm-adjust this one)
    p_nonequivalence: float  # two one-sided tests' p of "within the rope" (Holm-adjust this one)
    n: int  # H × R cells used
    verdict: str  # one of VERDICTS, for this comparison on its own (see family_verdicts)
    rope: float
    alpha: float
    df: float  # Welch–Satterthwaite degrees of freedom
    mde: float  # smallest true |difference| the test of 0 detects with 80% power at this H, R
    n_subjects: int  # H used
    n_seeds: int  # R used
    se: float  # standard error of mean_diff
    t_stat: float  # mean_diff / se (±inf when se = 0 and the mean is not)
    decidable: bool  # False with one seed: the estimate only, never a verdict
    models_per_seed: float  # fold models per seed (K); 1 when no fold labels were given
    seed_sd: float | None  # training noise of one (subject, seed) difference: sqrt(σ_m² + σ_e²)
    model_sd: float | None  # its part shared by the subjects one fold model scored: σ_m
    residual_sd: float | None  # the rest: σ_e
    seed_shared_sd: float | None  # noise shared by all of a seed's models beyond σ_m (assumed 0)
    subject_sd: float | None  # τ, spread of the true per-subject difference (method of moments, ≥ 0)
    subject_sd_low: float | None  # 95% generalized confidence interval of τ
    subject_sd_high: float | None
    dominant: str  # one of DOMINANT: τ²/H against the training noise's share of se²
    dropped_subjects: tuple[int, ...]  # row indices left out for missing scores
    dropped_seeds: tuple[int, ...]  # column indices left out for missing scores
    note: str  # empty, or what limits the result (one seed, dropped cells)
    components: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # τ², σ_m², σ_e² (unbiased)
    components_high: tuple[float, float] = (math.nan, math.nan)  # upper bounds of τ², σ_m²

    @property
    def equivalence_interval(self) -> tuple[float, float]:
        """The (1 − 2·EQUIVALENCE_ALPHA) interval: inside ±rope ⇔ both one-sided tests reject."""
        if not math.isfinite(self.se) or self.se <= 0:
            return self.mean_diff, self.mean_diff
        half = float(sps.t.ppf(1.0 - EQUIVALENCE_ALPHA, self.df)) * self.se
        return self.mean_diff - half, self.mean_diff + half


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


def _table(x, name: str) -> tuple[np.ndarray, list | None]:
    """A score table as floats; a DataFrame must be subjects (index) × seeds (columns) by its labels."""
    if hasattr(x, "index") and hasattr(x, "columns"):
        rows, cols = x.index.name, x.columns.name
        if rows == "seed" or cols == "subject":
            raise InputError(f"{name}: the table is seeds × subjects (index {rows!r}); pass subjects × seeds")
        if rows != "subject" or cols != "seed":
            raise InputError(
                f"{name}: label the table's index 'subject' and its columns 'seed', got {rows!r} × {cols!r}"
            )
        return x.to_numpy(dtype=float), list(x.columns)
    return np.asarray(x, dtype=float), None


def subject_comparison(
    a, b, *, folds=None, rope: float = DEFAULT_ROPE, alpha: float = 0.05
) -> SubjectComparison:
    """Compare arms a and b on per-(held-out subject, seed) scores, arrays of shape (H, R), or
    DataFrames labelled subject (index) × seed (columns), which are checked by those labels.

    ``a[h, r]`` and ``b[h, r]`` are the scores of subject h validated under seed r's split.
    ``folds[h, r]`` (optional, same shape) is the fold whose model pair scored that cell: without
    it every seed counts as one model. NaN marks a missing score; rows and columns are dropped by
    the rule of :func:`_complete_table` and reported. Scores must lie in [0, 1]; needs at least 2
    subjects and 1 seed left. One seed (or a table left with one by a missing subject) gives the
    estimate and no verdict. See the module docstring for the method.
    """
    a_arr, _ = _table(a, "a")
    b_arr, _ = _table(b, "b")
    if a_arr.ndim != 2 or b_arr.ndim != 2:
        raise InputError(
            f"scores must be 2-D arrays (subjects × seeds), got shapes {a_arr.shape} and {b_arr.shape}"
        )
    if a_arr.shape != b_arr.shape:
        raise InputError(
            f"a and b must have the same shape (subjects × seeds), got {a_arr.shape} and {b_arr.shape}"
        )
    for name, x in (("a", a_arr), ("b", b_arr)):
        if np.isinf(x).any():
            raise InputError(f"{name}: scores contain infinite values (NaN marks a missing score)")
        bad = np.argwhere(~np.isnan(x) & ((x < 0) | (x > 1)))
        if len(bad):
            i, j = bad[0]
            raise InputError(
                f"{name}: score {x[i, j]!r} at subject row {i}, seed column {j} is outside [0, 1]"
            )
    rope = check_rope(rope)
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    fold_arr = None
    if folds is not None:
        fold_arr = np.asarray(folds, dtype=float)
        if fold_arr.shape != a_arr.shape:
            raise InputError(f"folds must have the scores' shape {a_arr.shape}, got {fold_arr.shape}")
    d, rows, cols = _complete_table(b_arr - a_arr)
    h, r = d.shape
    if h < 2 or r < 1:
        raise InputError(
            f"need at least 2 subjects and 1 seed with complete scores, have {h} × {r} "
            f"of {a_arr.shape[0]} × {a_arr.shape[1]} after dropping missing (NaN) cells"
        )
    dropped_s = tuple(i for i in range(a_arr.shape[0]) if i not in rows)
    dropped_r = tuple(j for j in range(a_arr.shape[1]) if j not in cols)
    if _is_constant(d):
        d = np.full_like(d, float(d.mean()))  # exact zero spread, not float round-off
    notes = []
    if dropped_s or dropped_r:
        notes.append(f"dropped {len(dropped_s)} subject(s) and {len(dropped_r)} seed(s) with missing scores")
    if r >= 2:
        fk = None
        if fold_arr is not None:
            sub = fold_arr[np.ix_(rows, cols)]
            if np.isnan(sub).any():
                raise InputError("folds: a scored cell has no fold")
            _, fk = np.unique(sub, return_inverse=True)  # fold labels per seed as 0..K-1 codes
            fk = fk.reshape(sub.shape)
        comp = variance_components(d, fk, alpha)
        mean, se, df = float(comp.mean[0]), float(comp.se[0]), float(comp.df[0])
        tau2, model2, resid2 = float(comp.tau2[0]), float(comp.model2[0]), float(comp.resid2[0])
        subj = d.mean(axis=1)
        resid = d - subj[:, None] - d.mean(axis=0)[None, :] + d.mean()
        ms_a, ms_e = r * float(subj.var(ddof=1)), float((resid**2).sum()) / ((h - 1) * (r - 1))
        tau_low, tau_high = _tau_interval(ms_a, ms_e, h, r) if ms_a + ms_e > 0 else (0.0, 0.0)
        subject_sd = math.sqrt(max(tau2, 0.0))
        tau_low, tau_high = min(tau_low, subject_sd), max(tau_high, subject_sd)
        m2, e2 = max(model2, 0.0), max(resid2, 0.0)
        excess = float(comp.seed_excess[0])
        dominant = "subjects" if max(tau2, 0.0) / h > se**2 / 2 else "training"
        extra = dict(
            decidable=True,
            models_per_seed=float(comp.models_per_seed[0]),
            seed_sd=math.sqrt(m2 + e2),
            model_sd=math.sqrt(m2),
            residual_sd=math.sqrt(e2),
            seed_shared_sd=math.sqrt(max(excess, 0.0)) if math.isfinite(excess) else None,
            subject_sd=subject_sd,
            subject_sd_low=tau_low,
            subject_sd_high=tau_high,
            dominant=dominant,
            components=(tau2, model2, resid2),
            components_high=(float(comp.tau2_high[0]), float(comp.model2_high[0])),
        )
    else:
        # One seed: training noise and subject spread cannot be told apart, nor the noise a fold
        # model shares with its subjects: the subject means' spread is all there is (too narrow).
        mean = float(d.mean())
        se = float(d[:, 0].std(ddof=1) / math.sqrt(h))
        df = float(h - 1)
        extra = dict(
            decidable=False,
            models_per_seed=math.nan,
            seed_sd=None,
            model_sd=None,
            residual_sd=None,
            seed_shared_sd=None,
            subject_sd=None,
            subject_sd_low=None,
            subject_sd_high=None,
            dominant="unknown",
        )
        notes.insert(
            0,
            "one seed cannot separate training noise from subject spread: the estimate only, no verdict; "
            "run at least 2 confirm seeds",
        )
    dec = subject_decisions(mean, se, df, rope, alpha)
    verdict = VERDICTS[int(dec["verdict"])] if extra["decidable"] else "inconclusive"
    return SubjectComparison(
        mean_diff=mean,
        ci_low=float(dec["ci_low"]),
        ci_high=float(dec["ci_high"]),
        p_value=float(dec["p_value"]),
        p_a_better=float(dec["p_a_better"]),
        p_equivalent=float(dec["p_equivalent"]),
        p_b_better=float(dec["p_b_better"]),
        p_direction=float(dec["p_direction"]) if extra["decidable"] else 1.0,
        p_nonequivalence=float(dec["p_nonequivalence"]) if extra["decidable"] else 1.0,
        n=h * r,
        verdict=verdict,
        rope=rope,
        alpha=float(alpha),
        df=df,
        mde=float(dec["mde"]),
        n_subjects=h,
        n_seeds=r,
        se=se,
        t_stat=float(dec["t_stat"]),
        dropped_subjects=dropped_s,
        dropped_seeds=dropped_r,
        note="; ".join(notes),
        **extra,
    )


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

"""Paired comparison statistics: hand-computed values, edge cases and error rates on simulated CV."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from study.evidence_plan import evidence_plan, projected_se, verdict_probability
from study.stats import (
    EQUIVALENCE_ALPHA,
    VERDICTS,
    Comparison,
    holm,
    naive_paired_t_pvalue,
    paired_comparison,
)
from study.subject_level import (
    family_verdicts,
    holm_matrix,
    skew_pivot,
    skew_quantile,
    subject_comparison,
    subject_decisions,
)
from study.variance_components import _components_count, mean_skewness, variance_components

# 2 seeds × 3 folds; differences b − a = d.
A = [0.70, 0.72, 0.74, 0.71, 0.73, 0.75]
D = [0.01, 0.02, 0.03, 0.00, 0.02, 0.02]
B = [x + y for x, y in zip(A, D, strict=True)]


def test_hand_computed_example():
    c = paired_comparison(A, B, n_folds=3, rope=0.005)
    # mean = 0.1 / 6; sum of squared deviations = 5.3333e-4 → var = 1.06667e-4 (ddof=1)
    mean, var = 0.1 / 6, 5.3333333e-4 / 5
    # Nadeau–Bengio factor: 1/J + n_test/n_train = 1/6 + 1/(3−1) = 2/3
    se = math.sqrt(2 / 3 * var)  # 0.0084327
    assert c.mean_diff == pytest.approx(mean, rel=1e-9)
    assert c.sd_diff**2 == pytest.approx(var, rel=1e-6)
    assert c.t_stat == pytest.approx(1.97642, abs=1e-4)
    assert c.df == 5 and c.n == 6 and c.n_folds == 3
    # t_{0.975, 5} = 2.570582 → half width 0.021677
    assert c.ci_low == pytest.approx(mean - 2.570582 * se, abs=1e-6)
    assert c.ci_high == pytest.approx(mean + 2.570582 * se, abs=1e-6)
    assert c.ci_low == pytest.approx(-0.005010, abs=1e-5)
    assert c.ci_high == pytest.approx(0.038344, abs=1e-5)
    assert c.p_value == pytest.approx(2 * sps.t.sf(1.9764235, 5), rel=1e-6)
    assert c.p_value == pytest.approx(0.10506, abs=1e-4)
    # Bayesian correlated t-test with ρ = 1/3: same scale as the corrected standard error.
    assert c.p_b_better == pytest.approx(sps.t.cdf((mean - 0.005) / se, 5), rel=1e-6)
    assert c.p_b_better == pytest.approx(0.88745, abs=1e-4)
    assert c.p_a_better == pytest.approx(0.02504, abs=1e-4)
    assert c.p_a_better + c.p_equivalent + c.p_b_better == pytest.approx(1.0)
    assert c.verdict == "inconclusive"
    # The naive test divides the variance by J only: t is twice as large here (factor 1/6 vs 2/3).
    assert c.naive_p_value == pytest.approx(sps.ttest_rel(B, A).pvalue, rel=1e-9)
    assert naive_paired_t_pvalue(A, B) == pytest.approx(0.010820, abs=1e-5)


def test_swapping_arms_mirrors_the_result():
    c = paired_comparison(A, B, n_folds=3, rope=0.005)
    r = paired_comparison(B, A, n_folds=3, rope=0.005)
    assert r.mean_diff == pytest.approx(-c.mean_diff)
    assert (r.ci_low, r.ci_high) == pytest.approx((-c.ci_high, -c.ci_low))
    assert r.p_value == pytest.approx(c.p_value)
    assert r.p_a_better == pytest.approx(c.p_b_better)


def test_comparison_is_frozen():
    c = paired_comparison(A, B, n_folds=3, rope=0.005)
    assert isinstance(c, Comparison)
    with pytest.raises(AttributeError):
        c.verdict = "b better"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("a", "b", "n_folds", "match"),
    [
        ([0.5], [0.6], 5, "at least 2"),
        ([], [], 5, "at least 2"),
        ([0.5, 0.6], [0.5, 0.6, 0.7], 5, "equal lengths"),
        ([0.5, float("nan")], [0.5, 0.6], 5, "NaN"),
        ([0.5, 0.6], [0.5, float("inf")], 5, "NaN"),
        ([0.5, 0.6], [0.5, 0.7], 1, "n_folds"),
        ([[0.5, 0.6]], [[0.5, 0.7]], 5, "1-D"),
    ],
)
def test_bad_input_raises_clear_value_error(a, b, n_folds, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b, n_folds=n_folds)


def test_zero_variance_difference_does_not_divide_by_zero():
    a = [0.70, 0.75, 0.80, 0.72]
    big = paired_comparison(a, [x + 0.02 for x in a], n_folds=2)
    assert big.mean_diff == pytest.approx(0.02)
    assert big.sd_diff == 0.0 and big.p_value == 0.0 and big.naive_p_value == 0.0
    assert big.ci_low == pytest.approx(0.02) and big.ci_high == pytest.approx(0.02)
    assert (big.p_a_better, big.p_equivalent, big.p_b_better) == (0.0, 0.0, 1.0)
    assert big.verdict == "b better"

    same = paired_comparison(a, a, n_folds=2)
    assert same.mean_diff == 0.0 and same.p_value == 1.0 and same.naive_p_value == 1.0
    assert same.p_equivalent == 1.0 and same.verdict == "practically equivalent"

    tiny = paired_comparison(a, [x - 0.001 for x in a], n_folds=2)
    assert tiny.verdict == "practically equivalent"


def test_equal_scores_within_rope_are_practically_equivalent():
    rng = np.random.default_rng(1)
    a = rng.normal(0.75, 0.01, size=25)
    b = a + rng.normal(0.0, 0.001, size=25)
    c = paired_comparison(a, b, n_folds=5, rope=0.005)
    assert c.p_equivalent >= 0.95
    assert c.verdict == "practically equivalent"


def _decisions(d: np.ndarray, n_folds: int, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised rejections of the corrected and naive tests for each row of differences d (S, J)."""
    j = d.shape[1]
    mean = d.mean(axis=1)
    sd = d.std(axis=1, ddof=1)
    crit = sps.t.ppf(1 - alpha / 2, j - 1)
    corrected = np.abs(mean) / np.sqrt((1 / j + 1 / (n_folds - 1)) * sd**2) > crit
    naive = np.abs(mean) / (sd / np.sqrt(j)) > crit
    return corrected, naive


def _check_rows_agree_with_function(d: np.ndarray, n_folds: int, corrected: np.ndarray) -> None:
    """The vectorised shortcut must match paired_comparison itself on a sample of rows."""
    zeros = np.zeros(d.shape[1])
    for row, rejected in zip(d[:40], corrected[:40], strict=True):
        c = paired_comparison(zeros, row, n_folds=n_folds)
        assert (c.p_value < 0.05) == rejected
        assert c.naive_p_value == pytest.approx(naive_paired_t_pvalue(zeros, row))


R, K = 5, 5  # seeds × folds, J = 25 pairs
S = 2000  # simulated studies


def test_type_one_error_equicorrelated_differences():
    """No true difference; every pair of differences correlates with ρ = 1/K (the model behind the correction)."""
    rng = np.random.default_rng(0)
    j, rho = R * K, 1 / K
    cov = np.full((j, j), rho) + (1 - rho) * np.eye(j)
    d = 0.01 * rng.multivariate_normal(np.zeros(j), cov, size=S)
    corrected, naive = _decisions(d, K)
    _check_rows_agree_with_function(d, K, corrected)
    assert corrected.mean() <= 0.07
    assert naive.mean() >= 2 * corrected.mean()
    assert naive.mean() >= 0.25  # the naive test is badly anti-conservative here


def test_type_one_error_simulated_overlapping_training_sets():
    """Repeated K-fold CV on N samples with actual overlapping training sets and no true difference.

    Each sample i carries a training effect u_i (how much having it in the training set moves
    the score difference of a model trained with it) and a test effect v_i (the difference of
    the two arms when it is tested), both zero-mean: the difference on fold j is
    mean(u over train_j) + mean(v over test_j). Folds of the same seed share (K−2)/(K−1) of
    their training data; seeds re-partition the same N samples. With these scales the average
    correlation between differences comes out near 1/K, as Nadeau & Bengio assume.
    """
    rng = np.random.default_rng(0)
    n = 100
    j = R * K
    order = np.argsort(rng.random((S, R, n)), axis=2)
    fold_of = np.empty((S, R, n), dtype=np.int64)
    np.put_along_axis(fold_of, order, np.broadcast_to(np.arange(n) % K, (S, R, n)), axis=2)
    test = (fold_of[:, :, None, :] == np.arange(K)[None, None, :, None]).reshape(S, j, n).astype(float)
    u = rng.normal(0.0, 0.5, size=(S, n))
    v = rng.normal(0.0, 1.0, size=(S, n))
    n_test = n // K
    d = np.einsum("sjn,sn->sj", 1.0 - test, u) / (n - n_test) + np.einsum("sjn,sn->sj", test, v) / n_test

    corr = np.corrcoef(d.T)
    mean_corr = corr[~np.eye(j, dtype=bool)].mean()
    assert 0.12 <= mean_corr <= 0.3  # realistic fold correlation, close to 1/K = 0.2

    corrected, naive = _decisions(d, K)
    _check_rows_agree_with_function(d, K, corrected)
    assert corrected.mean() <= 0.07
    assert naive.mean() >= 2 * corrected.mean()


def test_planted_difference_is_detected_with_the_right_side():
    rng = np.random.default_rng(2)
    j, rho = R * K, 1 / K
    cov = 0.005**2 * (np.full((j, j), rho) + (1 - rho) * np.eye(j))
    d = 0.02 + rng.multivariate_normal(np.zeros(j), cov, size=200)  # b better by 0.02 (4× the rope)
    a = rng.normal(0.75, 0.01, size=j)
    results = [paired_comparison(a, a + row, n_folds=K) for row in d]
    power = np.mean([c.p_value < 0.05 for c in results])
    assert power >= 0.9
    assert np.mean([c.verdict == "b better" for c in results]) >= 0.8
    assert all(c.verdict != "a better" for c in results)
    # and mirrored: arm a better
    flipped = paired_comparison(a + d[0], a, n_folds=K)
    assert flipped.verdict == "a better" and flipped.mean_diff < -0.01
    assert flipped.ci_high < 0


def _equicorrelated(rng, n_studies: int, sigma: float = 0.01) -> np.ndarray:
    j, rho = R * K, 1 / K
    return rng.multivariate_normal(
        np.zeros(j), sigma**2 * (np.full((j, j), rho) + (1 - rho) * np.eye(j)), n_studies
    )


def test_mde_is_the_difference_detected_with_80_percent_power():
    """Plant the mde that studies of this size and spread report; the corrected test must then
    reject in about 80% of 400 simulated studies."""
    rng = np.random.default_rng(3)
    zeros = np.zeros(R * K)
    reported = np.median([paired_comparison(zeros, row, n_folds=K).mde for row in _equicorrelated(rng, 400)])
    planted = reported + _equicorrelated(rng, 400)
    power = np.mean([paired_comparison(zeros, row, n_folds=K).p_value < 0.05 for row in planted])
    assert 0.7 <= power <= 0.9, (reported, power)
    # Half the mde is detected far less often: the number separates what the study can see.
    halved = reported / 2 + _equicorrelated(rng, 400)
    assert np.mean([paired_comparison(zeros, row, n_folds=K).p_value < 0.05 for row in halved]) < 0.45


def _with_mean_and_sd(mean: float, sd: float, j: int) -> np.ndarray:
    z = np.random.default_rng(j).normal(size=j)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize("ratio, mean", [(1 / 11, 0.02), (1 / 5, 0.03)])
def test_seeds_needed_is_the_first_seed_count_that_decides(ratio, mean):
    k, sd = 3, 0.02
    now = paired_comparison(
        np.zeros(k), _with_mean_and_sd(mean, sd, k), n_folds=k, test_train_ratio=ratio, rope=0.005
    )
    r = now.seeds_needed
    assert r is not None and r > 1
    decided = paired_comparison(
        np.zeros(r * k), _with_mean_and_sd(mean, sd, r * k), n_folds=k, test_train_ratio=ratio, rope=0.005
    )
    before = paired_comparison(
        np.zeros((r - 1) * k),
        _with_mean_and_sd(mean, sd, (r - 1) * k),
        n_folds=k,
        test_train_ratio=ratio,
        rope=0.005,
    )
    assert decided.verdict == "b better" and before.verdict == "inconclusive"


def test_seeds_needed_is_none_when_the_fold_overlap_alone_hides_the_difference():
    # With n_test/n_train = 1/2 the corrected variance never drops below sd²/2: (0.02 − 0.005)/(0.02/√2)
    # is about one standard error, however many seeds are added.
    c = paired_comparison(np.zeros(9), _with_mean_and_sd(0.02, 0.02, 9), n_folds=3)
    assert c.test_train_ratio == 0.5 and c.seeds_needed is None


def test_smaller_overlap_ratio_narrows_the_interval():
    d = _with_mean_and_sd(0.01, 0.02, 9)
    wide = paired_comparison(np.zeros(9), d, n_folds=3)
    narrow = paired_comparison(np.zeros(9), d, n_folds=3, test_train_ratio=1 / 11)
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low
    assert narrow.mde < wide.mde and narrow.p_value < wide.p_value


@pytest.mark.parametrize(
    "p, adjusted",
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),
        ([0.5, 0.001], [0.5, 0.002]),
        ([0.6, 0.7], [1.0, 1.0]),
        ([0.02], [0.02]),
    ],
)
def test_holm_matches_hand_computed_cases(p, adjusted):
    assert holm(p) == pytest.approx(adjusted)


# ------------------------------------------------------------------ subject-level comparison

SA = np.array([[0.70, 0.71, 0.69], [0.80, 0.78, 0.81], [0.60, 0.62, 0.61], [0.75, 0.74, 0.77]])
SD = np.array([[0.01, 0.03, 0.00], [0.02, 0.01, 0.04], [-0.01, 0.02, 0.01], [0.03, 0.00, 0.02]])
SB = SA + SD


def _design(rng, s, h, r, k, fixed):
    from study.calibration import Cell, deal_folds

    return deal_folds(rng, s, Cell(h, r, 0.0, n_folds=k, design="fixed" if fixed else "redealt"))


@pytest.mark.parametrize("fixed", [False, True])
def test_variance_of_the_mean_is_estimated_without_bias(fixed):
    """E[se²] = Var(mean) over simulated studies, and the components come back, in both designs."""
    from study.calibration import Cell, simulate

    rng = np.random.default_rng(1)
    cell = Cell(20, 3, 1.0, n_folds=4, design="fixed" if fixed else "redealt", fold_share=0.5)
    d, fold = simulate(rng, 6000, cell)
    comp = variance_components(d, fold)
    assert np.mean(comp.se**2) == pytest.approx(np.var(comp.mean), rel=0.08)
    sigma2 = cell.sigma**2
    assert np.mean(comp.tau2) == pytest.approx(cell.tau**2, rel=0.1)
    assert np.mean(comp.model2) == pytest.approx(0.5 * sigma2, rel=0.1)
    assert np.mean(comp.resid2) == pytest.approx(0.5 * sigma2, rel=0.1)


def test_connected_components_tell_the_designs_apart():

    rng = np.random.default_rng(2)
    assert (_components_count(_design(rng, 50, 20, 3, 4, fixed=True)) == 4).all()
    assert (_components_count(_design(rng, 50, 20, 3, 4, fixed=False)) == 1).all()


def test_without_folds_every_seed_is_one_model_the_crossed_unbiased_estimate():
    rng = np.random.default_rng(3)
    d = rng.normal(0, 0.02, (15, 4)) + rng.normal(0, 0.01, (15, 1))
    h, r = d.shape
    subj, seed = d.mean(axis=1), d.mean(axis=0)
    resid = d - subj[:, None] - seed[None, :] + d.mean()
    ms_a, ms_b = r * subj.var(ddof=1), h * seed.var(ddof=1)
    ms_e = (resid**2).sum() / ((h - 1) * (r - 1))
    comp = variance_components(d)
    assert comp.se[0] ** 2 == pytest.approx((ms_a + ms_b - ms_e) / (h * r), rel=1e-9)


def test_subject_comparison_mirrors_when_arms_swap():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0.6, 0.8, (12, 3)), rng.uniform(0.6, 0.8, (12, 3))
    folds = _design(rng, 1, 12, 3, 3, fixed=False)[0]
    x, y = subject_comparison(a, b, folds=folds), subject_comparison(b, a, folds=folds)
    assert x.mean_diff == pytest.approx(-y.mean_diff) and x.se == pytest.approx(y.se)
    assert (x.ci_low, x.ci_high) == pytest.approx((-y.ci_high, -y.ci_low))
    assert x.p_a_better == pytest.approx(y.p_b_better)


def test_one_seed_gives_the_estimate_and_no_verdict():
    a = np.full((10, 1), 0.5)
    c = subject_comparison(a, a + 0.2 + np.linspace(0, 0.01, 10)[:, None])
    assert not c.decidable and c.verdict == "inconclusive" and c.mean_diff == pytest.approx(0.205)
    assert "one seed cannot separate training noise from subject spread" in c.note
    assert evidence_plan(c) == []
    # Two seeds, one of which lost a subject: the emptier seed is dropped, leaving one: no verdict.
    b = np.hstack([a + 0.2, a + 0.2])
    b[:6, 1] = np.nan  # seed 1 lost 6 of 10 subjects: it goes, not the subjects
    lost = subject_comparison(np.hstack([a, a]), b)
    assert lost.dropped_seeds == (1,) and not lost.decidable and lost.verdict == "inconclusive"


def test_bad_tables_are_one_line_input_errors():
    import pandas as pd

    from cmi_model.errors import InputError

    ok = np.full((5, 3), 0.5)
    with pytest.raises(InputError, match="outside \\[0, 1\\]"):
        subject_comparison(ok, ok * 1e300)
    with pytest.raises(InputError, match="infinite"):
        subject_comparison(ok, np.where(ok > 0, np.inf, ok))
    with pytest.raises(InputError, match="rope must be between 0 and 1"):
        subject_comparison(ok, ok, rope=0)
    with pytest.raises(InputError, match="rope must be between 0 and 1"):
        subject_comparison(ok, ok, rope=1.5)
    table = pd.DataFrame(
        ok, index=pd.Index(list("vwxyz"), name="subject"), columns=pd.Index([1, 2, 3], name="seed")
    )
    assert subject_comparison(table, table).n == 15
    with pytest.raises(InputError, match="seeds × subjects"):
        subject_comparison(table.T, table.T)


def test_verdicts_need_the_interval_beyond_the_rope():
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.004, (20, 10))
    base = np.full((20, 10), 0.5)
    clear = subject_comparison(base, base + 0.03 + noise, rope=0.01)
    assert clear.verdict == "b better" and clear.ci_low > clear.rope and clear.p_direction <= 0.05
    assert subject_comparison(base + 0.03 + noise, base, rope=0.01).verdict == "a better"
    small = subject_comparison(base, base + 0.011 + noise, rope=0.01)
    assert small.p_value < 0.05 and small.ci_low < small.rope and small.verdict == "inconclusive"
    assert subject_comparison(base, base + 0.1 * noise, rope=0.01).verdict == "practically equivalent"


def test_holm_matrix_matches_holm_and_family_verdicts_use_adjusted_levels():
    rng = np.random.default_rng(8)
    p = rng.uniform(0, 0.2, (20, 6))
    assert holm_matrix(p) == pytest.approx(np.array([holm(row) for row in p]))
    # Alone each of 3 would be decided (p ≤ 0.05); at Holm-adjusted levels only the first.
    codes = family_verdicts([0.01, 0.04, 0.045], [1.0, 1.0, 1.0], [0.02, 0.02, 0.02], 0.05)
    assert list(codes) == [1, 3, 3]  # b better, inconclusive, inconclusive


def test_evidence_plan_promises_what_the_user_reads():
    rng = np.random.default_rng(9)
    h, r = 20, 2
    base = np.full((h, r), 0.5)
    folds = _design(rng, 1, h, r, 4, fixed=False)[0]
    c = subject_comparison(base, base + rng.normal(0, 0.01, (h, r)), folds=folds, rope=0.01)
    plans = {p.verdict: p for p in evidence_plan(c)}
    assert set(plans) == {"better", "practically equivalent"} and plans["better"].effect == pytest.approx(
        0.02
    )
    for p in plans.values():
        if p.seeds_needed is not None:
            se, df = projected_se(c, p.seeds_needed)
            assert verdict_probability(p.verdict, p.effect, se, df, 0.01, 0.05) >= 0.8
            if p.seeds_needed > r:
                assert (
                    verdict_probability(p.verdict, p.effect, *projected_se(c, p.seeds_needed - 1), 0.01, 0.05)
                    < 0.8
                )
    # Subject spread that seeds cannot remove: no promise, and it says why.
    spread = subject_comparison(
        base, base + rng.normal(0, 0.05, (h, 1)) + rng.normal(0, 0.002, (h, r)), rope=0.01
    )
    eq = next(p for p in evidence_plan(spread) if p.verdict == "practically equivalent")
    assert eq.seeds_needed is None and "subject spread" in eq.note
    with pytest.raises(ValueError, match="positive"):
        evidence_plan(c, (0.0,))


def test_equivalence_is_scipys_two_one_sided_t_tests():
    """The subject-level "practically equivalent" decision is TOST (Schuirmann 1987): its p-value is the
    larger of scipy's one-sided one-sample t-tests against the rope's two edges."""
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.004, 0.009, 0.02):
        x = rng.normal(shift, 0.01, 12)
        se = x.std(ddof=1) / np.sqrt(len(x))
        dec = subject_decisions(np.array([x.mean()]), np.array([se]), np.array([len(x) - 1.0]), 0.01, 0.05)
        lower = sps.ttest_1samp(x, -0.01, alternative="greater").pvalue
        upper = sps.ttest_1samp(x, 0.01, alternative="less").pvalue
        assert dec["p_nonequivalence"][0] == pytest.approx(max(lower, upper))
        equivalent = dec["verdict"][0] == VERDICTS.index("practically equivalent")
        assert equivalent == (max(lower, upper) <= EQUIVALENCE_ALPHA and dec["p_direction"][0] > 0.05)


def test_mean_skewness_is_scipys_unbiased_skewness_scaled_to_the_mean():
    rng = np.random.default_rng(12)
    x = rng.exponential(size=(5, 9))
    se = x.std(axis=1, ddof=1) / 3.0
    expected = sps.skew(x, axis=1, bias=False) * x.std(axis=1, ddof=1) ** 3 / 9**2 / se**3
    assert mean_skewness(x, se) == pytest.approx(expected, rel=1e-10)
    assert mean_skewness(x[:, :2], se).tolist() == [0.0] * 5  # fewer than 3 subjects: no estimate


def test_hall_transformation_is_monotone_and_inverted_exactly():
    t = np.linspace(-6, 6, 49)
    for skew in (-1.5, -0.2, 0.0, 0.4, 2.0):
        g = skew_pivot(t, skew)
        assert np.all(np.diff(g) >= 0)
        assert skew_quantile(g, skew) == pytest.approx(t, abs=1e-9)
    assert skew_pivot(t, 0.0) == pytest.approx(t)


def test_skewed_subjects_widen_the_interval_on_their_tail_side_only():
    """Right-skewed subject differences: the interval keeps the plain t's lower end and reaches higher;
    swapping the arms mirrors it."""
    rng = np.random.default_rng(13)
    u = np.array([0.0, 0.002, 0.004, 0.005, 0.007, 0.01, 0.06, 0.15])  # two subjects carry the tail
    a = np.full((8, 3), 0.4)
    b = a + u[:, None] + rng.normal(0, 0.002, (8, 3))
    c = subject_comparison(a, b)
    plain = subject_decisions(c.mean_diff, c.se, c.df, c.rope, c.alpha)
    assert c.skew > 0.3
    assert c.ci_low == pytest.approx(float(plain["ci_low"]))
    assert c.ci_high > float(plain["ci_high"]) + 0.1 * c.se
    assert c.p_value >= float(plain["p_value"])
    m = subject_comparison(b, a)
    assert (m.ci_low, m.ci_high, m.skew) == pytest.approx((-c.ci_high, -c.ci_low, -c.skew))
    lo, hi = c.equivalence_interval
    assert c.ci_low < lo < c.mean_diff < hi < c.ci_high

"""Calibration of the subject-level comparison on simulated confirmations (study/calibration.py).

Grid: τ = 0, 1, 2, 4 × the seed noise of one subject's difference; R = 2, 5, 10, 20, 50 seeds; the
real shape (20 held out, 5 folds) and the demo's (6 held out, 2 folds); 4,000 studies per cell
(the coverage thresholds sit about 2 standard errors of a 4,000-study rate below 95%), no true
population difference. The same studies go through the fold-level paired_comparison as contrast.
"""

import numpy as np
import pytest

from study.calibration import (
    DEMO,
    REAL,
    SEED_COUNTS,
    SEED_NOISE,
    TAU_MULTIPLES,
    fold_differences,
    fold_level,
    run_cell,
    simulate,
    subject_level,
)
from study.stats import VERDICTS, paired_comparison, subject_comparison

N_STUDIES = 4000
pytestmark = pytest.mark.slow  # about 12 s on 2 shared cores, most of it the grid


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(2024)
    return {
        (shape.name, tau, r): run_cell(rng, shape, r, tau, n_studies=N_STUDIES)
        for shape in (REAL, DEMO)
        for tau in TAU_MULTIPLES
        for r in SEED_COUNTS
    }


def test_subject_level_interval_covers_the_population_difference(grid):
    for (shape, tau, r), cell in grid.items():
        floor = 0.94 if shape == "real" else 0.925
        assert cell["subject"]["coverage"] >= floor, (shape, tau, r, cell["subject"])


def test_false_directional_verdicts_stay_rare_and_do_not_grow_with_seeds(grid):
    for (shape, tau, r), cell in grid.items():
        s = cell["subject"]
        assert max(s["a_better"], s["b_better"], s["below_0"], s["above_0"]) <= 0.05, (shape, tau, r, s)
    for shape in ("real", "demo"):
        for tau in TAU_MULTIPLES:
            few, many = grid[(shape, tau, 2)]["subject"], grid[(shape, tau, 50)]["subject"]
            for side in ("a_better", "b_better"):
                assert many[side] <= few[side] + 0.01, (shape, tau, side, few, many)


def test_equivalence_is_reachable_with_many_seeds(grid):
    assert grid[("real", 0, 50)]["subject"]["equivalent"] >= 0.8


def test_fold_level_test_loses_coverage_as_seeds_grow_under_subject_spread(grid):
    for shape in ("real", "demo"):
        fold, subj = grid[(shape, 2, 50)]["fold"], grid[(shape, 2, 50)]["subject"]
        assert fold["coverage"] < subj["coverage"] - 0.1, (shape, fold, subj)
        assert fold["coverage"] < grid[(shape, 2, 2)]["fold"]["coverage"] - 0.1
        assert fold["a_better"] > 0.01 + subj["a_better"]


def test_vectorised_paths_agree_with_the_functions():
    rng = np.random.default_rng(3)
    a, b, fold = simulate(rng, 12, REAL, 5, 2 * SEED_NOISE)
    d = b - a
    sub = subject_level(d, 0.005)
    dj = fold_differences(d, fold, REAL.n_folds)
    fol = fold_level(dj, REAL.n_folds, REAL.test_train_ratio, 0.005)
    for i in range(12):
        c = subject_comparison(a[i], b[i])
        assert (c.mean_diff, c.ci_low, c.ci_high) == pytest.approx(
            (sub["mean"][i], sub["ci_low"][i], sub["ci_high"][i]), rel=1e-9
        )
        assert c.verdict == VERDICTS[sub["verdict"][i]]
        p = paired_comparison(
            np.zeros(dj.shape[1]), dj[i], n_folds=REAL.n_folds, test_train_ratio=REAL.test_train_ratio
        )
        assert (p.ci_low, p.ci_high) == pytest.approx((fol["ci_low"][i], fol["ci_high"][i]), rel=1e-9)
        assert p.verdict == VERDICTS[fol["verdict"][i]]
    # per-(seed, fold) means: seed-major, each the mean over that fold's subjects
    s, r, k = 0, 1, 2
    assert dj[s, r * REAL.n_folds + k] == pytest.approx(d[s][fold[s, :, r] == k, r].mean())


def test_mde_is_detected_with_80_percent_power():
    """Plant the median reported mde of one cell; the test of 0 must reject in about 80% of studies."""
    rng = np.random.default_rng(4)
    a, b, _ = simulate(rng, 3000, REAL, 10, SEED_NOISE)
    mde = float(np.median(subject_level(b - a, 0.005)["mde"]))
    a, b, _ = simulate(rng, 3000, REAL, 10, SEED_NOISE, delta=mde)
    res = subject_level(b - a, 0.005)
    power = np.mean(res["ci_low"] > 0)
    assert 0.72 <= power <= 0.88, (mde, power)


def test_subject_sd_interval_covers_tau():
    rng = np.random.default_rng(6)
    tau = 2 * SEED_NOISE
    a, b, _ = simulate(rng, 300, REAL, 10, tau)
    hits = []
    for i in range(300):
        c = subject_comparison(a[i], b[i])
        hits.append(c.subject_sd_low <= tau <= c.subject_sd_high)
    assert 0.88 <= np.mean(hits) <= 0.99

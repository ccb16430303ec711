"""Calibration of the subject-level comparison on simulated confirmations (study/calibration.py).

A slice of benchmarks/bench_calibration.py's grid: 2,000 studies per cell, Δ = 0, rope 0.01, folds
re-dealt every seed, fixed across seeds, and nested (3 outer folds, slices re-dealt inside), fold-model
noise 20% and 80% of σ². The coverage band [0.93, 0.99] sits about 2 standard errors of a 2,000-study
rate around the goal [0.94, 0.985].
"""

import itertools

import numpy as np
import pytest

from study.calibration import DESIGNS, Cell, family_rate, run_cell, simulate, subject_level
from study.stats import VERDICTS
from study.subject_level import subject_comparison

pytestmark = pytest.mark.slow  # about a minute on 2 shared cores


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(2024)
    out = {}
    for design, share, h, r, tau in itertools.product(DESIGNS, (0.2, 0.8), (6, 20, 81), (2, 3), (0, 1, 4)):
        k = max(1, min(5, h // 6)) if design == "nested" else min(4, h // 2)
        out[(design, share, h, r, tau)] = run_cell(
            rng, Cell(h, r, tau, n_folds=k, design=design, fold_share=share), 2000
        )
    return out


def test_interval_covers_the_population_difference_in_both_designs(grid):
    for key, cell in grid.items():
        assert 0.93 <= cell["coverage"] <= 0.99, (key, cell["coverage"])


def test_false_directional_verdicts_stay_below_two_and_a_half_percent_per_side(grid):
    for key, cell in grid.items():
        assert max(cell["a_better"], cell["b_better"]) <= 0.025, (key, cell)


def test_holm_keeps_the_family_of_fourteen_arms_honest():
    rng = np.random.default_rng(5)
    fam = family_rate(rng, Cell(20, 3, 4.0), 14, 1000, 0.01)
    assert fam["any_false_directional_holm"] <= 0.05
    assert fam["any_false_directional_holm"] < fam["any_false_directional_alone"]


def test_equivalence_is_reachable_with_every_subject():
    """Per-subject noise 0.05 (0.01 of it a fold model's), τ = 0.005, 5 seeds, rope 0.01."""
    rng = np.random.default_rng(6)
    noise = dict(sigma=0.05, fold_share=(0.01 / 0.05) ** 2, tau_multiple=0.1)
    nested = run_cell(rng, Cell(81, 5, n_folds=5, design="nested", **noise), 2000)["equivalent"]
    fixed = run_cell(rng, Cell(81, 5, design="fixed", **noise), 2000)["equivalent"]
    few = run_cell(rng, Cell(20, 5, design="fixed", **noise), 2000)["equivalent"]
    assert nested >= 0.8 and fixed >= 0.7 and few < fixed / 2, (nested, fixed, few)


def test_vectorised_path_agrees_with_subject_comparison():
    rng = np.random.default_rng(3)
    d, fold = simulate(rng, 12, Cell(20, 5, 2.0, design="fixed"))
    vec = subject_level(d, fold, 0.01)
    for i in range(12):
        c = subject_comparison(np.full((20, 5), 0.5), 0.5 + d[i], folds=fold[i], rope=0.01)
        assert (c.mean_diff, c.ci_low, c.ci_high) == pytest.approx(
            (vec["mean"][i], vec["ci_low"][i], vec["ci_high"][i]), rel=1e-6, abs=1e-12
        )
        assert c.verdict == VERDICTS[vec["verdict"][i]]

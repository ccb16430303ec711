"""Calibration of the subject-level comparison (study.subject_level.subject_comparison) on simulated
confirmations (study/calibration.py): coverage, false verdicts, equivalence, families of arms and
followed evidence plans. Ends with one JSON line whose "summary" holds the acceptance numbers.

Grid: H ∈ {6, 12, 20, 40, 81} held-out subjects × R ∈ {1, 2, 3, 5, 10, 30} seeds × τ/σ ∈ {0, 0.5, 1,
2, 4}, for folds re-dealt every seed (a single held-out set), fixed across seeds (K = 4 folds, each
fold's model shared by its subjects in every seed: the harshest case) and nested (3 outer folds fixed,
each re-dealt into up to 5 slices every seed: what `run --outer-folds 3` and `confirm` do), fold-model
noise 20% and 80% of σ², Gaussian, t(3) and skewed subject effects; then a stress case the method
assumes away (20% of σ² shared by every model of a seed); Δ = 0, rope 0.01. A cell's coverage has a
Monte Carlo standard error of about sqrt(0.95·0.05/N): the summary counts the cells outside the goal by
more than twice that, beside the raw extremes.

    python benchmarks/bench_calibration.py [--studies 1000] [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from study.calibration import DESIGNS, SIGMA, Cell, family_rate, follow_plans, run_cell
from study.stats import DEFAULT_ROPE

SUBJECTS = (6, 12, 20, 40, 81)
SEEDS = (1, 2, 3, 5, 10, 30)
TAUS = (0, 0.5, 1, 2, 4)
COVERAGE_GOAL = (0.94, 0.985)
SIDE_GOAL = 0.025


def folds_of(design: str, h: int) -> int:
    """Fold models per seed (per outer fold when nested): 4 at most, 5 slices per outer fold at most,
    each with at least 2 subjects."""
    return max(1, min(5, h // 6)) if design == "nested" else min(4, h // 2)


def outside(values: list[float], low: float, high: float, n: int) -> int:
    """Cells beyond [low, high] by more than twice a proportion's Monte Carlo standard error."""
    return sum(
        not (low - 2 * (p * (1 - p) / n) ** 0.5 <= p <= high + 2 * (p * (1 - p) / n) ** 0.5) for p in values
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=1000, help="simulated studies per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="H ∈ {6, 20, 81}, R ∈ {1, 2, 3, 10}, τ/σ ∈ {0, 1, 4}")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    subjects, seeds, taus = ((6, 20, 81), (1, 2, 3, 10), (0, 1, 4)) if a.quick else (SUBJECTS, SEEDS, TAUS)
    start = time.perf_counter()
    cells = []
    variants = [
        dict(design=design, fold_share=share, distribution=dist)
        for design, share, dist in itertools.product(DESIGNS, (0.2, 0.8), ("gaussian", "t3", "skewed"))
    ] + [dict(design=design, fold_share=0.6, seed_share=0.2) for design in DESIGNS]
    for v in variants:
        for h, r, tau in itertools.product(subjects, seeds, taus):
            cells.append(run_cell(rng, Cell(h, r, tau, n_folds=folds_of(v["design"], h), **v), a.studies))
    print(
        "| design | fold share | seed share | subjects | H | R | τ/σ | coverage | a better | b better | equivalent |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        print(
            f"| {c['design']} | {c['fold_share']} | {c['seed_share']} | {c['distribution']} | {c['n_subjects']} | "
            f"{c['n_seeds']} | {c['tau_multiple']} | {c['coverage']:.3f} | {c['a_better']:.3f} | "
            f"{c['b_better']:.3f} | {c['equivalent']:.3f} |"
        )
    assumed = [c for c in cells if c["seed_share"] == 0 and c["n_seeds"] >= 2]
    stress = [c for c in cells if c["seed_share"] > 0 and c["n_seeds"] >= 2]

    def cov(group, dists):
        sel = [c["coverage"] for c in group if c["distribution"] in dists]
        return (min(sel), max(sel)) if sel else (float("nan"), float("nan"))

    def beyond(group, dists, low, high=1.0):
        sel = [c["coverage"] for c in group if c["distribution"] in dists]
        return outside(sel, low, high, a.studies)

    sides = [max(c["a_better"], c["b_better"]) for c in assumed]
    # 14 equal arms against the baseline.
    families = {f"tau{t}": family_rate(rng, Cell(20, 3, t), 14, a.studies, DEFAULT_ROPE) for t in (0, 1, 4)}
    # "Practically equivalent" at Δ = 0: per-subject noise 0.05 (fold model 0.01 of it), τ = 0.005, 5
    # seeds: every subject held out once by 3 outer folds of 5 slices (the full preset), and by 4
    # fixed folds (each fold's model shared by its ~20 subjects in every seed).
    noise = dict(sigma=0.05, fold_share=(0.01 / 0.05) ** 2, tau_multiple=0.005 / 0.05)
    equivalence = {
        f"H{h}_{design}": run_cell(rng, Cell(h, 5, n_folds=k, design=design, **noise), a.studies)[
            "equivalent"
        ]
        for h in (20, 81)
        for design, k in (("nested", 5), ("fixed", 4))
    }
    # Half the default rope with 20 held-out subjects: what a rope below the noise floor asks for.
    half_rope = {
        f"R{r}": run_cell(rng, Cell(20, r, n_folds=3, design="nested", **noise), a.studies, DEFAULT_ROPE / 2)[
            "equivalent"
        ]
        for r in (3, 5, 10, 30)
    }
    # The same at a true difference on the rope's edge: any "practically equivalent" there is false
    # (two one-sided tests at 5%: at most 5%), also with a skewed subject spread and τ = σ.
    false_equivalence = {
        f"H{h}_{dist}_tau{t}": run_cell(
            rng,
            Cell(
                h,
                5,
                design="fixed",
                delta=DEFAULT_ROPE,
                **(noise | {"tau_multiple": t, "distribution": dist}),
            ),
            a.studies,
        )["equivalent"]
        for h in (6, 20, 81)
        for dist in ("gaussian", "skewed")
        for t in (0.1, 1.0)
    }
    # Followed plans from pilots at 2 seeds with per-subject noise 0.05: every subject of this data
    # held out once (81, nested), and 20 held-out subjects (plans are rarely offered there: the
    # subject spread's upper bound over 20 subjects leaves most promises out of reach).
    nested = dict(design="nested", n_folds=5)
    plans = {
        "equivalent_H81_tau0.1": follow_plans(rng, Cell(81, 2, **nested, **noise), 200, DEFAULT_ROPE),
        "equivalent_H81_tau0.3": follow_plans(
            rng, Cell(81, 2, **nested, **(noise | {"tau_multiple": 0.3})), 200, DEFAULT_ROPE
        ),
        "better_2rope_H81_tau0.1": follow_plans(
            rng, Cell(81, 2, **nested, delta=2 * DEFAULT_ROPE, **noise), 200, DEFAULT_ROPE
        ),
        "equivalent_H20_tau0.1": follow_plans(rng, Cell(20, 2, **noise), 200, DEFAULT_ROPE),
        "better_2rope_H20_tau0.1": follow_plans(
            rng, Cell(20, 2, delta=2 * DEFAULT_ROPE, **noise), 200, DEFAULT_ROPE
        ),
    }
    wall = time.perf_counter() - start
    summary = {
        "coverage_gaussian_t3_R>=2": cov(assumed, ("gaussian", "t3")),
        "coverage_skewed_R>=2": cov(assumed, ("skewed",)),
        "coverage_seed_shared_stress_R>=2": cov(stress, ("gaussian",)),
        "cells_R>=2": len(assumed),
        "coverage_cells_outside_goal_gaussian_t3": beyond(assumed, ("gaussian", "t3"), *COVERAGE_GOAL),
        "coverage_cells_below_0.92_skewed": beyond(assumed, ("skewed",), 0.92),
        "max_false_directional_per_side": max(sides),
        "side_cells_above_goal": outside(sides, 0.0, SIDE_GOAL, a.studies),
        "false_directional_above_goal": [
            {
                k: c[k]
                for k in (
                    "design",
                    "distribution",
                    "n_subjects",
                    "n_seeds",
                    "tau_multiple",
                    "a_better",
                    "b_better",
                )
            }
            for c in assumed
            if max(c["a_better"], c["b_better"]) > SIDE_GOAL
        ],
        "family_14_arms": families,
        "equivalent_rope0.01_5seeds": equivalence,
        "equivalent_rope0.005_H20": half_rope,
        "max_false_equivalent_at_rope_edge": max(false_equivalence.values()),
        "false_equivalent_at_rope_edge": false_equivalence,
        "plans_kept": plans,
    }
    print(
        f"\n{a.studies} studies per cell, {len(cells)} cells, {wall:.0f} s, σ = {SIGMA:.4f}, rope {DEFAULT_ROPE}"
    )
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(
        json.dumps(
            {
                "setup": {"studies": a.studies, "seed": a.seed, "sigma": SIGMA, "rope": DEFAULT_ROPE},
                "wall_s": round(wall, 1),
                "summary": summary,
                "cells": cells,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Calibration of the subject-level comparison against the fold-level one, on simulated confirmations.

Data-generating process (study/calibration.py): H held-out subjects with true differences
δ_h ~ N(Δ, τ²), Δ = 0 here; per seed the subjects are shuffled into K folds; per (seed, fold, arm)
one model noise N(0, 0.007²) shared by the fold's subjects; per (subject, seed, arm) a residual
N(0, 0.01²); a per-subject baseline (sd 0.03) that cancels. τ is given in units of the seed noise
of one subject's difference, sqrt(2 (0.007² + 0.01²)) ≈ 0.0172. Shapes: real (20 held out of 81,
K = 5) and demo (6 held out of 18, K = 2). Rope 0.005.

Per cell: coverage of Δ by the 95% interval; false directional verdicts per side (a better /
b better); rejections of 0 per side (interval wholly below / above 0, i.e. p < 0.05); the share
declared practically equivalent; for the subject-level test (subject_comparison: subjects × seeds
crossed, Welch–Satterthwaite df, verdicts beyond the rope at 0.975) and the fold-level test
(paired_comparison on per-(seed, fold) means, Nadeau–Bengio with n_test/n_train of the folds).
Goals: subject-level coverage ≥ 94% (real) / 92.5% (demo) everywhere; false verdicts ≤ 5% per
side and ≤ 1 point higher at R = 50 than at R = 2; equivalence ≥ 80% at τ = 0, R = 50 (real).
Ends with one JSON line.

    python benchmarks/bench_calibration.py [--studies 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from study.calibration import (
    DEMO,
    REAL,
    ROPE,
    SEED_COUNTS,
    SEED_NOISE,
    SIGMA_BASE,
    SIGMA_RESID,
    SIGMA_SEED,
    TAU_MULTIPLES,
    run_cell,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=2000, help="simulated studies per cell")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    start = time.perf_counter()
    cells = [
        run_cell(rng, shape, r, tau, n_studies=a.studies)
        for shape in (REAL, DEMO)
        for tau in TAU_MULTIPLES
        for r in SEED_COUNTS
    ]
    wall = time.perf_counter() - start

    def pct(x: float) -> str:
        return f"{100 * x:5.1f}"

    head = "| shape | H | K | τ/seed noise | R | test | coverage | a better | b better | p<α below 0 | p<α above 0 | equivalent |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for c in cells:
        for test in ("subject", "fold"):
            s = c[test]
            print(
                f"| {c['shape']} | {c['H']} | {c['K']} | {c['tau_multiple']} | {c['R']} | {test} | "
                f"{pct(s['coverage'])} | {pct(s['a_better'])} | {pct(s['b_better'])} | "
                f"{pct(s['below_0'])} | {pct(s['above_0'])} | {pct(s['equivalent'])} |"
            )
    real = [c for c in cells if c["shape"] == "real"]
    demo = [c for c in cells if c["shape"] == "demo"]

    def worst(group: list[dict], test: str, key: str, fn=min) -> float:
        return fn(c[test][key] for c in group)

    def growth(group: list[dict]) -> float:
        by = {(c["tau_multiple"], c["R"]): c["subject"] for c in group}
        return max(by[(t, 50)][s] - by[(t, 2)][s] for t in TAU_MULTIPLES for s in ("a_better", "b_better"))

    summary = {
        "subject_min_coverage_real": worst(real, "subject", "coverage"),
        "subject_min_coverage_demo": worst(demo, "subject", "coverage"),
        "fold_min_coverage_real": worst(real, "fold", "coverage"),
        "fold_min_coverage_demo": worst(demo, "fold", "coverage"),
        "subject_max_false_verdict_per_side": max(
            max(c["subject"]["a_better"], c["subject"]["b_better"]) for c in cells
        ),
        "subject_max_false_verdict_growth_r2_to_r50": max(growth(real), growth(demo)),
        "subject_equivalent_real_tau0_r50": next(
            c["subject"]["equivalent"] for c in real if c["tau_multiple"] == 0 and c["R"] == 50
        ),
    }
    print(
        f"\n{a.studies} studies per cell, {len(cells)} cells, {wall:.1f} s; "
        + ", ".join(f"{k} {v:.3f}" for k, v in summary.items())
    )
    print(
        json.dumps(
            {
                "setup": {
                    "studies": a.studies,
                    "seed": a.seed,
                    "sigma_seed": SIGMA_SEED,
                    "sigma_resid": SIGMA_RESID,
                    "sigma_base": SIGMA_BASE,
                    "seed_noise": round(SEED_NOISE, 5),
                    "rope": ROPE,
                    "shapes": {s.name: [s.n_subjects, s.n_folds, s.n_total] for s in (REAL, DEMO)},
                },
                "wall_s": round(wall, 1),
                "summary": {k: round(v, 4) for k, v in summary.items()},
                "cells": cells,
            }
        )
    )


if __name__ == "__main__":
    main()

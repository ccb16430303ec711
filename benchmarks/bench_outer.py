"""What nesting the search in outer folds costs against one held-out set.

- measured, in one run: `cmi-study demo` as the README runs it (2 outer folds of 9 subjects, 4 trials
  per arm and outer fold: all 18 subjects evaluated) against the single held-out set the demo had
  before (`run --preset demo --outer-folds 1 --holdout 0.34 --n-trials 8`, then `confirm` and `report`:
  6 of 18 subjects evaluated), each from a fresh folder and data cache, with 2 workers; wall seconds,
  fold-trainings (from the storage) and the fp32 2048² matmul GFLOP/s (1 thread) before and after.
- computed, per preset (no training): fold-trainings and subject-trainings (training subjects summed
  over the fold-trainings: what a fold's seconds grow with) of K outer folds against one held-out set,
  from the preset's subjects, folds, trials and seeds, without pruning.

    python benchmarks/bench_outer.py [--computed-only]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads

import optuna  # noqa: E402
from bench_study import machine  # noqa: E402

REAL_SUBJECTS = 81  # the competition's train set


def design_cost(subjects: int, folds: int, trials: int, seeds: int, outer: int, holdout: float) -> dict:
    """Fold-trainings and subject-trainings of a study of two arms (no pruning), per design:
    outer ≥ 2 outer folds, or one held-out share `holdout`."""
    parts = outer if outer > 1 else 1
    held = subjects / outer if outer > 1 else round(subjects * holdout)
    pool = subjects - held
    search = parts * trials * folds  # per arm
    search_subjects = search * pool * (folds - 1) / folds
    confirm = parts * seeds * folds
    confirm_subjects = confirm * (pool + held * (folds - 1) / folds)
    return {
        "evaluated_subjects": round(held * parts),
        "fold_trainings": 2 * (search + confirm),
        "subject_trainings": round(2 * (search_subjects + confirm_subjects)),
    }


def computed() -> dict:
    from study.settings import build_settings

    out = {}
    for preset in ("tiny", "demo", "full"):
        st = build_settings(preset).study
        syn = build_settings(preset).synthetic
        n = REAL_SUBJECTS if syn.full_size else syn.subjects
        outer = st.outer_folds if st.outer_folds > 1 else 3
        one = design_cost(n, st.folds, st.n_trials, st.confirm_seeds, 1, 0.25 if preset == "full" else 0.34)
        nested = design_cost(n, st.folds, st.n_trials, st.confirm_seeds, outer, 0)
        out[preset] = {
            "subjects": n,
            "outer_folds": outer,
            "one_holdout": one,
            "nested": nested,
            "subject_trainings_ratio": round(nested["subject_trainings"] / one["subject_trainings"], 2),
        }
        print(
            f"{preset:5s} {n} subjects, {st.n_trials} trials, {st.folds} folds, {st.confirm_seeds} seeds: one held-out "
            f"set evaluates {one['evaluated_subjects']} subjects with {one['fold_trainings']} fold-trainings "
            f"({one['subject_trainings']} subject-trainings); {outer} outer folds evaluate "
            f"{nested['evaluated_subjects']} with {nested['fold_trainings']} ({nested['subject_trainings']}): "
            f"{out[preset]['subject_trainings_ratio']}x"
        )
    return out


def cli(args: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "study", *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def fold_trainings(url: str) -> int:
    """Every finished fold of every study in the storage (search and confirmation)."""
    n = 0
    for name in optuna.get_all_study_names(url):
        for t in optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False):
            scores = t.user_attrs.get("fold_score")
            n += len(scores) if isinstance(scores, list) else 0
    return n


def measured() -> dict:
    out = {}
    designs = {
        "nested_demo": [["demo"]],
        "one_holdout": [
            [
                "run",
                "--preset",
                "demo",
                "--outer-folds",
                "1",
                "--holdout",
                "0.34",
                "--n-trials",
                "8",
                "--workers",
                "2",
            ],
            ["confirm", "--workers", "2"],
            ["report"],
        ],
    }
    for design, commands in designs.items():
        work = Path(tempfile.mkdtemp(prefix=f"cmi-bench-outer-{design}-"))
        env = os.environ | {"CMI_CACHE_DIR": str(work / "cache"), "TQDM_DISABLE": "1"}
        wall = sum(cli(c, work, env) for c in commands)
        url = f"sqlite:///{work}/reports/cmi.db"
        out[design] = {"wall_s": round(wall, 1), "fold_trainings": fold_trainings(url)}
        print(f"{design}: {wall:.1f}s wall, {out[design]['fold_trainings']} fold-trainings")
    out["wall_ratio"] = round(out["nested_demo"]["wall_s"] / out["one_holdout"]["wall_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--computed-only", action="store_true", help="the per-preset arithmetic only (seconds)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    figures: dict = {"computed": computed()}
    if not args.computed_only:
        before = machine()
        print(f"matmul fp32 2048²: {before['matmul_gflops']} GFLOP/s (1 thread) before")
        figures["measured"] = measured()
        after = machine()
        print(f"matmul fp32 2048²: {after['matmul_gflops']} GFLOP/s (1 thread) after")
        figures["matmul_gflops"] = round((before["matmul_gflops"] + after["matmul_gflops"]) / 2, 1)
        print(f"nested demo / one held-out set: {figures['measured']['wall_ratio']}x wall")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

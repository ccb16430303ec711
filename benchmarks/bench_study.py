"""Study benchmark: wall time of `cmi-study demo`, and what each pruner saves.

Pruners: the same budget (trials, folds, sampler seed) is run with --pruner none, wilcoxon
and median on one arm; we count fold-trainings actually run and compare the best trial's
score. Ends with one JSON line of figures.

    python benchmarks/bench_study.py [--skip-demo] [--trials 10] [--folds 5] [--epochs 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna


def cli(args: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "study", *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmi-bench-study-"))
    env = os.environ | {"CMI_CACHE_DIR": str(work / "cache"), "TQDM_DISABLE": "1"}
    figures: dict = {"cpus": os.cpu_count()}
    if not args.skip_demo:
        figures["demo_wall_s"] = round(cli(["demo"], work, env), 1)
        print(f"cmi-study demo: {figures['demo_wall_s']:.0f}s wall (goal <= 300 s)")

    common = [
        "run",
        "--preset",
        "tiny",
        "--arms",
        "fixed",
        "--subjects",
        "10",
        "--n-trials",
        str(args.trials),
    ]
    common += ["--folds", str(args.folds), "--epochs", str(args.epochs)]
    pruning = {}
    for pruner in ("none", "wilcoxon", "median"):
        url = f"sqlite:///{work}/prune-{pruner}.db"
        seconds = cli([*common, "--pruner", pruner, "--storage", url, "--study-name", "p"], work, env)
        study = optuna.load_study(study_name="p-fixed", storage=url)
        trials = study.get_trials(deepcopy=False)
        folds_run = sum(len(t.user_attrs.get("fold_scores", [])) for t in trials)
        best = study.best_trial
        pruning[pruner] = {
            "seconds": round(seconds, 1),
            "fold_trainings": folds_run,
            "pruned_trials": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
            "best_value": round(best.value, 4),
            "best_trial": best.number,
        }
        print(
            f"pruner {pruner:8s} {folds_run:3d} fold-trainings, {pruning[pruner]['pruned_trials']} pruned, "
            f"best trial #{best.number} = {best.value:.4f}, {seconds:.0f}s"
        )
    base = pruning["none"]
    for pruner in ("wilcoxon", "median"):
        p = pruning[pruner]
        p["saved_fold_trainings_pct"] = round(100 * (1 - p["fold_trainings"] / base["fold_trainings"]), 1)
        p["best_unchanged"] = p["best_trial"] == base["best_trial"] and p["best_value"] == base["best_value"]
    figures["pruning"] = pruning
    figures["setup"] = {"trials": args.trials, "folds": args.folds, "epochs": args.epochs, "subjects": 10}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

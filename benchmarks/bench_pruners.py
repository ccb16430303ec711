"""Which pruner pays: share of fold-trainings saved vs the best score kept, on the same budget
and sampler seed, at 3 and 5 folds.

Setup: the fixed arm's search space (its baseline enqueued first, then TPE, as `cmi-study run`
does), the tiny model, a small synthetic set, every fold's score reported as step k. For each
fold count and sampler seed, a real Optuna study per candidate pruner runs the same budget of
trials. Goals: the pruner saves >= 35% of the fold-trainings, and the best score it finds stays
within 0.01 of the unpruned run's in >= 4 of 5 seeds.

Fold scores are memoised by (configuration, fold): the unpruned run trains every fold, and a
pruned run reuses the scores of the configurations it shares with it. With a budget within TPE's
10 random startup trials the sampler draws the same configurations whatever the pruner decides
(checked: `configs_not_in_unpruned_run` counts the ones it did not share, which were trained).
The same candidates are then replayed on the first `--replay-trials` trials (the demo's budget)
of the recorded fold scores. Ends with one JSON line (with every unpruned run's fold scores).

    python benchmarks/bench_pruners.py [--trials 10] [--seeds 5] [--subjects 8] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from bench_study import matmul_gflops  # noqa: E402  (this folder is on sys.path when run as a script)
from optuna.trial import TrialState  # noqa: E402

ARM = "fixed"
GOAL_SAVING, GOAL_GAP, GOAL_SEEDS = 0.35, 0.01, 4


class FoldMeanPruner(optuna.pruners.BasePruner):
    """Prune when the mean of the trial's folds so far is below the `percentile` (kept from the
    top, as PercentilePruner) of the complete trials' means over the same folds."""

    def __init__(self, percentile: float, n_startup_trials: int = 2, n_warmup_steps: int = 0):
        self.percentile, self.n_startup_trials, self.n_warmup_steps = (
            percentile,
            n_startup_trials,
            n_warmup_steps,
        )

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step is None or step < self.n_warmup_steps or len(complete) < max(1, self.n_startup_trials):
            return False
        steps = range(step + 1)
        if any(k not in trial.intermediate_values for k in steps):
            return False
        mine = np.mean([trial.intermediate_values[k] for k in steps])
        others = [
            np.mean([t.intermediate_values[k] for k in steps])
            for t in complete
            if all(k in t.intermediate_values for k in steps)
        ]
        if not others:
            return False
        return bool(mine < np.percentile(others, 100 - self.percentile))


def candidates() -> dict:
    """name → (description, pruner factory). The settings' choices first, through study.arm_studies."""
    from study.arm_studies import make_pruner
    from study.settings import StudySection

    kinds = StudySection.model_fields["pruner"].annotation.__args__  # the Literal's choices
    out = {kind: (f"--pruner {kind}", lambda kind=kind: make_pruner(kind)) for kind in kinds}
    p = optuna.pruners
    out |= {
        "median_warmup1": ("Median, 2 startup, from fold 1", lambda: p.MedianPruner(2, n_warmup_steps=1)),
        "percentile40": ("Percentile 40, 2 startup", lambda: p.PercentilePruner(40.0, n_startup_trials=2)),
        "percentile33": ("Percentile 33, 2 startup", lambda: p.PercentilePruner(100 / 3, n_startup_trials=2)),
        "percentile25": ("Percentile 25, 2 startup", lambda: p.PercentilePruner(25.0, n_startup_trials=2)),
        "median_1startup": ("Median, 1 startup (the baseline)", lambda: p.MedianPruner(1, n_warmup_steps=0)),
        "foldmean50": ("fold-mean median, 2 startup", lambda: FoldMeanPruner(50.0)),
        "foldmean40": ("fold-mean percentile 40, 2 startup", lambda: FoldMeanPruner(40.0)),
        "foldmean33": ("fold-mean percentile 33, 2 startup", lambda: FoldMeanPruner(100 / 3)),
        # Folds as the resource: rungs after fold 1 (and 3), the top 1/reduction_factor go on.
        "halving3": ("SuccessiveHalving, folds, factor 3", lambda: p.SuccessiveHalvingPruner(1, 3)),
        "halving2": ("SuccessiveHalving, folds, factor 2", lambda: p.SuccessiveHalvingPruner(1, 2)),
        "hyperband": ("Hyperband, folds 1..5, factor 3", lambda: p.HyperbandPruner(1, 5, 3)),
    }
    return out


# ----------------------------------------------------------------------------- one (folds, seed)

_MEMO: dict = {}


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _settings(args):
    from study.settings import build_settings

    return build_settings(
        "tiny",
        overrides={
            "synthetic": {"subjects": args["subjects"]},
            "study": {"holdout": 0.0, "n_trials": args["trials"]},
            "data": {"max_len": 48, "batch_size": 64},
            "train": {"max_epochs": args["epochs"], "warmup_epochs": 0.5},
        },
    )


def _fold_score(data, folds, settings, params: dict, k: int, seed: int) -> tuple[float, bool]:
    """(score of fold k for these params, trained now)."""
    from cmi_model.train import fit_fold
    from study import space

    key = (len(folds), k, _key(params))
    if key in _MEMO:
        return _MEMO[key], False
    s = settings
    model, loss, train = space.apply(ARM, params, s.model, s.loss, s.train)
    tr, va = folds[k]
    r = fit_fold(
        data,
        tr,
        va,
        model_cfg=model,
        loss_cfg=loss,
        data_cfg=s.data,
        train_cfg=train.model_copy(update={"seed": seed * 1000 + k}),
        fold_cache=_CACHE,
    )
    _MEMO[key] = r.score
    return r.score, True


_CACHE = None


def run_study(args, n_folds: int, seed: int, pruner, data, folds, settings) -> dict:
    """One real study: TPE(seed), the arm's baseline enqueued, `trials` trials, this pruner."""
    from study import space

    trained = [0]

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial, ARM)
        scores = []
        for k in range(n_folds):
            score, new = _fold_score(data, folds, settings, params, k, settings.study.seed)
            trained[0] += new
            scores.append(score)
            trial.report(score, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    study.enqueue_trial(space.baseline(ARM, settings.train, settings.model))
    study.optimize(objective, n_trials=args["trials"])
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value, default=None)
    return {
        "fold_trainings": sum(len(t.intermediate_values) for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "best": best.value if best else -math.inf,
        "best_trial": best.number if best else None,
        "configs": [_key(t.params) for t in trials],
        "fold_scores": [
            [round(t.intermediate_values[k], 4) for k in sorted(t.intermediate_values)] for t in trials
        ],
        "trained_now": trained[0],
    }


def task(job: tuple) -> dict:
    """Every candidate on one (folds, seed): the unpruned run first (it trains every fold)."""
    global _CACHE
    args, n_folds, seed = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from cmi_model.dataset import FoldCache
    from cmi_model.folds import subject_folds
    from study.runner import load_study_data

    _CACHE = _CACHE or FoldCache()
    settings = _settings(args)
    data, _ = load_study_data(settings, None)
    folds = subject_folds(data, n_folds, settings.study.seed)
    start = time.perf_counter()
    out = {}
    for name, (_, factory) in candidates().items():
        out[name] = run_study(args, n_folds, seed, factory(), data, folds, settings)
    reference = set(out["none"]["configs"])
    for r in out.values():
        r["configs_not_in_unpruned_run"] = sum(c not in reference for c in r.pop("configs"))
    table = out["none"]["fold_scores"]  # every trial's every fold: any pruner can be replayed on it
    for r in out.values():
        r.pop("fold_scores")
    return {
        "folds": n_folds,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "runs": out,
        "table": table,
    }


# ----------------------------------------------------------------------------- replay


def replay(pruner, table: list[list[float]]) -> tuple[int, float]:
    """(fold-trainings, best complete value) of a pruner on recorded fold scores, trial by trial,
    through an in-memory study: the decisions a live run with these trials would take."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    n = 0
    for scores in table:
        trial = study.ask()
        for k, score in enumerate(scores):
            trial.report(score, k)
            n += 1
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, float(np.mean(scores)))
    return n, max(t.value for t in study.trials if t.state == TrialState.COMPLETE)


def summarize_replay(results: list[dict], n_folds: int, budget: int) -> dict:
    """Every candidate on the first `budget` trials of the unpruned runs (the same configurations
    a run of that budget draws: TPE's startup trials do not depend on the budget)."""
    mine = [r for r in results if r["folds"] == n_folds]
    out = {}
    for name, (_, factory) in candidates().items():
        run = full = 0
        gaps = []
        for r in mine:
            table = r["table"][:budget]
            n, best = replay(factory(), table)
            run, full = run + n, full + sum(len(x) for x in table)
            gaps.append(round(max(float(np.mean(x)) for x in table) - best, 4))
        within = sum(g <= GOAL_GAP + 1e-12 for g in gaps)
        saving = 1 - run / full
        out[name] = {
            "saving": round(saving, 3),
            "seeds_within": within,
            "gaps": gaps,
            "meets_both": saving >= GOAL_SAVING and within >= GOAL_SEEDS,
        }
    return out


# ----------------------------------------------------------------------------- summary


def summarize(results: list[dict], n_folds: int) -> dict:
    mine = [r for r in results if r["folds"] == n_folds]
    out = {}
    for name in mine[0]["runs"]:
        base = [r["runs"]["none"] for r in mine]
        runs = [r["runs"][name] for r in mine]
        savings = [1 - x["fold_trainings"] / b["fold_trainings"] for x, b in zip(runs, base, strict=True)]
        gaps = [b["best"] - x["best"] for x, b in zip(runs, base, strict=True)]
        saving = 1 - sum(x["fold_trainings"] for x in runs) / sum(b["fold_trainings"] for b in base)
        within = sum(g <= GOAL_GAP + 1e-12 for g in gaps)
        out[name] = {
            "saving": round(saving, 3),
            "saving_min": round(min(savings), 3),
            "saving_max": round(max(savings), 3),
            "pruned_trials": sum(x["pruned"] for x in runs),
            "seeds_within": within,
            "gaps": [round(g, 4) for g in gaps],
            "meets_both": saving >= GOAL_SAVING and within >= GOAL_SEEDS,
            "configs_not_in_unpruned_run": sum(x["configs_not_in_unpruned_run"] for x in runs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10, help="per run (<= 10: all within TPE's random startup)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--folds", default="3,5")
    ap.add_argument(
        "--replay-trials", type=int, default=6, help="also replay the first N trials (the demo's 6)"
    )
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = {"trials": a.trials, "subjects": a.subjects, "epochs": a.epochs}
    fold_counts = [int(k) for k in a.folds.split(",")]

    from study.runner import load_study_data

    load_study_data(_settings(args), None)  # the synthetic set, generated once before the workers start
    gflops = matmul_gflops(threads=1)  # a worker's: each process trains on 1 thread
    start = time.perf_counter()
    jobs = [(args, k, seed) for k in sorted(fold_counts, reverse=True) for seed in range(a.seeds)]
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(task, jobs))
    wall = time.perf_counter() - start
    print(
        f"{a.trials} trials per run, fixed arm, tiny model, {a.subjects} synthetic subjects (all searched), "
        f"{a.epochs} epochs, sampler seeds 0..{a.seeds - 1}; {wall:.0f}s wall on {a.workers} processes, "
        f"matmul {gflops:.1f} GFLOP/s (1 thread), {datetime.now():%Y-%m-%d}"
    )
    desc = {name: d for name, (d, _) in candidates().items()}
    summary = {}
    for k in fold_counts:
        summary[k] = summarize(results, k)
        print(
            f"\n{k} folds (goal: saving >= {GOAL_SAVING:.0%}, best within {GOAL_GAP} in >= {GOAL_SEEDS} seeds)"
        )
        print(
            "| pruner | what | fold-trainings saved (seed min–max) | pruned trials | seeds within 0.01 | gaps per seed | both goals |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, s in summary[k].items():
            print(
                f"| {name} | {desc[name]} | {s['saving']:.0%} ({s['saving_min']:.0%}–{s['saving_max']:.0%}) | "
                f"{s['pruned_trials']} | {s['seeds_within']}/{a.seeds} | {', '.join(f'{g:.3f}' for g in s['gaps'])} | "
                f"{'yes' if s['meets_both'] else 'no'} |"
            )
    replayed = {}
    if a.replay_trials < a.trials:
        for k in fold_counts:
            replayed[k] = summarize_replay(results, k, a.replay_trials)
            print(f"\n{k} folds, {a.replay_trials} trials (replayed on the first trials of the same runs)")
            print("| pruner | fold-trainings saved | seeds within 0.01 | gaps per seed | both goals |")
            print("| --- | --- | --- | --- | --- |")
            for name, s in replayed[k].items():
                print(
                    f"| {name} | {s['saving']:.0%} | {s['seeds_within']}/{a.seeds} | "
                    f"{', '.join(f'{g:.3f}' for g in s['gaps'])} | {'yes' if s['meets_both'] else 'no'} |"
                )
    best_none = {k: [r["runs"]["none"]["best"] for r in results if r["folds"] == k] for k in fold_counts}
    best_trial = {
        k: [r["runs"]["none"]["best_trial"] for r in results if r["folds"] == k] for k in fold_counts
    }
    for k in fold_counts:
        # Trials 0 (the baseline) and 1 complete under every candidate with 2 startup trials: where
        # the unpruned best is one of them, keeping the best score says little about the pruner.
        print(
            f"{k} folds: unpruned best per seed {', '.join(f'{v:.4f}' for v in best_none[k])} "
            f"(trial {', '.join(map(str, best_trial[k]))})"
        )
    print(
        json.dumps(
            {
                "setup": args | {"seeds": a.seeds, "arm": ARM},
                "wall_s": round(wall, 1),
                "matmul_gflops": round(gflops, 1),
                "unpruned_best": {k: [round(v, 4) for v in b] for k, b in best_none.items()},
                "unpruned_best_trial": best_trial,
                "unpruned_fold_scores": {f"{r['folds']}-{r['seed']}": r["table"] for r in results},
                "summary": summary,
                f"replayed_{a.replay_trials}_trials": replayed,
            }
        )
    )


if __name__ == "__main__":
    main()

"""The confirmation: each arm's best configuration re-trained on R split seeds × K folds whose
validation folds are held-out subjects only, paired across arms by (seed, fold).

Each (arm, seed) pair is one enqueued trial of ``NAME-confirm`` with the arm and the seed as its
parameters (optuna-dashboard groups and plots by them). Any number of workers take pairs from
the queue through ``study.optimize``, so heartbeats fail and re-queue a killed worker's pair,
and every pair is done once.
"""

from __future__ import annotations

import time

import numpy as np
import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from cmi_model.errors import InputError, raise_if_stopping
from cmi_model.folds import SubjectSplit, holdout_folds
from study import records, space
from study.objective import BudgetTaken, TrialConfigs, run_folds
from study.runner import load_study_data, run_one
from study.settings import Settings, StudySection
from study.storage import fail_lost_trials, open_storage

SEED_RANGE = (0, 2**31 - 1)  # the seed parameter's distribution; the values come from the queue


class ConfirmObjective:
    """Re-train one queued (arm, seed) pair on its folds."""

    def __init__(self, settings: Settings, data, split: SubjectSplit, best: dict):
        self.settings, self.data, self.split, self.best = settings, data, split, best

    def __call__(self, trial: optuna.Trial) -> float:
        running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if "fixed_params" not in next(t for t in running if t.number == trial.number).system_attrs:
            # Another worker took the last queued pair between our look at the queue and this trial.
            records.write(trial, fail_reason=f"{records.BUDGET_TAKEN}: no queued pair left")
            raise BudgetTaken()
        arm = trial.suggest_categorical("arm", records.ARMS)
        seed = trial.suggest_int("seed", *SEED_RANGE)
        best, s = self.best[arm], self.settings
        records.write(trial, arm=arm, seed=seed, params=best.params, source_trial=best.number)
        model, loss, train = space.apply(arm, best.params, s.model, s.loss, s.train)
        return run_folds(
            trial,
            self.data,
            holdout_folds(self.data, self.split, s.study.folds, seed),
            TrialConfigs(model, loss, s.data, train),
            seed=seed,
            prune=False,  # the verdict never prunes
            label=f"confirm {arm} s{seed}",
        )


def prepare_confirm(
    storage_url: str, name: str, n_seeds: int | None, data_dir: str | None, command: str
) -> tuple[optuna.Study, ConfirmObjective, Settings]:
    """Open the run's studies, write the confirmation study's record and queue the pairs not yet
    done or queued (a pair that failed is queued again)."""
    storage = open_storage(storage_url, must_exist=True)  # confirm reads a run: never a new database
    existing = set(optuna.get_all_study_names(storage))
    arm_studies = {
        arm: optuna.load_study(study_name=records.study_name(name, arm), storage=storage)
        for arm in records.ARMS
        if records.study_name(name, arm) in existing
    }
    if not arm_studies:
        raise InputError(
            f"storage has no study named {name}-<arm>: run `cmi-study run --study-name {name}` first"
        )
    first = next(iter(arm_studies.values()))
    recorded = records.read_arm_study(first)
    settings = Settings(**recorded.settings)
    st = settings.study
    data, info = load_study_data(settings, data_dir)
    if recorded.data.fingerprint != info.fingerprint:
        raise InputError(
            f"the data differs from the data study {first.study_name!r} was run on "
            f"(source {recorded.data.source!r}): pass the same --data"
        )
    best = {arm: records.best_trial(s.get_trials(deepcopy=False)) for arm, s in arm_studies.items()}
    for arm, trial in best.items():
        if trial is None:
            raise InputError(
                f"study {arm_studies[arm].study_name!r} has no complete trial yet: nothing to confirm"
            )
    split = SubjectSplit(tuple(recorded.search_subjects), tuple(recorded.holdout_subjects))
    seeds = [st.seed + 1 + r for r in range(n_seeds or st.confirm_seeds)]  # never the search's seed
    folds = holdout_folds(data, split, st.folds, seeds[0])
    storage = open_storage(
        storage_url,
        heartbeat_interval=st.heartbeat_interval,
        grace_period=st.grace_period,
        max_retry=st.max_retry,
    )
    confirm = optuna.create_study(
        storage=storage,
        study_name=records.study_name(name, records.CONFIRM),
        direction="maximize",
        load_if_exists=True,
    )
    earlier = records.read_confirm_study(confirm).seeds
    records.write_study(
        confirm,
        records.ConfirmStudyRecord(
            arms=list(best),
            seeds=sorted(set(earlier) | set(seeds)),
            n_folds=st.folds,
            data=info,
            command=command,
            versions=records.package_versions(),
            holdout_subjects=list(split.holdout),
            test_train_ratio=float(np.mean([len(va) / len(tr) for tr, va in folds])),
        ),
    )
    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    have = {
        (t.params.get("arm"), t.params.get("seed")) for t in confirm.get_trials(deepcopy=False, states=live)
    }
    have |= {
        (t.system_attrs["fixed_params"].get("arm"), t.system_attrs["fixed_params"].get("seed"))
        for t in confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    }
    for seed in seeds:
        for arm in best:
            if (arm, seed) not in have:
                confirm.enqueue_trial({"arm": arm, "seed": seed})
    return confirm, ConfirmObjective(settings, data, split, best), settings


def work_confirm(confirm: optuna.Study, objective: ConfirmObjective, st: StudySection) -> dict:
    """Take queued pairs until none is left or running; return each arm's mean confirmed score."""

    def count(*states) -> int:
        return len(confirm.get_trials(deepcopy=False, states=states))

    total = count(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    if not count(TrialState.WAITING, TrialState.RUNNING):
        print(f"nothing to do: {total} of {total} confirmation pairs finished; use --seeds to add more")
    # No bar when there is nothing to do; otherwise tqdm's own default, which TQDM_DISABLE=1 can
    # turn off (an explicit disable=False would override the environment).
    quiet = {} if count(TrialState.WAITING) else {"disable": True}
    with tqdm(total=total, desc="confirm", unit="pair", **quiet) as bar:
        while True:
            raise_if_stopping()  # a stopping signal whose exception was swallowed (cmi_model.errors)
            fail_lost_trials(confirm, st.grace_period)  # a dead worker's pair: failed and re-queued
            if count(TrialState.WAITING):
                trial = run_one(confirm, objective)
                if trial.state == TrialState.FAIL and not records.is_budget_skip(trial):
                    r = records.read_trial(trial)
                    tqdm.write(f"confirm {r.arm} seed {r.seed} failed: {r.fail_reason}")
            elif count(TrialState.RUNNING):
                time.sleep(min(2.0, st.heartbeat_interval))  # others' pairs: wait in case one dies
            else:
                break
            bar.n = count(TrialState.COMPLETE)
            bar.refresh()
    scores: dict[str, list[float]] = {}
    for t in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        r = records.read_trial(t)
        scores.setdefault(r.arm, []).extend(r.scores)
    return {arm: {"n": len(v), "mean": float(np.mean(v))} for arm, v in scores.items()}

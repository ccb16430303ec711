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
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from cmi_model.errors import InputError, NothingDone
from cmi_model.folds import SubjectSplit, holdout_folds
from cmi_model.stopping import raise_if_stopping
from cmi_model.weighting import BASELINE_ARM
from study import frozen, records, space
from study.arm_studies import shared_settings
from study.objective import BudgetTaken, TrialConfigs, budget_counts, run_folds
from study.runner import load_study_data, run_one
from study.settings import Settings, StudySection
from study.workers import trial_notes
from study.workers.storage import close, fail_lost_trials, open_storage

SEED_RANGE = (0, 2**31 - 1)  # the seed parameter's distribution; the values come from the queue


class ConfirmObjective:
    """Re-train one queued (arm, seed) pair on its folds.

    Everything the pair trains comes from the pair itself: the source trial's parameters stored
    with it when it was queued (not this worker's own view of the best, which a search still
    running could move), the split seed's folds, and per fold the seed seed·1000 + k from which
    fit_fold sets every random generator and flag (`cmi_model.train.fold_state`); no tensors
    are shared with other pairs. So a pair's scores do not depend on which worker runs it or
    on what that worker ran before (only, in the last bits, on its `--threads`, recorded).
    """

    def __init__(self, settings: Settings, data, split: SubjectSplit, best: dict):
        self.settings, self.data, self.split, self.best = settings, data, split, best

    def __call__(self, trial: optuna.Trial) -> float:
        running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        mine = next(t for t in running if t.number == trial.number)
        if "fixed_params" not in mine.system_attrs:
            # Another worker took the last queued pair between our look at the queue and this trial.
            records.write(trial, fail_reason=f"{records.BUDGET_TAKEN}: no queued pair left")
            raise BudgetTaken()
        # Workers started separately (array tasks, pods) queue the missing pairs at the same
        # time, so a pair can be queued twice: the lowest-numbered copy that did not fail trains.
        pair = pair_of(mine)
        others = trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        )
        if first := next((t for t in others if t.number < trial.number and pair_of(t) == pair), None):
            records.write(trial, fail_reason=f"{records.BUDGET_TAKEN}: the same pair as trial {first.number}")
            raise BudgetTaken()
        queued = records.read_trial(mine)  # what prepare_confirm stored with the pair
        # The arm is a plain attribute of the pair, not a parameter: a categorical over today's arms
        # would refuse every study made before an arm was added. (Pairs queued by earlier versions
        # carry it as a fixed parameter.)
        name = queued.arm or mine.system_attrs["fixed_params"]["arm"]
        # A frozen pair (study.frozen) trains the baseline arm under its own label, fixed@ARM.
        arm = BASELINE_ARM if frozen.is_frozen(name) else name
        seed = trial.suggest_int("seed", *SEED_RANGE)
        if queued.source_trial is not None and queued.params is not None:
            source, params, forced = queued.source_trial, queued.params, queued.forced
        else:  # queued by an earlier version, without its source: this worker's best
            best = self.best[arm]
            source, params, forced = best.number, best.params, None
        s = self.settings
        records.write(trial, arm=name, seed=seed, params=params, source_trial=source, forced=forced)
        model, loss, train = space.apply(arm, params, s.model, s.loss, s.train)
        value = run_folds(
            trial,
            self.data,
            holdout_folds(self.data, self.split, s.study.folds, seed),
            TrialConfigs(model, loss, s.data, train),
            seed=seed,
            prune=False,  # the verdict never prunes
            label=f"confirm {name} s{seed}",
        )
        trial_notes.save(trial, trial_notes.confirm_note(records.read_trial(trial)))
        return value

    @property
    def sources(self) -> dict[str, int]:
        """Each arm's current best search trial number: the pairs that count."""
        return {arm: t.number for arm, t in self.best.items()}


def pair_of(t: FrozenTrial) -> tuple[str | None, int | None, int | None]:
    """(arm, seed, source trial) of a confirmation trial, queued, running or finished; a frozen
    pair's arm is its label (fixed@ARM), its source the learned arm's trial."""
    fixed = t.system_attrs.get("fixed_params") or {}
    r = records.read_trial(t)
    return r.arm or fixed.get("arm"), fixed.get("seed", r.seed), r.source_trial


def _check_searches(
    arm_studies: dict[str, optuna.Study], recorded: dict[str, records.ArmStudyRecord], allow_unfinished: bool
) -> set[str]:
    """The arms whose search is unfinished (budget not reached, or a trial running); without
    --unfinished the first of them is an error. Also refuses arms made with other shared settings."""
    first_arm, first = next(iter(recorded.items()))
    for arm, rec in recorded.items():
        mine, theirs = shared_settings(rec.score_settings), shared_settings(first.score_settings)
        for key in mine.keys() | theirs.keys():
            if mine.get(key) != theirs.get(key):
                raise InputError(
                    f"study {arm_studies[arm].study_name!r} was run with {key}={mine.get(key)!r} but "
                    f"{arm_studies[first_arm].study_name!r} with {theirs.get(key)!r}: the arms of one "
                    "study name cannot be compared"
                )
    unfinished = set()
    for arm, study in arm_studies.items():
        done, running = budget_counts(study)
        n = recorded[arm].n_trials or 0
        if done < n or running:
            unfinished.add(arm)
            if not allow_unfinished:
                raise InputError(
                    f"arm {arm}: {done} of {n} search trials finished, {running} running in "
                    f"{study.study_name!r}: let `run` finish, or pass --unfinished to confirm the best so far"
                )
    return unfinished


def confirm_parts(storage_url: str, name: str, only: int | None) -> list[tuple[int | None, str]]:
    """(outer fold, study name) of each part to confirm: the study itself with one held-out set
    (outer fold None), else every outer fold with a search in the storage (or `only`)."""
    storage = open_storage(storage_url, must_exist=True)
    try:
        existing = set(optuna.get_all_study_names(storage))
    finally:
        close(storage)
    if any(records.study_name(name, arm) in existing for arm in records.ARMS):
        if only is not None:
            raise InputError(f"--outer-fold {only}: study {name!r} has one held-out set, no outer folds")
        return [(None, name)]
    searched = [
        k
        for k in records.outer_folds_in(name, existing)
        if any(records.study_name(records.outer_name(name, k), arm) in existing for arm in records.ARMS)
    ]
    if only is not None:
        if only not in searched:
            raise InputError(
                f"--outer-fold {only}: no search of outer fold {only} ({records.outer_name(name, only)}-<arm>) "
                f"in this storage: run `cmi-study run --outer-fold {only}` first"
            )
        return [(only, records.outer_name(name, only))]
    if not searched:  # prepare_confirm says what is missing
        return [(None, name)]
    return [(k, records.outer_name(name, k)) for k in searched]


def prepare_confirm(
    storage_url: str,
    name: str,
    n_seeds: int | None,
    data_dir: str | None,
    command: str,
    unfinished: bool = False,
) -> tuple[optuna.Study, ConfirmObjective, Settings]:
    """Open the run's studies, write the confirmation study's record and queue the pairs of each
    arm's current best trial not yet done or queued (a pair that failed is queued again).

    Refused (nothing written) while an arm's search is unfinished or running, unless `unfinished`:
    then the best so far is confirmed and its pairs record forced=True. Pairs of an earlier best
    stay in the storage as history (records.current_pairs tells them apart); queued ones that no
    worker took yet are failed as superseded instead of trained."""
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
    recorded_arms = {arm: records.read_arm_study(s) for arm, s in arm_studies.items()}
    forced = _check_searches(arm_studies, recorded_arms, allow_unfinished=unfinished)
    first = next(iter(arm_studies.values()))
    recorded = recorded_arms[next(iter(arm_studies))]
    settings = Settings(**recorded.settings)
    # The precision the search resolved to, not this machine's "auto": the confirmation must train
    # what was searched (a CPU confirming a GPU's bf16 search would otherwise train in fp32).
    searched = recorded.score_settings.get("train.precision")
    if settings.train.precision == "auto" and searched in ("32-true", "bf16-mixed"):
        settings = settings.model_copy(
            update={"train": settings.train.model_copy(update={"precision": searched})}
        )
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
    close(storage)  # what was read is read; the heartbeat storage below is the one this worker keeps
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
    records.name_metric(confirm, records.CONFIRM)
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
    sources = {arm: t.number for arm, t in best.items()}
    have = set()
    for t in confirm.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    ):
        arm, seed, source = pair_of(t)
        if t.state == TrialState.WAITING and source != sources.get(records.source_arm(arm)):
            _supersede(confirm, t, sources.get(records.source_arm(arm)))
        else:
            have.add((arm, seed, source))
    for seed in seeds:
        for arm, trial in best.items():
            if (arm, seed, trial.number) not in have:
                attrs = records.trial_attrs(
                    arm=arm, source_trial=trial.number, params=trial.params, forced=arm in forced
                )
                confirm.enqueue_trial({"seed": seed}, user_attrs=attrs)
    return confirm, ConfirmObjective(settings, data, split, best), settings


def _supersede(confirm: optuna.Study, t: FrozenTrial, best_number: int | None) -> None:
    """A queued pair whose source trial is no longer its arm's best: failed, never trained."""
    storage = confirm._storage
    reason = f"{records.SUPERSEDED}: source trial #{records.read_trial(t).source_trial} is no longer the best"
    reason += f" (#{best_number} is)" if best_number is not None else ""
    for key, value in records.trial_attrs(fail_reason=reason).items():
        storage.set_trial_user_attr(t._trial_id, key, value)
    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trial_notes.save_finished(confirm, t._trial_id, trial_notes.fail_note(reason))


def queue_frozen(confirm: optuna.Study, sources: dict[str, int]) -> int:
    """Queue the frozen pairs (study.frozen) of every learned loss-level arm whose weights moved, once
    no pair is waiting or running (work_confirm calls it then): one per seed of the arm's current
    pairs, not yet queued, running or done. Returns how many were queued."""
    trials = confirm.get_trials(deepcopy=False)
    have = {
        pair_of(t) for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    }
    read = [(t.state, records.read_trial(t)) for t in trials]  # each record read once
    done = [r for state, r in read if state == TrialState.COMPLETE]
    runs: dict[str, list[records.TrialRecord]] = {}
    for r in records.current_pairs(done, sources)[0]:
        runs.setdefault(r.arm or "", []).append(r)
    queued = 0
    for arm, mine in runs.items():
        if not frozen.freezable(arm) or (frozen.moved(mine) or 0.0) < frozen.MOVED:
            continue
        name, source = frozen.label(arm), sources[arm]
        # Later seeds (`confirm --seeds`) re-train the configuration the first frozen pairs trained.
        earlier = [r.params for _, r in read if r.arm == name and r.source_trial == source]
        params = next((p for p in earlier if p), None) or frozen.frozen_params(mine)
        if params is None:
            continue
        for seed in sorted({r.seed for r in mine if r.seed is not None}):
            if (name, seed, source) not in have:
                attrs = records.trial_attrs(
                    arm=name, source_trial=source, params=params, forced=mine[0].forced
                )
                confirm.enqueue_trial({"seed": seed}, user_attrs=attrs)
                queued += 1
    return queued


def work_confirm(confirm: optuna.Study, objective: ConfirmObjective, st: StudySection) -> dict:
    """Take queued pairs until none is left or running (with ``st.freeze_learned``, then the frozen
    pairs of queue_frozen); return each arm's mean confirmed score over its current pairs (those of
    its current best trial)."""
    sources = objective.sources

    def count(*states) -> int:
        return len(confirm.get_trials(deepcopy=False, states=states))

    def current(*states) -> int:  # pairs, not trials: a pair queued twice trains once
        trials = confirm.get_trials(deepcopy=False, states=states)
        return len(
            {
                (arm, seed)
                for arm, seed, source in map(pair_of, trials)
                if sources.get(records.source_arm(arm)) == source
            }
        )

    # The frozen pairs come once the learned arms' runs are done: now, if they are, else in the loop.
    frozen_queued = not st.freeze_learned or not count(TrialState.WAITING, TrialState.RUNNING)
    if st.freeze_learned and frozen_queued:
        queue_frozen(confirm, sources)
    total = current(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    if not count(TrialState.WAITING, TrialState.RUNNING):
        print(f"nothing to do: {total} of {total} confirmation pairs finished; use --seeds to add more")
    # No bar when there is nothing to do; otherwise tqdm's own default, which TQDM_DISABLE=1 can
    # turn off (an explicit disable=False would override the environment).
    quiet = {} if count(TrialState.WAITING) else {"disable": True}
    with tqdm(total=total, desc="confirm", unit="pair", **quiet) as bar:
        while True:
            raise_if_stopping()  # a stopping signal whose exception was swallowed (cmi_model.stopping)
            fail_lost_trials(confirm, st.grace_period)  # a dead worker's pair: failed and re-queued
            if count(TrialState.WAITING):
                trial = run_one(confirm, objective)
                if trial.state == TrialState.FAIL and not records.is_budget_skip(trial):
                    r = records.read_trial(trial)
                    tqdm.write(f"confirm {r.arm} seed {r.seed} failed: {r.fail_reason}")
            elif count(TrialState.RUNNING):
                time.sleep(min(2.0, st.heartbeat_interval))  # others' pairs: wait in case one dies
            elif not frozen_queued:  # once a call: a frozen pair that fails is queued again by the next
                frozen_queued = True
                if queue_frozen(confirm, sources):
                    bar.total = current(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
            else:
                break
            bar.n = current(TrialState.COMPLETE)
            bar.refresh()
    done = [records.read_trial(t) for t in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    scores: dict[str, list[float]] = {}
    for r in records.current_pairs(done, sources)[0]:
        scores.setdefault(r.arm, []).extend(r.scores)
    if failed := [arm for arm in sources if arm not in scores]:
        failures = [
            r
            for t in confirm.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if not records.is_budget_skip(t) and (r := records.read_trial(t)).arm in failed
        ]
        last = failures[-1].fail_reason if failures else "no pair finished"
        raise NothingDone(f"every confirmation pair of {', '.join(failed)} failed (last: {last})")
    return {arm: {"n": len(v), "mean": float(np.mean(v))} for arm, v in scores.items()}

"""Run the arms (as one worker among any number) and the confirmation re-training."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState
from tqdm.auto import tqdm

from cmi_model.data import SequenceData, default_cache_dir, describe, load_dir
from cmi_model.dataset import FoldCache
from cmi_model.errors import Interrupted, NothingDone
from cmi_model.folds import inner_split, subject_folds
from cmi_model.stopping import raise_if_stopping, stops_deferred
from study import records
from study.arm_studies import (
    arm_record,
    check_joinable,
    check_layout,
    open_arm_study,
    part_name,
    settle_precision,
    stored_precision,
    study_split,
)
from study.objective import CVObjective, budget_counts, error_reason
from study.settings import Settings, StudySection
from study.workers import retrying, trial_notes
from study.workers.storage import fail_lost_trials, open_storage, requeue

MAX_CONSECUTIVE_FAILURES = 3  # an arm whose trials keep failing is broken, not unlucky
# Heartbeat helpers: stable in practice since 2.9.
warnings.filterwarnings("ignore", category=ExperimentalWarning)


# ----------------------------------------------------------------------------- data


def synthetic_dir(settings: Settings) -> Path:
    """The embedded data set, generated once per size and seed into the cache."""
    from cmi_model.synthetic import generate

    syn = settings.synthetic
    name = f"synthetic-{'full' if syn.full_size else f's{syn.subjects}'}-seed{syn.seed}"
    folder = default_cache_dir() / name
    if not (folder / "train.csv").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        try:
            generate(tmp, n_subjects=syn.subjects, full_size=syn.full_size, seed=syn.seed)
            with contextlib.suppress(OSError):  # another worker finished first: use theirs
                os.replace(tmp, folder)
        finally:  # whatever stopped it (Ctrl-C, a full disk): no partial data set left in the cache
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_study_data(settings: Settings, data_dir: str | None) -> tuple[SequenceData, records.DataInfo]:
    folder = Path(data_dir) if data_dir else synthetic_dir(settings)
    data = load_dir(folder)
    desc = describe(data)
    info = records.DataInfo(
        source=str(folder.resolve()) if data_dir else "synthetic",
        n_sequences=desc["n_sequences"],
        n_subjects=desc["n_subjects"],
        n_rows=desc["n_rows"],
        fingerprint=desc["fingerprint"],
        synthetic=None if data_dir else settings.synthetic.model_dump(),
    )
    return data, info


def run_arms(
    settings: Settings,
    storage_url: str,
    name: str,
    data_dir: str | None,
    command: str,
    on_ready=None,
    only: tuple[str, ...] | None = None,
    replay: bool = False,
    outer_fold: int | None = None,
) -> dict:
    """Work on the arms (of outer fold `outer_fold`, with outer folds) until each has n_trials complete + pruned trials (across all workers);
    return their studies.

    only: the arms this worker owns and runs alone, trial after trial with the arm's seeded
    sampler, so the same command gives the same trials. Without it the worker shares every
    arm with any other worker (more workers than arms).

    replay: the studies were just created by the `run` that started this worker and handed it
    its arms (`only`), so joining them it seeds their samplers with --seed. Any other worker
    joining a study may not be alone on it (separately started workers, as on many machines,
    all join the same studies): it gets a seed of its own, or all of them would draw the same
    trials.
    """
    data, info = load_study_data(settings, data_dir)
    st = settings.study
    # Before the storage is opened: impossible splits (more folds than subjects) must not leave
    # an empty database behind.
    split = study_split(data, st, outer_fold)
    base, name = name, part_name(name, st, outer_fold)
    folds = subject_folds(data, st.folds, st.seed, split.search)
    if settings.train.early_stopping == "inner":  # each fold's stop subjects exist, or no trial starts
        for train_idx, _ in folds:
            inner_split(data, train_idx, settings.train.inner_fraction, st.seed)
    storage = open_storage(
        storage_url,
        heartbeat_interval=st.heartbeat_interval,
        grace_period=st.grace_period,
        max_retry=st.max_retry,
    )
    settings, said = settle_precision(settings, stored_precision(storage, base))
    if said:
        print(said)
    wants = {arm: arm_record(arm, settings, info, split, command, outer_fold) for arm in st.arms}
    check_layout(storage, base, st, wants)
    check_joinable(storage, name, wants)
    studies = {
        arm: open_arm_study(storage, name, arm, settings, info, split, command, replay, outer_fold)
        for arm in st.arms
    }
    if all(budget_counts(study)[0] >= st.n_trials for study in studies.values()):
        print(
            f"nothing to do: {st.n_trials} of {st.n_trials} trials finished in every arm; "
            "use a new --study-name (or a larger --n-trials) to go on"
        )
        return studies
    if on_ready is not None:
        on_ready()
    mine = [arm for arm in st.arms if only is None or arm in only]
    cache = FoldCache()  # every arm and trial of this worker trains the same folds: each prepared once
    jobs = {arm: (studies[arm], CVObjective(arm, settings, data, folds, st.n_trials, cache)) for arm in mine}
    work(jobs, st, desc="trials")
    return studies


def work(jobs: dict, st: StudySection, desc: str) -> None:
    """Run trials of each job (study, objective) until st.n_trials of it are complete or pruned,
    across all workers; stops a job whose trials keep failing."""
    n_trials = st.n_trials
    failures = dict.fromkeys(jobs, 0)
    broken: dict[str, str] = {}
    with tqdm(total=n_trials * len(jobs), desc=desc, unit="trial") as bar:
        while True:
            progressed, finished, counted = False, 0, 0
            for key, (study, objective) in jobs.items():
                raise_if_stopping()  # a stopping signal whose exception was swallowed (cmi_model.stopping)
                fail_lost_trials(study, st.grace_period)  # a dead worker's trial: failed and re-queued
                done, running = budget_counts(study)
                counted += min(n_trials, done)
                if done >= n_trials or key in broken:
                    finished += 1
                    continue
                if done + running >= n_trials:
                    continue  # other workers hold the rest of the budget; wait in case one dies
                trial = run_one(study, objective)
                progressed = True
                counted += trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
                if trial.state != TrialState.FAIL:
                    failures[key] = 0
                    continue
                if records.is_budget_skip(trial):
                    continue
                reason = records.read_trial(trial).fail_reason or "unknown error"
                failures[key] += 1
                tqdm.write(f"{key}: trial {trial.number} failed: {reason}")
                if failures[key] >= MAX_CONSECUTIVE_FAILURES:
                    broken[key] = reason
                    tqdm.write(f"{key}: {failures[key]} trials in a row failed; giving up on it")
            bar.n = counted  # as counted in this pass (one storage read per arm, not two)
            bar.refresh()
            if finished == len(jobs):
                break
            if not progressed:
                time.sleep(min(2.0, st.heartbeat_interval))
    if broken:
        raise NothingDone("; ".join(f"{k} stopped after repeated failures: {r}" for k, r in broken.items()))


class _SteppedAside(BaseException):
    """This worker's trial was finished by another worker meanwhile: it was paused (SIGSTOP, a
    suspended VM) past the heartbeats' grace period, so the other failed it and queued it again.
    Nothing of it may be written now; the worker takes the next trial. Not an Exception, so that
    neither Optuna's `catch` nor ours records it (Optuna would try to tell a finished trial)."""


def _finished_elsewhere(trial: optuna.Trial) -> bool:
    return trial.study._storage.get_trial(trial._trial_id).state.is_finished()


def _step_aside(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    tqdm.write(
        f"{study.study_name}: trial {number} was failed and queued again by another worker while "
        "this one was paused: stepping aside"
    )
    return study.get_trials(deepcopy=True)[number]


def run_one(study: optuna.Study, objective) -> optuna.trial.FrozenTrial:
    """One trial through study.optimize (the only way Optuna runs heartbeats). A trial
    interrupted by Ctrl-C is queued again like a lost worker's, so a rerun does it; a trial
    another worker failed while this one was paused is left to them (returned as it stands)."""
    ran: list = []  # optimize keeps no handle on its trial: a callback hands it over
    numbers: list[int] = []

    def tracked(trial: optuna.Trial) -> float:
        numbers.append(trial.number)
        try:
            with stops_deferred(False):  # a stop now interrupts the training itself
                raise_if_stopping()  # one that came while Optuna was taking this trial
                value = objective(trial)
            if _finished_elsewhere(trial):  # paused after its last write: Optuna could not tell it
                raise _SteppedAside
            return value
        except Interrupted as e:
            # Ctrl-C or SIGTERM (cli.main) anywhere in the trial, past Lightning now: as a plain
            # KeyboardInterrupt Optuna marks the trial FAIL at once (instead of leaving it RUNNING)
            # and re-raises it, and below it is queued again; the CLI exits 130 or 143.
            records.write(trial, fail_reason=e.reason)
            trial_notes.save(trial, trial_notes.fail_note(e.reason))
            raise KeyboardInterrupt from None
        except optuna.TrialPruned:
            raise
        except Exception as e:
            if (stop := retrying.broken(e)) is not None:  # the storage itself failed: stop, one line
                raise stop from None
            if isinstance(e, optuna.exceptions.UpdateFinishedTrialError) or _finished_elsewhere(trial):
                raise _SteppedAside from None
            # Every failed trial says why: in its record (the report's) and as its note (the
            # dashboard's). The objective records its own reasons; anything else, here.
            reason = trial.user_attrs.get("fail_reason")
            if not isinstance(reason, str):
                reason = error_reason(e)
                retrying.or_broken(records.write, trial, fail_reason=reason)
            retrying.or_broken(trial_notes.save, trial, trial_notes.fail_note(reason))
            raise

    try:
        with stops_deferred():  # not while Optuna takes or hands back the trial (cmi_model.stopping)
            study.optimize(
                tracked,
                n_trials=1,
                catch=(Exception,),
                gc_after_trial=True,
                callbacks=[lambda _study, t: ran.append(t)],
            )
    except KeyboardInterrupt:
        if numbers:
            interrupted = study.get_trials(deepcopy=True)[numbers[-1]]
            if interrupted.state == TrialState.FAIL:
                requeue(study, interrupted)
        raise
    except _SteppedAside:
        return _step_aside(study, numbers[-1])
    except Exception as e:
        # Only Optuna's tell lets an Exception out of optimize (catch takes the objective's): a
        # pause between the objective's end and the tell ends in "Cannot tell a FAIL trial" (and
        # Optuna's own "Should not reach" after it).
        if (stop := retrying.broken(e)) is not None:
            raise stop from None
        if numbers and study.get_trials(deepcopy=False)[numbers[-1]].state.is_finished():
            return _step_aside(study, numbers[-1])
        raise
    raise_if_stopping()  # a stop that came while the finished trial was handed back
    return ran[-1]


def summarize(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = {
        s.name.lower(): sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    best = records.best_trial(trials)
    return states | {"best_value": best.value if best else None, "best_params": best.params if best else None}

"""Run the arms (as one worker among any number) and the confirmation re-training."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState
from tqdm.auto import tqdm

from cmi_model.data import SequenceData, default_cache_dir, describe, load_dir
from cmi_model.errors import InputError
from cmi_model.folds import subject_folds
from study import records, space
from study.objective import CVObjective, TrialConfigs, budget_counts, run_folds
from study.settings import Settings
from study.storage import open_storage

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
        generate(tmp, n_subjects=syn.subjects, full_size=syn.full_size, seed=syn.seed)
        try:
            os.replace(tmp, folder)
        except OSError:  # another worker finished first: use theirs
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


# ----------------------------------------------------------------------------- studies


def _sampler(settings: Settings, joining: bool) -> optuna.samplers.BaseSampler:
    seed = settings.study.seed
    if joining:
        # A worker joining a running study must not replay the first worker's random draws.
        seed = (seed * 1_000_003 + os.getpid() + time.time_ns()) % (2**31)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(settings: Settings) -> optuna.pruners.BasePruner:
    kind = settings.study.pruner
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


# Settings that change what a score means: a worker may not join a study made with others.
_MUST_MATCH = ("n_folds", "seed", "epochs", "preset")


def arm_record(arm: str, settings: Settings, data_info: records.DataInfo, command: str):
    return records.ArmStudyRecord(
        arm=arm,
        search_space=space.describe(arm),
        n_folds=settings.study.folds,
        seed=settings.study.seed,
        n_trials=settings.study.n_trials,
        epochs=settings.train.max_epochs,
        preset=settings.preset,
        data=data_info,
        versions=records.package_versions(),
        command=command,
        settings=json.loads(settings.model_dump_json()),
    )


def open_arm_study(
    storage, name: str, arm: str, settings: Settings, data_info: records.DataInfo, command: str
) -> optuna.Study:
    study_name = records.study_name(name, arm)
    want = arm_record(arm, settings, data_info, command)
    # Exactly one worker creates the study; it alone seeds its sampler with --seed, writes the
    # attrs and queues the baseline. Workers started together must not all see a new study
    # (same random draws, a baseline per worker, checks against half-written attrs).
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=_sampler(settings, joining=False),
            pruner=_pruner(settings),
        )
        have = None
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=_sampler(settings, joining=True),
            pruner=_pruner(settings),
        )
        have = _creators_record(study)
    if have is None:
        records.write_study(study, want)
        study.enqueue_trial(space.baseline(arm, settings.train, settings.model), skip_if_exists=True)
        return study
    for k in _MUST_MATCH:
        if getattr(have, k) != getattr(want, k):
            raise InputError(
                f"study {study_name!r} was created with {k}={getattr(have, k)!r}, this run asks for "
                f"{getattr(want, k)!r}: use the same options or another --study-name"
            )
    if have.data.fingerprint != data_info.fingerprint:
        raise InputError(
            f"study {study_name!r} was run on other data (fingerprint differs): use another --study-name"
        )
    if settings.study.n_trials > (have.n_trials or 0):
        # A later run may extend the budget.
        records.write_study(study, have.model_copy(update={"n_trials": settings.study.n_trials}))
    return study


def _creators_record(study: optuna.Study, timeout: float = 60.0) -> records.ArmStudyRecord | None:
    """The study's record once its creator has written it (attributes are written one by one,
    right after creating the study); None if the creator died before writing it."""
    deadline = time.monotonic() + timeout
    while True:
        have = study.user_attrs  # read from the storage on every access
        if set(records.ArmStudyRecord.model_fields) <= set(have):
            return records.read_arm_study(study)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def run_arms(
    settings: Settings, storage_url: str, name: str, data_dir: str | None, command: str, on_ready=None
) -> dict:
    """Work on every arm until each has n_trials complete + pruned trials (across all workers)."""
    data, info = load_study_data(settings, data_dir)
    st = settings.study
    # Before the storage is opened: impossible folds (more than subjects) must not leave an
    # empty database behind.
    folds = subject_folds(data, st.folds, st.seed)
    storage = open_storage(
        storage_url,
        heartbeat_interval=st.heartbeat_interval,
        grace_period=st.grace_period,
        max_retry=st.max_retry,
    )
    studies = {arm: open_arm_study(storage, name, arm, settings, info, command) for arm in st.arms}
    objectives = {arm: CVObjective(arm, settings, data, folds, st.n_trials) for arm in st.arms}
    if on_ready is not None:
        on_ready()
    failures = dict.fromkeys(st.arms, 0)
    broken: dict[str, str] = {}
    total = st.n_trials * len(st.arms)
    with tqdm(total=total, desc="trials", unit="trial") as bar:
        while True:
            progressed, finished = False, 0
            for arm in st.arms:
                study = studies[arm]
                fail_stale_trials(study)  # a dead worker's trial: failed and re-queued
                done, running = budget_counts(study)
                if done >= st.n_trials or arm in broken:
                    finished += 1
                    continue
                if done + running >= st.n_trials:
                    continue  # other workers hold the rest of the budget; wait in case one dies
                ran: list = []  # optimize keeps no handle on its trial: a callback hands it over
                study.optimize(
                    objectives[arm],
                    n_trials=1,
                    catch=(Exception,),
                    gc_after_trial=True,
                    callbacks=[lambda _study, t, ran=ran: ran.append(t)],
                )
                progressed = True
                trial = ran[-1]
                if trial.state != TrialState.FAIL:
                    failures[arm] = 0
                    continue
                if records.is_budget_skip(trial):
                    continue
                reason = records.read_trial(trial).fail_reason or "unknown error"
                failures[arm] += 1
                tqdm.write(f"{arm}: trial {trial.number} failed: {reason}")
                if failures[arm] >= MAX_CONSECUTIVE_FAILURES:
                    broken[arm] = reason
                    tqdm.write(f"{arm}: {failures[arm]} trials in a row failed; giving up on this arm")
            bar.n = sum(min(st.n_trials, budget_counts(s)[0]) for s in studies.values())
            bar.refresh()
            if finished == len(st.arms):
                break
            if not progressed:
                time.sleep(min(2.0, st.heartbeat_interval))
    if broken:
        raise RuntimeError(
            "; ".join(f"arm {a} stopped after repeated failures: {r}" for a, r in broken.items())
        )
    return {arm: summarize(s) for arm, s in studies.items()}


def summarize(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = {
        s.name.lower(): sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    best = records.best_trial(trials)
    return states | {"best_value": best.value if best else None, "best_params": best.params if best else None}


# ----------------------------------------------------------------------------- confirmation


def run_confirm(storage_url: str, name: str, n_seeds: int | None, data_dir: str | None, command: str) -> dict:
    """Re-train each arm's best parameters on n_seeds fresh fold splits (same splits across arms);
    n_seeds None: the number the study's preset says."""
    storage = open_storage(storage_url, must_exist=True)  # confirm reads a run: never a new database
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
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
    data, info = load_study_data(settings, data_dir)
    if recorded.data.fingerprint != info.fingerprint:
        raise InputError(
            f"the data differs from the data study {first.study_name!r} was run on "
            f"(source {recorded.data.source!r}): pass the same --data"
        )
    best = {}
    for arm, study in arm_studies.items():
        best[arm] = records.best_trial(study.get_trials(deepcopy=False))
        if best[arm] is None:
            raise InputError(f"study {study.study_name!r} has no complete trial yet: nothing to confirm")
    confirm = optuna.create_study(
        storage=storage,
        study_name=records.study_name(name, records.CONFIRM),
        direction="maximize",
        load_if_exists=True,
    )
    n_seeds = n_seeds or settings.study.confirm_seeds
    seeds = [settings.study.seed + 1 + r for r in range(n_seeds)]  # fresh: never the search's split seed
    earlier = records.read_confirm_study(confirm).seeds
    records.write_study(
        confirm,
        records.ConfirmStudyRecord(
            arms=list(best),
            seeds=sorted(set(earlier) | set(seeds)),
            n_folds=settings.study.folds,
            data=info,
            command=command,
            versions=records.package_versions(),
        ),
    )
    # Only COMPLETE counts: confirm runs ask/tell, which has no heartbeat, so a RUNNING trial may be
    # a killed process's. A rerun redoes it; the report keeps the latest of duplicate (arm, seed) trials.
    done = {
        (r.arm, r.seed)
        for r in map(records.read_trial, confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    }
    todo = [(seed, arm) for seed in seeds for arm in best if (arm, seed) not in done]
    for seed, arm in tqdm(todo, desc="confirm", unit="run"):
        folds = subject_folds(data, settings.study.folds, seed)
        params = best[arm].params
        model, loss, train = space.apply(arm, params, settings.model, settings.loss, settings.train)
        trial = confirm.ask()
        records.write(trial, arm=arm, seed=seed, params=params, source_trial=best[arm].number)
        try:
            value = run_folds(
                trial,
                data,
                folds,
                TrialConfigs(model, loss, settings.data, train),
                seed=seed,
                prune=False,
                label=f"confirm {arm} s{seed}",
            )
        except Exception as e:
            confirm.tell(trial, state=TrialState.FAIL)
            tqdm.write(f"confirm {arm} seed {seed} failed: {type(e).__name__}: {e}")
            continue
        except KeyboardInterrupt:
            confirm.tell(trial, state=TrialState.FAIL)
            raise
        confirm.tell(trial, value)
    scores: dict[str, list[float]] = {}
    for t in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        r = records.read_trial(t)
        scores.setdefault(r.arm, []).extend(r.scores)
    return {arm: {"n": len(v), "mean": float(np.mean(v))} for arm, v in scores.items()}

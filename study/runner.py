"""Run the arms (as one worker among any number) and the confirmation re-training."""

from __future__ import annotations

import contextlib
import json
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
from cmi_model.errors import InputError, Interrupted, NothingDone
from cmi_model.folds import SubjectSplit, inner_split, outer_split, split_subjects, subject_folds
from cmi_model.stopping import raise_if_stopping, stops_deferred
from cmi_model.train import auto_precision, resolve_accelerator
from study import records, space
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


# ----------------------------------------------------------------------------- studies


def study_split(data: SequenceData, st: StudySection, outer_fold: int | None) -> SubjectSplit:
    """The search pool and the held-out subjects: one held-out set (outer_folds 1), or outer fold k's."""
    if st.outer_folds == 1:
        if outer_fold is not None:
            raise InputError(
                f"--outer-fold {outer_fold}: this study has one held-out set; pass --outer-folds K "
                "(2 or more) to nest the search in outer folds"
            )
        return split_subjects(data, st.holdout, st.folds, st.seed)
    if outer_fold is None:
        raise ValueError(f"with {st.outer_folds} outer folds, say which one (1..{st.outer_folds})")
    return outer_split(data, st.outer_folds, outer_fold, st.folds, st.seed)


def part_name(name: str, st: StudySection, outer_fold: int | None) -> str:
    """The study name of one outer fold's studies (the name itself with one held-out set)."""
    if st.outer_folds == 1:
        return name
    if outer_fold is None:
        raise ValueError(f"with {st.outer_folds} outer folds, say which one (1..{st.outer_folds})")
    return records.outer_name(name, outer_fold)


def check_layout(storage, name: str, st: StudySection, wants: dict[str, records.ArmStudyRecord]) -> None:
    """A study name holds one design: one held-out set (NAME-ARM) or outer folds (NAME-outerK-ARM),
    never both (confirm and report would read one and leave the other's work unseen); and every
    outer fold of it shares the settings that make its scores comparable (all but the outer fold
    itself and the arm's search space)."""
    existing = set(optuna.get_all_study_names(storage))
    single = sorted(records.study_name(name, p) for p in (*records.ARMS, records.CONFIRM))
    single = [s for s in single if s in existing]
    outer = records.outer_folds_in(name, existing)
    if st.outer_folds > 1 and single:
        raise InputError(
            f"study name {name!r} already holds a run with one held-out set ({', '.join(single)}): "
            f"{st.outer_folds} outer folds go under another --study-name"
        )
    if st.outer_folds == 1 and outer:
        raise InputError(
            f"study name {name!r} already holds a run in outer folds ({records.outer_name(name, outer[0])}-…): "
            "pass the same --outer-folds, or use another --study-name"
        )
    strip = lambda flat: {k: v for k, v in shared_settings(flat).items() if k != "study.outer_fold"}  # noqa: E731
    for k in outer:
        for arm in records.ARMS:
            study_name = records.study_name(records.outer_name(name, k), arm)
            if study_name not in existing:
                continue
            study = optuna.load_study(study_name=study_name, storage=storage)
            if not records.has_arm_record(study):
                continue  # being created, or not ours: the arm's own check says so
            have = strip(records.read_arm_study(study).score_settings)
            for want in wants.values():
                if found := _differing(have, strip(want.score_settings)):
                    key, old, value = found
                    raise InputError(
                        f"study {study_name!r}, outer fold {k} of --study-name {name}, was run with "
                        f"{key}={old!r}, this run asks for {value!r}: every outer fold shares its "
                        "settings; use the same options or another --study-name"
                    )


def stored_precision(storage, name: str) -> str | None:
    """The precision the studies of study name `name` (any arm, any outer fold) trained in, as
    their creator resolved it; None before the first of them exists."""
    existing = set(optuna.get_all_study_names(storage))
    parts = [name, *(records.outer_name(name, k) for k in records.outer_folds_in(name, existing))]
    for part in parts:
        for arm in records.ARMS:
            study_name = records.study_name(part, arm)
            if study_name in existing:
                study = optuna.load_study(study_name=study_name, storage=storage)
                if records.has_arm_record(study):
                    return records.read_arm_study(study).score_settings.get("train.precision")
    return None


def settle_precision(settings: Settings, stored: str | None) -> tuple[Settings, str | None]:
    """`precision = "auto"` made concrete for this run: what the study's studies already train in,
    whatever this machine would pick (bf16 and fp32 scores are not comparable, and a CPU without
    bf16 units joining a bf16 study trains bf16, slowly, rather than be refused); else this
    machine's choice (cmi_model.train.auto_precision). Also the line saying so: where the choice is
    not plain fp32 on a CPU, or was adopted; None else."""
    train = settings.train
    accelerator, mine = resolve_accelerator(train.accelerator, train.precision, settings.model)
    if train.precision != "auto":
        precision, why = mine, "asked for"
    elif stored in ("32-true", "bf16-mixed") and stored != mine:
        precision, why = stored, f"as the study's earlier workers trained (this machine picks {mine})"
    else:
        precision, why = mine, auto_precision(accelerator == "gpu", settings.model)[1]
    settled = settings.model_copy(update={"train": train.model_copy(update={"precision": precision})})
    plain = accelerator == "cpu" and precision == mine == "32-true"
    return settled, None if plain else f"precision {precision}: {why}"


def outer_fold_list(st: StudySection, only: int | None) -> list[int | None]:
    """The outer folds a command works on: `only`, or all of them (None: one held-out set)."""
    if st.outer_folds == 1 and only is None:
        return [None]
    return [only] if only is not None else list(range(1, st.outer_folds + 1))


def _sampler(settings: Settings, shared: bool, outer_fold: int | None = None) -> optuna.samplers.BaseSampler:
    """The arm's sampler seeded with --seed, so one worker running an arm's trials in order
    draws the same trials every time; a worker sharing an arm with others (shared) must not
    replay their draws, and gets a seed of its own. Each outer fold's search draws with a seed
    of its own: how much the pick depends on the search's luck is part of what nesting measures."""
    seed = settings.study.seed
    if outer_fold is not None:
        seed = (seed + 1_000_003 * outer_fold) % (2**31)
    if shared:
        seed = (seed * 1_000_003 + os.getpid() + time.time_ns()) % (2**31)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(kind: str) -> optuna.pruners.BasePruner:
    """The search's pruner by its settings name; fold k's score is reported as step k
    (benchmarks/bench_pruners.py compares them on the same budget and sampler seeds)."""
    if kind == "percentile":
        # The default: from the 3rd trial on, a trial whose score at fold k is not in the top
        # quarter of the complete trials' scores at fold k stops there.
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=0)
    if kind == "median":
        # The same with the top half kept.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if kind == "wilcoxon":
        # Exact one-sided test against the best trial's folds: its smallest p with n folds is
        # 1/2^n, so at p 0.1 it cannot prune before the 4th fold (never with 3 folds).
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()


def score_settings(
    arm: str, settings: Settings, data_info: records.DataInfo, outer_fold: int | None = None
) -> dict:
    """Every setting that changes what an arm's score means, flat ("section.field" → value): the
    resolved model, loss, data and train configs, the folds, split, pruner, the arm's search
    space and the data's content. A worker whose settings differ may not join the study. With
    outer folds, their number and this study's outer fold replace the hold-out share (a study
    made with one held-out set keeps exactly the keys it was made with)."""
    flat = {"data_files.fingerprint": data_info.fingerprint}
    for section in ("model", "loss", "data", "train"):
        for key, value in getattr(settings, section).model_dump(mode="json").items():
            flat[f"{section}.{key}"] = value
    # The arm sets the weighting (space.apply); the base config's value is no setting of a score
    # (and was "none" in studies made when the fixed scheme had that name).
    del flat["loss.auto_weighting"]
    # As resolved (settle_precision): bf16 and fp32 scores are not comparable.
    train = settings.train
    flat["train.precision"] = resolve_accelerator(train.accelerator, train.precision, settings.model)[1]
    st = settings.study
    for key in ("folds", "seed", "holdout", "pruner"):
        flat[f"study.{key}"] = getattr(st, key)
    if st.outer_folds > 1:
        del flat["study.holdout"]
        flat |= {"study.outer_folds": st.outer_folds, "study.outer_fold": outer_fold}
    flat |= {f"search_space.{p}": d for p, d in space.describe(arm).items()}
    return flat


def _differing(have: dict, want: dict) -> tuple[str, object, object] | None:
    """(key, stored value, asked value) of the first setting `want` asks for otherwise than `have`."""
    return next(((k, have.get(k), v) for k, v in want.items() if have.get(k) != v), None)


def _refuse_other_settings(
    study_name: str, have: records.ArmStudyRecord, want: records.ArmStudyRecord
) -> None:
    if found := _differing(have.score_settings, want.score_settings):
        key, old, value = found
        raise InputError(
            f"study {study_name!r} was created with {key}={old!r}, this run asks for {value!r}: "
            "use the same options or another --study-name"
        )


def shared_settings(score_settings: dict) -> dict:
    """The score settings every arm of one study name shares: all but the arm's own search space
    (the arms' scores are compared, so they must mean the same thing)."""
    return {
        k: v
        for k, v in score_settings.items()
        if not k.startswith("search_space.") and k != "loss.auto_weighting"  # (see score_settings)
    }


def check_joinable(storage, name: str, wants: dict[str, records.ArmStudyRecord]) -> None:
    """Before anything is created: every arm study that exists must have been made with the
    same score settings, and every other arm of the study name with the same shared settings
    (one arm refused must not leave another arm's study behind)."""
    existing = set(optuna.get_all_study_names(storage))
    haves = {}
    for arm in records.ARMS:
        study_name = records.study_name(name, arm)
        if study_name in existing:
            study = optuna.load_study(study_name=study_name, storage=storage)
            if study.get_trials(deepcopy=False) and not records.has_arm_record(study):
                # Ours write their record before their first trial: trials without one are someone else's.
                raise InputError(
                    f"study {study_name!r} exists in this storage but was not made by cmi-study (its trials "
                    "carry no cmi-study record): it is left untouched; use another --study-name"
                )
            have = _creators_record(study)
            if have is not None:
                haves[study_name] = have
    for arm, want in wants.items():  # the arm itself first: its own study names the setting
        study_name = records.study_name(name, arm)
        if study_name in haves:
            _refuse_other_settings(study_name, haves[study_name], want)
    for study_name, have in haves.items():
        for arm, want in wants.items():
            if found := _differing(
                shared_settings(have.score_settings), shared_settings(want.score_settings)
            ):
                key, old, value = found
                raise InputError(
                    f"study {study_name!r}, an arm of --study-name {name}, was created with "
                    f"{key}={old!r}, this run asks for {value!r} (arm {arm}): every arm "
                    "of a study name shares its settings; use the same options or another --study-name"
                )


def arm_record(
    arm: str,
    settings: Settings,
    data_info: records.DataInfo,
    split: SubjectSplit,
    command: str,
    outer_fold: int | None = None,
) -> records.ArmStudyRecord:
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
        search_subjects=list(split.search),
        holdout_subjects=list(split.holdout),
        score_settings=score_settings(arm, settings, data_info, outer_fold),
    )


def open_arm_study(
    storage,
    name: str,
    arm: str,
    settings: Settings,
    data_info: records.DataInfo,
    split: SubjectSplit,
    command: str,
    owner: bool = False,
    outer_fold: int | None = None,
) -> optuna.Study:
    """Create the arm's study (or join it); `owner`: this worker alone runs the arm's trials.
    `name` is already the outer fold's (part_name)."""
    study_name = records.study_name(name, arm)
    want = arm_record(arm, settings, data_info, split, command, outer_fold)
    # Exactly one worker creates the study; it alone seeds its sampler with --seed, writes the
    # attrs and queues the baseline. Workers started together must not all see a new study
    # (same random draws, a baseline per worker, checks against half-written attrs).
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=_sampler(settings, shared=False, outer_fold=outer_fold),
            pruner=make_pruner(settings.study.pruner),
        )
        have = None
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=_sampler(settings, shared=not owner, outer_fold=outer_fold),
            pruner=make_pruner(settings.study.pruner),
        )
        have = _creators_record(study)
    if have is None:
        records.write_study(study, want)
        records.name_metric(study, arm)
        study.enqueue_trial(space.baseline(arm, settings.train, settings.model), skip_if_exists=True)
        return study
    _refuse_other_settings(study_name, have, want)
    records.name_metric(study, arm)  # a study made before its value was named gets the name too
    if settings.study.n_trials > (have.n_trials or 0):
        # A later run may extend the budget.
        records.write_study(study, have.model_copy(update={"n_trials": settings.study.n_trials}))
    return study


def _creators_record(study: optuna.Study, timeout: float = 60.0) -> records.ArmStudyRecord | None:
    """The study's record once its creator has written it (attributes are written one by one,
    right after creating the study); None if the creator died before writing it."""
    deadline = time.monotonic() + timeout
    while True:
        if records.has_arm_record(study):  # read from the storage on every call
            return records.read_arm_study(study)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


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

"""The arm studies of a study name (NAME-ARM, or NAME-outerK-ARM with outer folds): the subjects
they hold out, their layout, the settings that make their scores comparable (with the precision
resolved once, where the first study is created, and read back by every later worker), who may
join them, and opening one."""

from __future__ import annotations

import json
import os
import time

import optuna

from cmi_model.data import SequenceData
from cmi_model.errors import InputError
from cmi_model.folds import SubjectSplit, outer_split, split_subjects
from cmi_model.train import auto_precision, resolve_accelerator
from study import records, space
from study.settings import Settings, StudySection


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
    # bf16 and fp32 scores are not comparable: the precision settle_precision resolved, once, for
    # the whole study (stored here, read back by every later worker and by the confirmation).
    if settings.train.precision == "auto":
        raise ValueError("score_settings takes settings whose precision is settled (settle_precision)")
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

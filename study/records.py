"""The storage format: what a study and a trial carry as Optuna user attributes.

Written and read here only. The objective and confirm write trials through :func:`write`,
study.arm_studies writes studies through :func:`write_study`; the report, the runner and the tests
read through :func:`read_trial` / :func:`read_arm_study` / :func:`read_confirm_study`.

One field is one user attribute, so optuna-dashboard shows each on its own. A trial's
folds are stored column-wise: field ``f`` of :class:`FoldRecord` is the attribute
``fold_f``, a list with one value per finished fold (a pruned or failed trial keeps the
folds it finished). Adding a per-fold metric is one field of :class:`FoldRecord`.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict, ValidationError

from cmi_model.weighting import ARMS, BASELINE_ARM

__all__ = ["ARMS", "CONFIRM", "BUDGET_TAKEN", "SUPERSEDED"]

CONFIRM = "confirm"  # suffix of the confirmation study: NAME-confirm
BUDGET_TAKEN = "BudgetTaken"  # fail_reason prefix of a trial that stepped aside (see objective)
# fail_reason prefix of a queued confirmation pair whose source trial stopped being its arm's best
# before any worker took it (see confirm.prepare_confirm); it is never trained.
SUPERSEDED = "Superseded"
# TrialRecord fields a confirmation pair is queued with (kept when a lost worker's pair is re-queued).
QUEUED = ("source_trial", "params", "forced", "arm")
# A confirmation "arm" that is the baseline arm at another arm's learned weights (study.frozen):
# FROZEN_PREFIX + the learned arm, e.g. "fixed@uncertainty".
FROZEN_PREFIX = f"{BASELINE_ARM}@"


def source_arm(arm: str | None) -> str | None:
    """The arm whose search trial a confirmation arm re-trains: a frozen label's learned arm, else itself."""
    return arm[len(FROZEN_PREFIX) :] if arm and arm.startswith(FROZEN_PREFIX) else arm


# What a trial's value is, as optuna-dashboard labels it (study.set_metric_names): the competition
# score (binary F1 + 9-class macro F1) / 2, averaged over the trial's folds.
SEARCH_METRIC = "CV score: mean over folds of (binary F1 + 9-class macro F1) / 2"
CONFIRM_METRIC = "held-out score: mean over folds of (binary F1 + 9-class macro F1) / 2"
PACKAGES = ("torch", "pytorch-lightning", "optuna", "optuna-dashboard", "numpy", "pandas")
PACKAGES += ("scipy", "scikit-learn", "plotly", "torchjd")


class RecordError(ValueError):
    """A study or trial whose attributes do not follow this format (hand-edited, foreign)."""


class _Record(BaseModel):
    # Reading ignores attributes of other tools (optuna-dashboard notes, user tags).
    model_config = ConfigDict(extra="ignore", frozen=True)


# ----------------------------------------------------------------------------- names


def study_name(name: str, part: str) -> str:
    """``NAME-ARM`` for an arm's search, ``NAME-confirm`` for the confirmation."""
    return f"{name}-{part}"


def outer_name(name: str, k: int) -> str:
    """``NAME-outerK``: the study name of outer fold k of a nested run (its studies are
    ``NAME-outerK-ARM`` and ``NAME-outerK-confirm``)."""
    return f"{name}-outer{k}"


def outer_folds_in(name: str, existing: Iterable[str]) -> list[int]:
    """The outer folds k with at least one ``NAME-outerK-ARM`` or ``NAME-outerK-confirm`` study."""
    parts = "|".join(re.escape(p) for p in (*ARMS, CONFIRM))
    pattern = re.compile(rf"{re.escape(name)}-outer([1-9][0-9]*)-(?:{parts})")
    return sorted({int(m.group(1)) for s in existing if (m := pattern.fullmatch(s))})


def base_name(name: str, existing: set[str]) -> str:
    """The study name a user meant: ``NAME`` itself, or ``NAME`` of a ``NAME-ARM`` they typed."""
    parts = (*ARMS, CONFIRM)
    if any(study_name(name, p) in existing for p in parts):
        return name
    for p in parts:
        base = name.removesuffix(f"-{p}")
        if base != name and any(study_name(base, q) in existing for q in parts):
            return base
    return name


# ----------------------------------------------------------------------------- trials


class SubjectScore(_Record):
    """The competition score on one validation subject's sequences alone (cmi_model.metric)."""

    score: float
    binary_f1: float
    macro_f1: float
    n: int  # the subject's sequences in the fold


class FoldRecord(_Record):
    """One finished fold of a trial."""

    score: float  # competition score, (binary F1 + 9-class macro F1) / 2
    binary_f1: float = math.nan
    macro_f1: float = math.nan
    epochs: int | None = None  # epochs trained
    seconds: float = math.nan  # wall time of the whole fold
    weights: dict[str, float] = {}  # term → effective weight of the scored (chosen epoch's) model
    weight_trajectory: dict[str, list[float]] = {}  # term → effective weight after each epoch
    # How the scored model was chosen, never with the validation subjects: "last_epoch" (the
    # whole schedule) or "inner" (early stopping on training subjects set aside). None: unrecorded.
    rule: str | None = None
    best_epoch: int | None = None  # the chosen epoch, 0-based
    val_subjects: list[str] = []  # subjects of the validation fold
    train_subjects: list[str] = []  # subjects the weights were fitted on ([]: unrecorded, older runs)
    stop_subjects: list[str] = []  # training subjects that chose the epoch (empty for "last_epoch")
    loss_trajectory: dict[str, list[float]] = {}  # term → mean unweighted training loss of each epoch
    learned_start: dict[str, float] = {}  # learned weighting parameters before the first step
    learned_end: dict[str, float] = {}  # the same after the last step
    max_abs_delta_s: float | None = None  # largest |end − start| of them; None: nothing learned
    subject_scores: dict[str, SubjectScore] = {}  # validation subject → its score ({}: unrecorded)


class OOF(_Record):
    """Out-of-fold predictions, 18-class indices (cmi_model.labels.GESTURES order)."""

    y_true: list[int]
    y_pred: list[int]


class TrialRecord(_Record):
    folds: list[FoldRecord] = []
    device: str | None = None
    oof: OOF | None = None
    fail_reason: str | None = None
    threads: int | None = None  # torch CPU threads of the worker that trained it (changes the last bits)
    precision: str | None = None  # Lightning precision it trained in (None: recorded before it was)
    # A confirmation trial says which arm and split seed it re-trained, and from what: the arm
    # study's trial number and its parameters (stored when the pair is queued, so whichever
    # worker takes it trains exactly that), and whether the search was unfinished then
    # (`confirm --unfinished`: the best so far).
    arm: str | None = None
    seed: int | None = None
    params: dict[str, Any] | None = None
    source_trial: int | None = None
    forced: bool | None = None

    @property
    def scores(self) -> list[float]:
        return [f.score for f in self.folds]

    def fold_values(self, field: str) -> list[Any]:
        return [getattr(f, field) for f in self.folds]


def trial_attrs(**fields: Any) -> dict[str, Any]:
    """The user attributes that store these TrialRecord fields (validated first)."""
    try:
        record = TrialRecord.model_validate(fields)
    except ValidationError as e:
        raise RecordError(f"not a trial record: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
    dumped = record.model_dump(mode="json", include=set(fields))
    attrs = {k: v for k, v in dumped.items() if k != "folds"}
    if "folds" in dumped:
        for f in FoldRecord.model_fields:
            attrs[f"fold_{f}"] = [fold[f] for fold in dumped["folds"]]
    return attrs


def write(trial: optuna.Trial, **fields: Any) -> None:
    """Store TrialRecord fields on a running trial, e.g. ``write(trial, folds=[...], device="cpu")``.
    The tool's own storage (study.workers.retrying.RetryingStorage) writes them in one transaction."""
    attrs = trial_attrs(**fields)
    with getattr(trial.storage, "one_transaction", contextlib.nullcontext)():
        for key, value in attrs.items():
            trial.set_user_attr(key, value)


def read_trial(t: FrozenTrial | optuna.Trial) -> TrialRecord:
    """The record of a stored or running trial; RecordError if its attributes are not this format."""
    ua = t.user_attrs
    columns = {f: ua[f"fold_{f}"] for f in FoldRecord.model_fields if isinstance(ua.get(f"fold_{f}"), list)}
    n = len(columns.get("score", []))
    folds = [{f: col[i] for f, col in columns.items() if i < len(col)} for i in range(n)]
    fields = {k: ua[k] for k in TrialRecord.model_fields if k in ua and k != "folds"}
    try:
        return TrialRecord.model_validate(fields | {"folds": folds})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise RecordError(f"trial #{t.number}: attribute {where}: {err['msg']}") from None


def is_budget_skip(t: FrozenTrial) -> bool:
    """A FAIL trial that only stepped aside because other workers held the arm's whole budget."""
    reason = t.user_attrs.get("fail_reason")
    return t.state == TrialState.FAIL and isinstance(reason, str) and reason.startswith(BUDGET_TAKEN)


def best_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The best COMPLETE trial of a maximised study (ties: the earlier trial)."""
    complete = [
        t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    return max(complete, key=lambda t: (t.value, -t.number), default=None)


def current_pairs(
    pairs: Iterable[TrialRecord], best: Mapping[str, int | None]
) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """(current, superseded) confirmation pairs, each list in the order given.

    pairs: confirmation trials' records (e.g. the COMPLETE trials of ``NAME-confirm`` through
    :func:`read_trial`); best: each arm's current best search trial number (``best_trial(...)
    .number``; None or absent: the arm has none). A pair is current when it re-trained its arm's
    current best trial; any other pair (an earlier best, an arm no longer searched, a record
    without a source trial) is superseded: history, kept in the storage, not part of a verdict.
    """
    current, superseded = [], []
    for r in pairs:
        is_current = r.source_trial is not None and best.get(source_arm(r.arm)) == r.source_trial
        (current if is_current else superseded).append(r)
    return current, superseded


# ----------------------------------------------------------------------------- studies


class DataInfo(_Record):
    """What a study was trained on."""

    source: str | None = None  # "synthetic" or the data folder
    n_sequences: int | None = None
    n_subjects: int | None = None
    n_rows: int | None = None
    fingerprint: str | None = None  # content hash of the CSV files
    synthetic: dict[str, Any] | None = None  # the generator's settings, for synthetic data

    @property
    def is_synthetic(self) -> bool:
        return self.source == "synthetic"


class ArmStudyRecord(_Record):
    """An arm's search study, ``NAME-ARM``."""

    arm: str
    search_space: dict[str, str] = {}  # parameter → its distribution, in words
    n_folds: int | None = None
    seed: int | None = None
    n_trials: int | None = None  # the arm's budget across all workers
    epochs: int | None = None
    preset: str | None = None
    data: DataInfo = DataInfo()
    versions: dict[str, str] = {}
    command: str | None = None  # passwords masked
    settings: dict[str, Any] = {}  # the resolved study.settings.Settings
    search_subjects: list[str] = []  # the search pool: every search fold trains and validates here
    holdout_subjects: list[str] = []  # kept out of the search for the confirmation (empty: none)
    score_settings: dict[str, Any] = {}  # every setting that changes what a score means, flat


class ConfirmStudyRecord(_Record):
    """The confirmation study, ``NAME-confirm``."""

    arms: list[str] = []
    seeds: list[int] = []  # split seeds, each re-training every arm on K folds
    n_folds: int | None = None
    data: DataInfo = DataInfo()
    versions: dict[str, str] = {}
    command: str | None = None
    holdout_subjects: list[str] = []  # every validation fold is made of these (empty: no hold-out)
    test_train_ratio: float | None = None  # mean n_test/n_train of the folds (corrected t-test)


def name_metric(study: optuna.Study, part: str) -> None:
    """Label the study's value for optuna-dashboard (its axes and tables): a search's or the
    confirmation's score."""
    names = [CONFIRM_METRIC if part == CONFIRM else SEARCH_METRIC]
    if study.metric_names != names:  # a joining worker finds it set: no write
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what optuna-dashboard reads
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(names)


def write_study(study: optuna.Study, record: _Record) -> None:
    for key, value in record.model_dump(mode="json").items():
        study.set_user_attr(key, value)


def _read_study(study: optuna.Study, model: type[_Record]) -> Any:
    try:
        return model.model_validate(study.user_attrs)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise RecordError(f"study {study.study_name!r}: attribute {where}: {err['msg']}") from None


def has_arm_record(study: optuna.Study) -> bool:
    """Whether the study carries a whole arm-study record (its creator has written it)."""
    return set(ArmStudyRecord.model_fields) <= set(study.user_attrs)


def read_arm_study(study: optuna.Study) -> ArmStudyRecord:
    return _read_study(study, ArmStudyRecord)


def read_confirm_study(study: optuna.Study) -> ConfirmStudyRecord:
    return _read_study(study, ConfirmStudyRecord)


def package_versions() -> dict[str, str]:
    """Python and the packages whose versions change results, as recorded with every study."""
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out

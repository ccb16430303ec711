"""Storage → :class:`~study.report.studies.Studies`: the first of the report's three stages
(read → analyse → draw).

Every study and trial is read through :mod:`study.records`, the one definition of the
storage format; a study or trial whose attributes do not follow it becomes a warning in
the report. Anything else missing is recorded as missing, never raised: only a study
name with no study at all raises :class:`StudyNotFoundError`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from cmi_model.errors import InputError
from study import nesting, records
from study.records import ARMS, CONFIRM, TrialRecord
from study.report.studies import (
    MIN_TRIALS_FOR_IMPORTANCES,
    ArmData,
    BestTrial,
    ClassReport,
    ConfirmData,
    FoldFacts,
    Studies,
    arm_order,
    class_report,
)
from study.workers.storage import open_storage
from study.workers.urls import safe_url as redact_url

_TRIAL_COLUMNS = ["number", "state", "value", "fold_mean", "n_folds_done", "fold_trainings", "seconds"]
_TRIAL_COLUMNS += ["fail_reason", "device", "precision", "datetime_start", "duration_s"]
_FOLD_COLUMNS = ["number", "state", "fold", "score", "binary_f1", "macro_f1", "seconds", "epochs"]
_SCORE_COLUMNS = ["arm", "seed", "fold", "score", "binary_f1", "macro_f1", "seconds", "number"]
_SUBJECT_COLUMNS = ["arm", "seed", "fold", "subject", "score", "binary_f1", "macro_f1", "n"]
R = TypeVar("R")


class StudyNotFoundError(InputError):
    """No arm or confirmation study exists for the requested study name."""


def storage_description(storage: Any) -> str:
    """The storage's URL with any password masked, for the page."""
    if isinstance(storage, str):
        return redact_url(storage)
    for obj in (storage, getattr(storage, "_backend", None)):
        url = getattr(obj, "url", None)
        if isinstance(url, str):
            return redact_url(url)
    return f"{type(storage).__name__} (not a URL)"


def resolve_storage(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    if not isinstance(storage, str):
        return storage
    # The driver's opener: the same URL checks and SQLite lock timeout, and never a new database.
    try:
        return open_storage(storage, must_exist=True)
    except InputError as e:  # e.g. no such SQLite file: for the report, no study to be found
        raise StudyNotFoundError(str(e)) from None


# ----------------------------------------------------------------------------- trials


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _read_trials(study: optuna.Study, warnings: list[str]) -> list[tuple[FrozenTrial, TrialRecord]]:
    """Each trial with its record; a malformed record is a warning and an empty record."""
    out = []
    for t in study.get_trials(deepcopy=False):
        try:
            rec = records.read_trial(t)
        except records.RecordError as e:
            warnings.append(f"{study.study_name}: {e}; its recorded results are left out.")
            rec = TrialRecord()
        out.append((t, rec))
    return out


def _scores(t: FrozenTrial, rec: TrialRecord) -> list[float]:
    # Without recorded folds, the fold scores the trial reported to Optuna.
    return rec.scores or [float(v) for _, v in sorted(t.intermediate_values.items())]


def _trial_row(t: FrozenTrial, rec: TrialRecord) -> dict[str, Any]:
    done = _finite(_scores(t, rec))
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "value": float(t.value) if t.value is not None and t.state != TrialState.FAIL else math.nan,
        "fold_mean": float(np.mean(done)) if done else math.nan,
        "n_folds_done": len(done),
        "fold_trainings": len(rec.folds) or len(done),
        "seconds": float(np.nansum(rec.fold_values("seconds"))),
        "fail_reason": rec.fail_reason or "",
        "device": rec.device or "",
        "precision": rec.precision or "",
        "datetime_start": t.datetime_start,
        "duration_s": t.duration.total_seconds() if t.duration is not None else math.nan,
    }
    for name, value in t.params.items():
        row[f"params_{name}"] = value
    return row


def _fold_rows(t: FrozenTrial, rec: TrialRecord) -> list[dict[str, Any]]:
    rows = []
    for i, s in enumerate(_scores(t, rec)):
        f = rec.folds[i] if i < len(rec.folds) else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "fold": i,
                "score": s,
                "binary_f1": f.binary_f1 if f else math.nan,
                "macro_f1": f.macro_f1 if f else math.nan,
                "seconds": f.seconds if f else math.nan,
                "epochs": f.epochs if f and f.epochs is not None else math.nan,
            }
        )
    return rows


def _fold_facts(rec: TrialRecord) -> list[FoldFacts]:
    """Each recorded fold's selection rule, subjects, weight movement and training losses.

    A fold with no recorded rule (a trial from before it was stored) keeps rule None: its
    epoch may have been chosen on its own validation fold, and the page says so.
    """
    out = []
    for f in rec.folds:
        delta = f.max_abs_delta_s
        out.append(
            FoldFacts(
                rule=f.rule,
                val_subjects=tuple(f.val_subjects),
                stop_subjects=tuple(f.stop_subjects),
                max_abs_delta_s=float(delta) if delta is not None and math.isfinite(delta) else None,
                loss_trajectory=dict(f.loss_trajectory),
            )
        )
    return out


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    # Hand-built rather than study.trials_dataframe(): the rows come from the one snapshot of
    # the trials the records were read from (a live study may change between two reads).
    df = pd.DataFrame(rows)
    for c in columns:
        if c not in df.columns:
            df[c] = pd.Series(dtype=float)
    return df[columns + [c for c in df.columns if c not in columns]]


def _oof(
    t: FrozenTrial, rec: TrialRecord, warnings: list[str], who: str
) -> tuple[list[int], list[int]] | None:
    if rec.oof is None or not rec.oof.y_true:
        return None
    if len(rec.oof.y_true) != len(rec.oof.y_pred):
        warnings.append(f"{who} trial #{t.number}: out-of-fold predictions of different lengths, left out.")
        return None
    return rec.oof.y_true, rec.oof.y_pred


def _class_report(
    oofs: list[tuple[list[int], list[int]]], source: str, warnings: list[str]
) -> ClassReport | None:
    if not oofs:
        return None
    try:
        return class_report([v for o in oofs for v in o[0]], [v for o in oofs for v in o[1]], source)
    except ValueError as e:
        warnings.append(f"Out-of-fold predictions of {source} are unusable: {e}")
        return None


# ----------------------------------------------------------------------------- arm studies


def _importances(study: optuna.Study, n_complete: int) -> tuple[dict[str, float] | None, str]:
    if n_complete < MIN_TRIALS_FOR_IMPORTANCES:
        return None, (
            f"not drawn: fANOVA's forest needs about {MIN_TRIALS_FOR_IMPORTANCES} complete trials to say "
            f"anything, this arm has {n_complete}"
        )
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as e:  # optuna raises on degenerate spaces; say why instead of crashing
        return None, f"could not be computed ({type(e).__name__}: {e})"
    imp = {k: float(v) for k, v in imp.items() if math.isfinite(float(v))}
    if not imp:
        return None, "no parameter varied across the complete trials"
    return imp, f"fANOVA over {n_complete} complete trials"


def _best(t: FrozenTrial, rec: TrialRecord) -> BestTrial:
    return BestTrial(
        number=t.number,
        value=float(t.value),  # type: ignore[arg-type]
        params=dict(t.params),
        fold_scores=_scores(t, rec),
        fold_binary_f1=rec.fold_values("binary_f1"),
        fold_macro_f1=rec.fold_values("macro_f1"),
        fold_weights=rec.fold_values("weights"),
        weight_trajectory=rec.fold_values("weight_trajectory"),
        fold_seconds=rec.fold_values("seconds"),
        device=rec.device,
        folds=_fold_facts(rec),
    )


def _read_study(study: optuna.Study, read: Callable[[optuna.Study], R], empty: R, warnings: list[str]) -> R:
    if not study.user_attrs:  # created, nothing recorded yet: missing, not malformed
        return empty
    try:
        return read(study)
    except records.RecordError as e:
        warnings.append(f"{e}; the study's recorded settings are left out.")
        return empty


def _extract_arm(study: optuna.Study, arm: str, warnings: list[str]) -> ArmData:
    record = _read_study(study, records.read_arm_study, records.ArmStudyRecord(arm=arm), warnings)
    read = _read_trials(study, warnings)
    trials = [(t, rec) for t, rec in read if not records.is_budget_skip(t)]
    param_log: dict[str, bool] = {}
    for t, _ in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, FloatDistribution | IntDistribution):
                param_log.setdefault(name, bool(dist.log))
    best_t = records.best_trial([t for t, _ in trials])
    best, oof_report = None, None
    if best_t is not None:
        best_rec = next(rec for t, rec in trials if t is best_t)
        best = _best(best_t, best_rec)
        oof = _oof(best_t, best_rec, warnings, arm)
        oof_report = _class_report([oof] if oof else [], f"{arm} search trial #{best_t.number}", warnings)
    importances, note = _importances(study, sum(t.state == TrialState.COMPLETE for t, _ in trials))
    return ArmData(
        arm=arm,
        study_name=study.study_name,
        record=record,
        trials=_frame([_trial_row(t, rec) for t, rec in trials], _TRIAL_COLUMNS),
        folds=_frame([r for t, rec in trials for r in _fold_rows(t, rec)], _FOLD_COLUMNS),
        best=best,
        param_log=param_log,
        importances=importances,
        importance_note=note,
        oof_report=oof_report,
        budget_skips=len(read) - len(trials),
    )


# ----------------------------------------------------------------------------- confirmation


@dataclass
class _Runs:
    """What the confirmation's trials hold, gathered run by run (a run: one (arm, seed))."""

    rows: list = field(default_factory=list)  # every trial, a row each
    score_rows: list = field(default_factory=list)  # per fold of the current runs
    subject_rows: list = field(default_factory=list)  # per validation subject of the current runs
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    oofs: dict[tuple[str, int], tuple[list[int], list[int]]] = field(default_factory=dict)
    facts: dict[tuple[str, int], list[FoldFacts]] = field(default_factory=dict)
    superseded: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    forced: set[str] = field(default_factory=set)
    sources: dict[str, int | None] = field(default_factory=dict)

    def drop(self, arm: str, seed: int) -> None:
        keep = lambda r: not (r["arm"] == arm and r["seed"] == seed)  # noqa: E731
        self.score_rows = [r for r in self.score_rows if keep(r)]
        self.subject_rows = [r for r in self.subject_rows if keep(r)]
        self.oofs.pop((arm, seed), None)


def _subject_rows(rec: TrialRecord) -> list[dict[str, Any]]:
    return [
        {"fold": k, "subject": subject, **s.model_dump()}
        for k, f in enumerate(rec.folds)
        for subject, s in f.subject_scores.items()
    ]


def _confirm_runs(
    read: list[tuple[FrozenTrial, TrialRecord]], warnings: list[str], best: dict[str, int | None]
) -> _Runs:
    """The runs of the confirmation that re-trained each arm's current best search trial (``best``:
    arm → its number, for the arms whose search study was read); the others are superseded
    (records.current_pairs). Of several finished trials for one run the later one counts."""
    runs = _Runs()
    seen: dict[tuple[str, int], int] = {}
    done = [
        (t, rec) for t, rec in read if t.state == TrialState.COMPLETE and rec.arm and rec.seed is not None
    ]
    judged = [rec for _, rec in done if records.source_arm(rec.arm) in best]
    _, stale = records.current_pairs(judged, best)
    stale_ids = {id(rec) for rec in stale}
    for t, rec in read:
        arm, seed = rec.arm or "", rec.seed
        current = id(rec) not in stale_ids
        runs.rows.append(
            _trial_row(t, rec) | {"arm": arm, "seed": seed if seed is not None else -1, "current": current}
        )
        if t.state != TrialState.COMPLETE or not arm or seed is None:
            continue
        if not current:
            runs.superseded.setdefault(arm, []).append((seed, rec.source_trial))
            continue
        if (arm, seed) in seen:
            warnings.append(
                f"Confirmation study has more than one finished trial for arm {arm}, seed {seed} "
                f"(#{seen[(arm, seed)]} and #{t.number}); the later one is used."
            )
            runs.drop(arm, seed)
        seen[(arm, seed)] = t.number
        runs.facts[(arm, seed)] = _fold_facts(rec)
        runs.score_rows += [r | {"arm": arm, "seed": seed} for r in _fold_rows(t, rec)]
        runs.subject_rows += [r | {"arm": arm, "seed": seed} for r in _subject_rows(rec)]
        runs.params.setdefault(arm, dict(rec.params or {}))
        runs.sources.setdefault(arm, rec.source_trial)
        if rec.forced:
            runs.forced.add(arm)
        oof = _oof(t, rec, warnings, f"confirmation {arm}")
        if oof:
            runs.oofs[(arm, seed)] = oof
    return runs


def _extract_confirm(study: optuna.Study, warnings: list[str], best: dict[str, int | None]) -> ConfirmData:
    record = _read_study(study, records.read_confirm_study, records.ConfirmStudyRecord(), warnings)
    runs = _confirm_runs(_read_trials(study, warnings), warnings, best)
    rows = runs.rows
    arms = list(record.arms)
    arms += sorted({r["arm"] for r in rows if r["arm"] and r["arm"] not in arms}, key=arm_order)
    seeds = list(record.seeds)
    seeds += sorted({r["seed"] for r in rows if r["seed"] >= 0 and r["seed"] not in seeds})
    scores = _frame(runs.score_rows, _SCORE_COLUMNS)
    n_folds = record.n_folds
    if n_folds is None and len(scores):
        n_folds = int(scores["fold"].max()) + 1
    reports = {}
    for arm in dict.fromkeys(a for a, _ in runs.oofs):
        oofs = [o for (a, _), o in runs.oofs.items() if a == arm]
        rep = _class_report(oofs, f"{arm} confirmation, {len(oofs)} seed(s)", warnings)
        if rep is not None:
            reports[arm] = rep
    facts = runs.facts
    return ConfirmData(
        study_name=study.study_name,
        record=record,
        arms=arms,
        seeds=[int(s) for s in seeds],
        n_folds=n_folds,
        trials=_frame(rows, _TRIAL_COLUMNS + ["arm", "seed", "current"]),
        scores=scores,
        params=runs.params,
        oof_reports=reports,
        oofs={arm: [o for (a, _), o in runs.oofs.items() if a == arm] for arm in reports},
        fold_facts={arm: [f for (a, _), fs in sorted(facts.items()) if a == arm for f in fs] for arm in arms},
        subject_scores=_frame(runs.subject_rows, _SUBJECT_COLUMNS),
        superseded=runs.superseded,
        forced=tuple(sorted(runs.forced, key=arm_order)),
        sources=runs.sources,
    )


def read(storage: str | optuna.storages.BaseStorage, study_name: str) -> Studies:
    """Read every study of ``study_name`` from ``storage`` into plain data.

    A nested run (studies ``NAME-outerK-…``) is read outer fold by outer fold and merged
    (:mod:`.nested`). Raises :class:`StudyNotFoundError` (an InputError) naming the studies that
    exist when none of ``NAME-<arm>``, ``NAME-confirm`` or ``NAME-outerK-…`` is there. Everything
    else that is missing is recorded, not raised.
    """
    from study.report import nested

    url = storage_description(storage)
    backend = resolve_storage(storage)
    existing = sorted(optuna.get_all_study_names(storage=backend))
    name = records.base_name(study_name, set(existing))
    wanted = {part: records.study_name(name, part) for part in (*ARMS, CONFIRM)}
    outer = records.outer_folds_in(name, existing)
    if any(s in existing for s in wanted.values()) or not outer:
        return _read_part(backend, name, url, existing, study_name)
    parts = [(k, _read_part(backend, records.outer_name(name, k), url, existing)) for k in outer]
    return nested.merge(name, parts, nesting.check(backend, name))


def _read_part(backend, name: str, url: str, existing: list[str], asked: str | None = None) -> Studies:
    """The arm studies and the confirmation of one study name (an outer fold's, when nested)."""
    wanted = {part: records.study_name(name, part) for part in (*ARMS, CONFIRM)}
    present = [part for part, s in wanted.items() if s in existing]
    if not present:
        listing = ", ".join(existing) if existing else "(none: the storage holds no studies)"
        raise StudyNotFoundError(
            f"no study named {asked or name!r} in {url}: expected one of "
            f"{', '.join(wanted.values())} (or {records.outer_name(name, 1)}-… of a nested run). "
            f"Studies in this storage: {listing}"
        )
    warnings: list[str] = []

    def load(part: str) -> optuna.Study:
        return optuna.load_study(study_name=wanted[part], storage=backend)

    def decoded(part: str, extract):
        try:
            return extract()
        except json.JSONDecodeError as e:  # Optuna decodes every attribute of the study at once
            raise InputError(
                f"study {wanted[part]!r}: a stored attribute is not JSON ({e.msg}, character {e.pos}): "
                "the database was edited or damaged outside Optuna"
            ) from None

    arms = {
        arm: decoded(arm, lambda arm=arm: _extract_arm(load(arm), arm, warnings))
        for arm in ARMS
        if arm in present
    }
    best = {arm: d.best.number if d.best is not None else None for arm, d in arms.items()}
    confirm = (
        decoded(CONFIRM, lambda: _extract_confirm(load(CONFIRM), warnings, best))
        if CONFIRM in present
        else None
    )
    return Studies(
        name=name,
        storage_url=url,
        existing_studies=existing,
        arms=arms,
        confirm=confirm,
        read_warnings=tuple(warnings),
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )

"""The report's plain data as read from the storage, and the warnings it carries by itself.

Dataclasses and pandas DataFrames only, no plotly and no statistics: :mod:`.read` fills them,
:mod:`.analyse` compares the arms on them, and tests check them without drawing anything.
The warnings here are about the studies as a whole: what is missing, what differs between
them, and whether the verdict's subjects were kept apart from the selection that they judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.metric import score_indices
from cmi_model.weighting import BASELINE_ARM, FAMILIES, SCHEMES
from study import frozen, records
from study.nesting import Crossing
from study.records import ARMS, CONFIRM, ArmStudyRecord, ConfirmStudyRecord, DataInfo

# Below this many complete trials fANOVA's random forest fits noise: its importances are not drawn.
MIN_TRIALS_FOR_IMPORTANCES = 8
STATE_ORDER: tuple[str, ...] = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
StudyRecord = ArmStudyRecord | ConfirmStudyRecord


def arm_order(arm: str) -> tuple[int, str]:
    """Sort key: the arms in their defined order, a frozen configuration right after its learned
    arm, unknown names after them."""
    source = records.source_arm(arm) or arm
    return (ARMS.index(source) if source in ARMS else len(ARMS), arm)


UNKNOWN_FAMILY = "unknown family"  # of an arm this version does not know (a storage written by another one)


def family_of(arm: str) -> str:
    """The arm's family (one of ``FAMILIES``), as its scheme names it; a frozen configuration
    (fixed@ARM, study.frozen) is the fixed family's."""
    scheme = SCHEMES.get(BASELINE_ARM if arm.startswith(records.FROZEN_PREFIX) else arm)
    return scheme.family if scheme is not None else UNKNOWN_FAMILY


def family_order(arm: str) -> tuple[int, int, str]:
    """Sort key: by family in ``FAMILIES`` order (unknown ones last), within one in arm order."""
    family = family_of(arm)
    return (FAMILIES.index(family) if family in FAMILIES else len(FAMILIES), *arm_order(arm))


def by_family(arms: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The arms grouped by family, families in ``FAMILIES`` order, each one's arms in arm order
    (families without an arm here left out)."""
    groups: dict[str, list[str]] = {}
    for arm in sorted(arms, key=family_order):
        groups.setdefault(family_of(arm), []).append(arm)
    return list(groups.items())


@dataclass(frozen=True)
class ClassReport:
    """Out-of-fold predictions of one configuration scored per 9-class label."""

    source: str  # where the predictions come from, in words
    n: int  # number of sequences predicted
    score: float
    binary_f1: float
    macro_f1: float
    per_class_f1: dict[str, float]  # NINE_CLASSES → F1 (NaN: class absent from truth and predictions)
    confusion: np.ndarray  # (9, 9) counts, rows = true 9-class label, columns = predicted


def class_report(y_true: Sequence[int], y_pred: Sequence[int], source: str) -> ClassReport:
    """Score 18-class out-of-fold predictions and break them down by 9-class label.

    A class absent from both truth and predictions gets F1 NaN (``zero_division=nan``
    applies only when TP + FP + FN = 0), so the mean over the present classes is the
    competition's macro F1.
    """
    t18 = np.asarray(y_true, dtype=np.int64)
    p18 = np.asarray(y_pred, dtype=np.int64)
    if t18.ndim != 1 or t18.shape != p18.shape or t18.size == 0:
        raise ValueError(
            f"oof y_true/y_pred must be equal-length non-empty lists, got {t18.shape}, {p18.shape}"
        )
    if t18.min() < 0 or p18.min() < 0 or max(t18.max(), p18.max()) >= len(GESTURES):
        raise ValueError(f"oof gesture indices must be in 0..{len(GESTURES) - 1}")
    t9, p9 = EIGHTEEN_TO_NINE[t18], EIGHTEEN_TO_NINE[p18]
    labels = np.arange(len(NINE_CLASSES))
    f1 = f1_score(t9, p9, labels=labels, average=None, zero_division=np.nan)
    s = score_indices(t18, p18)
    return ClassReport(
        source=source,
        n=int(t18.size),
        score=s.score,
        binary_f1=s.binary_f1,
        macro_f1=s.macro_f1,
        per_class_f1={c: float(v) for c, v in zip(NINE_CLASSES, f1, strict=True)},
        confusion=confusion_matrix(t9, p9, labels=labels),
    )


@dataclass(frozen=True)
class FoldFacts:
    """How one fold's model was chosen and how far its learned weights moved (records.FoldRecord)."""

    rule: (
        str | None
    )  # "last_epoch" or "inner"; None: not recorded (the epoch may have been chosen on the fold)
    val_subjects: tuple[str, ...] = ()
    stop_subjects: tuple[str, ...] = ()  # training subjects that chose the epoch under "inner"
    max_abs_delta_s: float | None = None  # largest |Δ| of a learned log-weight; None: fixed or unrecorded
    loss_trajectory: dict[str, list[float]] = field(
        default_factory=dict
    )  # term → mean training loss per epoch

    @property
    def leaks(self) -> bool:
        """The epoch was chosen on subjects that also score the fold."""
        return bool(set(self.stop_subjects) & set(self.val_subjects))


@dataclass(frozen=True)
class BestTrial:
    """The best COMPLETE trial of an arm study."""

    number: int
    value: float
    params: dict[str, Any]
    fold_scores: list[float]
    fold_binary_f1: list[float]
    fold_macro_f1: list[float]
    fold_weights: list[dict[str, float]]  # per fold: term → final effective weight
    weight_trajectory: list[dict[str, list[float]]]  # per fold: term → per-epoch effective weight
    fold_seconds: list[float]
    device: str | None
    folds: list[FoldFacts] = field(default_factory=list)


@dataclass(frozen=True)
class ArmData:
    """One arm study: its record, one row per trial and per (trial, fold)."""

    arm: str
    study_name: str
    record: ArmStudyRecord
    trials: pd.DataFrame  # number, state, value, fold_mean, n_folds_done, fold_trainings, seconds, ...
    folds: pd.DataFrame  # number, state, fold, score, binary_f1, macro_f1, seconds, epochs
    best: BestTrial | None
    param_log: dict[str, bool]  # parameter → sampled on a log scale
    importances: dict[str, float] | None
    importance_note: str
    oof_report: ClassReport | None
    budget_skips: int = 0  # FAIL trials that only stepped aside because other workers held the budget

    @property
    def state_counts(self) -> dict[str, int]:
        counts = self.trials["state"].value_counts().to_dict() if len(self.trials) else {}
        return {s: int(counts.get(s, 0)) for s in STATE_ORDER if counts.get(s, 0) or s != "WAITING"}

    def state_summary(self) -> str:
        """``3 complete, 1 pruned`` (``no trials`` for none)."""
        return ", ".join(f"{n} {s.lower()}" for s, n in self.state_counts.items() if n) or "no trials"

    @property
    def seconds(self) -> float:
        return float(self.trials["seconds"].sum()) if len(self.trials) else 0.0

    @property
    def fold_trainings(self) -> int:
        return int(self.trials["fold_trainings"].sum()) if len(self.trials) else 0

    @property
    def budget(self) -> int | None:
        return self.record.n_trials


@dataclass(frozen=True)
class ConfirmData:
    """The confirmation study: each arm's best configuration re-trained on fresh seeds."""

    study_name: str
    record: ConfirmStudyRecord
    arms: list[str]
    seeds: list[int]
    n_folds: int | None
    trials: pd.DataFrame  # number, state, arm, seed, value, n_folds_done, fold_trainings, seconds, ...
    scores: pd.DataFrame  # arm, seed, fold, score, binary_f1, macro_f1, seconds, number (COMPLETE trials)
    params: dict[str, dict[str, Any]]  # arm → configuration re-trained
    oof_reports: dict[str, ClassReport]
    # arm → the (y_true, y_pred) lists behind its oof_report, one per seed (outer folds merge them)
    oofs: dict[str, list[tuple[list[int], list[int]]]] = field(default_factory=dict)
    fold_facts: dict[str, list[FoldFacts]] = field(default_factory=dict)  # arm → folds of its COMPLETE runs
    # arm, seed, fold, subject, score, binary_f1, macro_f1, n: each validation subject of the current runs
    subject_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    # arm → (seed, source trial) of finished runs that re-trained an earlier best: history, left out
    superseded: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    forced: tuple[str, ...] = ()  # arms confirmed with --unfinished while their search was unfinished
    sources: dict[str, int | None] = field(default_factory=dict)  # arm → the search trial its runs re-trained

    def seconds(self, arm: str) -> float:
        t = self.trials[self.trials["arm"] == arm]
        return float(t["seconds"].sum()) if len(t) else 0.0

    def fold_trainings(self, arm: str) -> int:
        t = self.trials[self.trials["arm"] == arm]
        return int(t["fold_trainings"].sum()) if len(t) else 0


@dataclass(frozen=True)
class Studies:
    """Every study of one study name, as read: the arm studies, the confirmation, and the
    warnings of reading them (malformed records)."""

    name: str
    storage_url: str  # password removed
    existing_studies: list[str]
    arms: dict[str, ArmData]
    confirm: ConfirmData | None
    read_warnings: tuple[str, ...] = ()
    generated_at: str = ""
    # A nested run (study.nesting): each outer fold's own studies as read, k → Studies, and what the
    # check of its stored records found. Then `arms` are outer fold 1's searches (the search figures)
    # and `confirm` merges every outer fold's confirmation (the verdict).
    outer: tuple[tuple[int, Studies], ...] = ()
    n_outer: int | None = None  # outer folds of the run (some may not be run yet)
    crossing: Crossing | None = None

    @property
    def n_folds(self) -> int | None:
        """Folds of one cross-validation (of one outer fold, for a nested run)."""
        if self.outer:
            return self.outer[0][1].n_folds
        if self.confirm is not None and self.confirm.n_folds:
            return self.confirm.n_folds
        return next((a.record.n_folds for a in self.arms.values() if a.record.n_folds), None)

    def class_reports(self) -> dict[str, ClassReport]:
        """Per arm, the out-of-fold report of its best configuration (confirmation preferred)."""
        out: dict[str, ClassReport] = {}
        for arm in self.arm_names():
            if self.confirm is not None and arm in self.confirm.oof_reports:
                out[arm] = self.confirm.oof_reports[arm]
            elif arm in self.arms and self.arms[arm].oof_report is not None:
                out[arm] = self.arms[arm].oof_report  # type: ignore[assignment]
        return out

    def arm_names(self) -> list[str]:
        names = list(self.arms)
        if self.confirm is not None:
            names += [a for a in self.confirm.arms if a not in names]
        return sorted(names, key=arm_order)

    def studies(self) -> dict[str, StudyRecord]:
        """Each study's record, labelled for the reader: ``fixed study``, …, ``confirmation``
        (``outer fold 1: fixed study``, … for a nested run)."""
        if self.outer:
            return {
                f"outer fold {k}: {label}": r for k, part in self.outer for label, r in part.studies().items()
            }
        out: dict[str, StudyRecord] = {
            f"{arm} study": self.arms[arm].record for arm in sorted(self.arms, key=arm_order)
        }
        if self.confirm is not None:
            out["confirmation"] = self.confirm.record
        return out

    def confirmed_outer_folds(self) -> list[int]:
        """A nested run's outer folds whose confirmation has finished scores."""
        return [k for k, part in self.outer if part.confirm is not None and len(part.confirm.scores)]

    def stored_rope(self) -> float | None:
        """The rope the study was run with (`run --rope`, stored in each arm study's settings);
        None for a study made before the rope was stored."""
        for arm in self.arms.values():
            rope = (arm.record.settings.get("study") or {}).get("rope")
            if isinstance(rope, int | float) and 0 < rope < 1:
                return float(rope)
        return None

    def data_info(self) -> DataInfo | None:
        """The first study's description of its data (arms first, then the confirmation)."""
        return next((r.data for r in self.studies().values() if r.data != DataInfo()), None)

    def warnings(self) -> list[str]:
        """Reading's warnings, then those about the studies as a whole (of each outer fold's
        studies by themselves, and of the outer folds together, for a nested run)."""
        if self.outer:
            own = [f"Outer fold {k}: {w}" for k, part in self.outer for w in part.warnings()]
            return [*self.read_warnings, *own, *_outer_folds(self)]
        return [
            *self.read_warnings,
            *_consistency(self),
            *_missing(self),
            *_confirmations(self),
            *_subjects(self),
        ]


# ----------------------------------------------------------------------------- warnings


def _consistency(data: Studies) -> list[str]:
    out = []
    for key in ("n_folds", "seed", "epochs", "preset", "n_trials"):
        values = {a: getattr(d.record, key) for a, d in data.arms.items()}
        values = {a: v for a, v in values.items() if v is not None}
        if len({repr(v) for v in values.values()}) > 1:
            listed = ", ".join(f"{a}: {v}" for a, v in values.items())
            out.append(f"Arms differ in {key} ({listed}): the comparison may not be like for like.")
    prints = {a: d.record.data.fingerprint for a, d in data.arms.items()}
    if data.confirm is not None:
        prints[CONFIRM] = data.confirm.record.data.fingerprint
    known = {k: v for k, v in prints.items() if v}
    if len(set(known.values())) > 1:
        listed = ", ".join(f"{a}: {v}" for a, v in known.items())
        out.append(f"Studies were run on different data (fingerprints {listed}).")
    return out


def _missing(data: Studies) -> list[str]:
    name, confirm, out = data.name, data.confirm, []
    if not data.arms:
        out.append(f"No arm study ({', '.join(records.study_name(name, a) for a in ARMS)}) in this storage.")
    if confirm is None:
        out.append(
            f"No confirmation study {records.study_name(name, CONFIRM)} yet: any verdict below rests on the "
            f"best search trials, which are selection-biased. Run `cmi-study confirm` for an honest comparison."
        )
    elif not len(confirm.scores):
        out.append(f"The confirmation study {records.study_name(name, CONFIRM)} has no finished trial yet.")
    for arm, d in data.arms.items():
        running = d.state_counts.get("RUNNING", 0)
        if running:
            out.append(f"{arm}: {running} trial(s) still running; numbers may change.")
        if d.best is None and len(d.trials):
            out.append(f"{arm}: no complete trial yet ({d.state_summary()}).")
    return out


def _confirmations(data: Studies) -> list[str]:
    """Whether each arm's confirmation re-trained its current best search trial."""
    confirm, out = data.confirm, []
    if confirm is None or not len(confirm.trials):
        return out
    confirmed = set(confirm.scores["arm"]) if len(confirm.scores) else set()
    for arm, d in sorted(data.arms.items(), key=lambda kv: arm_order(kv[0])):
        if d.best is None or arm in confirmed:
            continue
        old = sorted(
            {
                f"#{src}" if src is not None else "an unrecorded trial"
                for _, src in confirm.superseded.get(arm, [])
            }
        )
        if old:
            out.append(
                f"{arm}: its confirmation re-trained {', '.join(old)}, no longer its best search trial "
                f"(#{d.best.number}): superseded and left out; run `cmi-study confirm` to confirm the current best."
            )
        else:
            out.append(
                f"{arm}: no confirmation of its best search trial #{d.best.number} yet; run `cmi-study confirm`."
            )
    for arm in confirm.forced:
        out.append(
            f"{arm}: confirmed with --unfinished while its search was unfinished: the best trial so far, not the best of "
            "the whole budget."
        )
    return out


def _outer_folds(data: Studies) -> list[str]:
    """Outer folds not yet searched or confirmed, and anything the records show crossing them."""
    out = []
    confirmed = data.confirmed_outer_folds()
    if data.n_outer and len(confirmed) < data.n_outer:
        missing = [k for k in range(1, data.n_outer + 1) if k not in confirmed]
        out.append(
            f"{len(confirmed)} of {data.n_outer} outer folds confirmed: the verdict rests on their subjects only; "
            f"outer fold(s) {', '.join(map(str, missing))} still to run (`cmi-study run --outer-fold K`, then `confirm`)."
        )
    if data.crossing is not None:
        out += [f"Information crossed outer folds: {p}." for p in data.crossing.problems]
    return out


def tuned_dimensions(d: ArmData) -> int:
    """How many parameters the arm's search tuned (its recorded space, else its best trial's)."""
    if d.record.search_space:
        return len(d.record.search_space)
    return len(d.best.params) if d.best is not None else 0


def _listed(subjects: set[str], limit: int = 8) -> str:
    shown = sorted(subjects)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _subjects(data: Studies) -> list[str]:
    """The confirmation's subjects against the search's, and every recorded fold's stop subjects."""
    confirm, out = data.confirm, []
    confirm_folds = [(a, f) for a, fs in (confirm.fold_facts if confirm else {}).items() for f in fs]
    if confirm is not None and len(confirm.scores):
        held = set(confirm.record.holdout_subjects)
        if not held:
            tuned = ", ".join(
                f"{a}: {tuned_dimensions(d)}"
                for a, d in sorted(data.arms.items(), key=lambda kv: arm_order(kv[0]))
            )
            out.append(
                "No held-out subjects (--holdout 0): selection and confirmation share subjects. Each arm's "
                "configuration was picked on the subjects that now score it, so the verdict is optimistic for "
                f"the arm with more tuned dimensions ({tuned or 'unknown'} tuned parameters)."
            )
        else:
            for arm, d in data.arms.items():
                seen = held & set(d.record.search_subjects)
                seen |= {
                    s for f in (d.best.folds if d.best else []) for s in (*f.val_subjects, *f.stop_subjects)
                } & held
                if seen:
                    out.append(
                        f"{arm}: the search used held-out subjects ({_listed(seen)}): the confirmation is not "
                        f"independent of the selection."
                    )
            outside = {s for _, f in confirm_folds for s in f.val_subjects} - held
            if outside:
                out.append(
                    f"Confirmation folds validated on subjects outside the hold-out ({_listed(outside)})."
                )
    search_folds = [(arm, f) for arm, d in data.arms.items() if d.best is not None for f in d.best.folds]
    leaky = [arm for arm, f in [*search_folds, *confirm_folds] if f.leaks]
    if leaky:
        out.append(
            f"{len(leaky)} fold(s) ({', '.join(sorted(set(leaky), key=arm_order))}) chose their epoch on stop "
            f"subjects that are also their validation subjects: those scores looked at their own validation fold."
        )
    return out


# ----------------------------------------------------------------------------- how far learned weights moved

MOVED = frozen.MOVED  # learned log-weights that moved less than this (max |Δs|) are effectively fixed


def learns(arm: str) -> bool:
    scheme = SCHEMES.get(arm)
    return scheme is not None and scheme.learned


@dataclass(frozen=True)
class Movement:
    """How far a learned arm's log-weights moved within a fold (max |Δs| over folds)."""

    arm: str
    search: float | None  # over the folds of its best search trial (None: not recorded)
    search_trial: int | None
    search_folds: int  # folds that recorded it
    confirm: float | None  # over the folds of its confirmation runs
    confirm_folds: int

    @property
    def largest(self) -> float | None:
        known = [v for v in (self.search, self.confirm) if v is not None]
        return max(known) if known else None

    @property
    def effectively_fixed(self) -> bool:
        return self.largest is not None and self.largest < MOVED


def _max_delta(folds: list[FoldFacts]) -> tuple[float | None, int]:
    known = [f.max_abs_delta_s for f in folds if f.max_abs_delta_s is not None]
    return (max(known) if known else None), len(known)


def weight_movement(data: Studies) -> dict[str, Movement]:
    """Every arm that learns its weights, with a best search trial or confirmation runs."""
    out = {}
    for arm in data.arm_names():
        d = data.arms.get(arm)
        best = d.best if d is not None else None
        confirm = data.confirm.fold_facts.get(arm, []) if data.confirm is not None else []
        if not learns(arm) or (best is None and not confirm):
            continue
        search, n_search = _max_delta(best.folds if best else [])
        moved, n_confirm = _max_delta(confirm)
        out[arm] = Movement(arm, search, best.number if best else None, n_search, moved, n_confirm)
    return out

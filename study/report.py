"""Storage → plain data → plotly figures → one self-contained HTML report.

Three layers, each usable on its own:

1. :func:`extract` reads the arm studies ``NAME-fixed`` / ``NAME-uncertainty`` /
   ``NAME-direct`` and the confirmation study ``NAME-confirm`` from an Optuna storage
   into plain dataclasses and pandas DataFrames (no plotly), and runs the paired
   comparisons of :mod:`study.stats`.
2. ``fig_*`` functions draw plotly figures from that plain data (``None`` when the
   data for a figure is missing).
3. :func:`write_report` writes one HTML file with plotly.js embedded exactly once
   (it opens offline) and, when ``optuna_dashboard`` is installed, saves the verdict
   as a note and the key figures as dashboard graphs on every study.

Every string that comes from the storage or the user is HTML-escaped; a missing
piece of data turns into a sentence saying what is missing, never an exception.
Only a study name with no study at all raises :class:`StudyNotFoundError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import logging
import math
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from cmi_model.errors import InputError
from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.metric import score_indices
from study.stats import Comparison, paired_comparison
from study.storage import (  # password masking: one source of truth, shared with the driver
    open_storage,
    redact,
)
from study.storage import safe_url as redact_url

log = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("fixed", "uncertainty", "direct")
CONFIRM = "confirm"
TERMS: tuple[str, ...] = ("multiclass", "binary", "nine_class", "kl")
FIXED_WEIGHT_PARAMS: tuple[str, ...] = ("alpha", "nine_class_loss_weight", "kl_weight")
SHARED_PARAMS: tuple[str, ...] = ("lr", "weight_decay", "dropout")
SECTION_TITLES: tuple[str, ...] = (
    "1. Headline",
    "2. Confirmation",
    "3. Search",
    "4. Learned weights",
    "5. Fixed-weight landscape",
    "6. Metric parts",
    "7. Reproducibility",
)
ARM_LABELS = {
    "fixed": "tuned fixed weights",
    "uncertainty": "learned uncertainty weights",
    "direct": "learned direct weights",
}
ARM_COLORS = {"fixed": "#4C78A8", "uncertainty": "#F58518", "direct": "#54A24B"}
STATE_ORDER: tuple[str, ...] = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
DASHBOARD_GRAPH_PREFIX = "cmi-report-"
# A parallel worker whose trial found the budget already taken fails it with this reason; not a real failure.
BUDGET_SKIP_PREFIX = "BudgetTaken"


class StudyNotFoundError(InputError):
    """No arm or confirmation study exists for the requested study name."""


# ----------------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class DataInfo:
    """What the study was trained on (study user attr ``data``)."""

    source: str | None  # "synthetic" or a directory path
    n_sequences: int | None
    n_subjects: int | None
    n_rows: int | None
    fingerprint: str | None

    @property
    def is_synthetic(self) -> bool:
        return self.source == "synthetic"


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


@dataclass
class ArmData:
    """One arm study: its attributes, one row per trial and per (trial, fold)."""

    arm: str
    study_name: str
    attrs: dict[str, Any]
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

    @property
    def seconds(self) -> float:
        return float(self.trials["seconds"].sum()) if len(self.trials) else 0.0

    @property
    def fold_trainings(self) -> int:
        return int(self.trials["fold_trainings"].sum()) if len(self.trials) else 0

    @property
    def budget(self) -> int | None:
        return _as_int(self.attrs.get("n_trials"))


@dataclass
class ConfirmData:
    """The confirmation study: each arm's best configuration re-trained on fresh seeds."""

    study_name: str
    attrs: dict[str, Any]
    arms: list[str]
    seeds: list[int]
    n_folds: int | None
    trials: (
        pd.DataFrame
    )  # number, state, arm, seed, value, n_folds_done, fold_trainings, seconds, fail_reason
    scores: pd.DataFrame  # arm, seed, fold, score, binary_f1, macro_f1, seconds, number (COMPLETE trials)
    params: dict[str, dict[str, Any]]  # arm → configuration re-trained
    oof_reports: dict[str, ClassReport]

    def seconds(self, arm: str) -> float:
        t = self.trials[self.trials["arm"] == arm]
        return float(t["seconds"].sum()) if len(t) else 0.0

    def fold_trainings(self, arm: str) -> int:
        t = self.trials[self.trials["arm"] == arm]
        return int(t["fold_trainings"].sum()) if len(t) else 0


@dataclass(frozen=True)
class ArmComparison:
    """Paired comparison of arm b against arm a (differences are b − a)."""

    a: str
    b: str
    source: str  # "confirmation", "search" (selection-biased best trials) or "none"
    pairs: pd.DataFrame  # seed, fold, a, b, diff
    comparison: Comparison | None
    note: str  # what the numbers rest on, or why there are none

    @property
    def selection_biased(self) -> bool:
        return self.source == "search"

    def verdict_words(self) -> str:
        if self.comparison is None:
            return "no verdict"
        v = self.comparison.verdict
        return {"a better": f"{self.a} better", "b better": f"{self.b} better"}.get(v, v)


@dataclass
class ReportData:
    """Everything the report shows, as plain data."""

    name: str
    storage_url: str  # password removed
    existing_studies: list[str]
    arms: dict[str, ArmData]
    confirm: ConfirmData | None
    comparisons: list[ArmComparison]
    data_info: DataInfo | None
    warnings: list[str] = field(default_factory=list)
    generated_at: str = ""

    @property
    def n_folds(self) -> int | None:
        if self.confirm is not None and self.confirm.n_folds:
            return self.confirm.n_folds
        for arm in self.arms.values():
            k = _as_int(arm.attrs.get("n_folds"))
            if k:
                return k
        return None

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
        return sorted(names, key=_arm_order)


# ----------------------------------------------------------------------------- helpers


def _arm_order(arm: str) -> tuple[int, str]:
    return (ARMS.index(arm) if arm in ARMS else len(ARMS), arm)


def _as_int(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and math.isfinite(x) and x == int(x):
        return int(x)
    return None


def _as_float(x: Any) -> float:
    if isinstance(x, bool) or x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _as_float_list(x: Any) -> list[float]:
    if not isinstance(x, list | tuple):
        return []
    return [_as_float(v) for v in x]


def _as_dict(x: Any) -> dict[str, Any]:
    return {str(k): v for k, v in x.items()} if isinstance(x, dict) else {}


def _as_str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _storage_description(storage: Any) -> str:
    if isinstance(storage, str):
        return redact_url(storage)
    for obj in (storage, getattr(storage, "_backend", None)):
        url = getattr(obj, "url", None)
        if isinstance(url, str):
            return redact_url(url)
    return f"{type(storage).__name__} (not a URL)"


def _resolve_storage(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    if not isinstance(storage, str):
        return storage
    # The driver's opener: the same URL checks and SQLite lock timeout, and never a new database.
    try:
        return open_storage(storage, must_exist=True)
    except InputError as e:  # e.g. no such SQLite file: for the report, no study to be found
        raise StudyNotFoundError(str(e)) from None


def _fmt(x: float | None, digits: int = 4, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s) or s <= 0:
        return "0 s"
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def esc(x: Any) -> str:
    """HTML-escape anything (quotes included)."""
    return html.escape("" if x is None else str(x), quote=True)


# ----------------------------------------------------------------------------- extraction


def _fold_scores(t: FrozenTrial) -> list[float]:
    scores = _as_float_list(t.user_attrs.get("fold_scores"))
    if scores:
        return scores
    return [float(v) for _, v in sorted(t.intermediate_values.items())]


def _trial_row(t: FrozenTrial) -> dict[str, Any]:
    scores = _fold_scores(t)
    seconds = _as_float_list(t.user_attrs.get("fold_seconds"))
    done = _finite(scores)
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "value": _as_float(t.value) if t.state != TrialState.FAIL else math.nan,
        "fold_mean": float(np.mean(done)) if done else math.nan,
        "n_folds_done": len(done),
        "fold_trainings": len(seconds) if seconds else len(done),
        "seconds": float(np.nansum(seconds)) if seconds else 0.0,
        "fail_reason": _as_str(t.user_attrs.get("fail_reason")) or "",
        "device": _as_str(t.user_attrs.get("device")) or "",
        "datetime_start": t.datetime_start,
        "duration_s": t.duration.total_seconds() if t.duration is not None else math.nan,
    }
    for name, value in t.params.items():
        row[f"params_{name}"] = value
    return row


def _fold_rows(t: FrozenTrial) -> list[dict[str, Any]]:
    scores = _fold_scores(t)
    attrs = t.user_attrs
    columns = {
        "binary_f1": _as_float_list(attrs.get("fold_binary_f1")),
        "macro_f1": _as_float_list(attrs.get("fold_macro_f1")),
        "seconds": _as_float_list(attrs.get("fold_seconds")),
        "epochs": _as_float_list(attrs.get("fold_epochs")),
    }
    rows = []
    for i, s in enumerate(scores):
        row = {"number": t.number, "state": t.state.name, "fold": i, "score": s}
        for key, values in columns.items():
            row[key] = values[i] if i < len(values) else math.nan
        rows.append(row)
    return rows


_TRIAL_COLUMNS = [
    "number",
    "state",
    "value",
    "fold_mean",
    "n_folds_done",
    "fold_trainings",
    "seconds",
    "fail_reason",
    "device",
    "datetime_start",
    "duration_s",
]
_FOLD_COLUMNS = ["number", "state", "fold", "score", "binary_f1", "macro_f1", "seconds", "epochs"]


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in columns:
        if c not in df.columns:
            df[c] = pd.Series(dtype=float)
    return df[columns + [c for c in df.columns if c not in columns]]


def class_report(y_true: Sequence[int], y_pred: Sequence[int], source: str) -> ClassReport:
    """Score 18-class out-of-fold predictions and break them down by 9-class label.

    Per-class F1 is ``2·TP / (2·TP + FP + FN)``; a class absent from both truth and
    predictions gets NaN (the competition's macro F1 averages over the present classes).
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
    k = len(NINE_CLASSES)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t9, p9), 1)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)
    s = score_indices(t18, p18)
    return ClassReport(
        source=source,
        n=int(t18.size),
        score=s.score,
        binary_f1=s.binary_f1,
        macro_f1=s.macro_f1,
        per_class_f1={c: float(v) for c, v in zip(NINE_CLASSES, f1, strict=True)},
        confusion=cm,
    )


def _oof_lists(oof: Any) -> tuple[list[int], list[int]] | None:
    oof = _as_dict(oof)
    yt, yp = oof.get("y_true"), oof.get("y_pred")
    if not isinstance(yt, list) or not isinstance(yp, list) or not yt or len(yt) != len(yp):
        return None
    if not all(_as_int(v) is not None for v in yt + yp):
        return None
    return [int(v) for v in yt], [int(v) for v in yp]


def _safe_class_report(
    pairs: list[tuple[list[int], list[int]]], source: str, warnings: list[str]
) -> ClassReport | None:
    if not pairs:
        return None
    yt = [v for p in pairs for v in p[0]]
    yp = [v for p in pairs for v in p[1]]
    try:
        return class_report(yt, yp, source)
    except ValueError as e:
        warnings.append(f"Out-of-fold predictions of {source} are unusable: {e}")
        return None


def _best_trial(study: optuna.Study, trials: list[FrozenTrial]) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and math.isfinite(_as_float(t.value))]
    if not complete:
        return None
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return max(complete, key=lambda t: (sign * float(t.value), -t.number))  # type: ignore[arg-type]


def _importances(study: optuna.Study, n_complete: int) -> tuple[dict[str, float] | None, str]:
    if n_complete < 2:
        return None, f"needs at least 2 complete trials, has {n_complete}"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as e:  # optuna raises on degenerate spaces; say why instead of crashing
        return None, f"could not be computed ({type(e).__name__}: {e})"
    imp = {k: float(v) for k, v in imp.items() if math.isfinite(float(v))}
    if not imp:
        return None, "no parameter varied across the complete trials"
    return imp, f"fANOVA over {n_complete} complete trials"


def _is_budget_skip(t: FrozenTrial) -> bool:
    reason = t.user_attrs.get("fail_reason")
    return t.state == TrialState.FAIL and isinstance(reason, str) and reason.startswith(BUDGET_SKIP_PREFIX)


def _extract_arm(study: optuna.Study, arm: str, warnings: list[str]) -> ArmData:
    all_trials = study.get_trials(deepcopy=False)
    trials = [t for t in all_trials if not _is_budget_skip(t)]
    rows = [_trial_row(t) for t in trials]
    fold_rows = [r for t in trials for r in _fold_rows(t)]
    param_log: dict[str, bool] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, FloatDistribution | IntDistribution):
                param_log.setdefault(name, bool(dist.log))
    best_t = _best_trial(study, trials)
    best = None
    oof_report = None
    if best_t is not None:
        ua = best_t.user_attrs
        best = BestTrial(
            number=best_t.number,
            value=float(best_t.value),  # type: ignore[arg-type]
            params=dict(best_t.params),
            fold_scores=_fold_scores(best_t),
            fold_binary_f1=_as_float_list(ua.get("fold_binary_f1")),
            fold_macro_f1=_as_float_list(ua.get("fold_macro_f1")),
            fold_weights=[
                {str(k): _as_float(v) for k, v in _as_dict(w).items()} for w in (ua.get("fold_weights") or [])
            ]
            if isinstance(ua.get("fold_weights"), list)
            else [],
            weight_trajectory=[
                {str(k): _as_float_list(v) for k, v in _as_dict(w).items()}
                for w in (ua.get("weight_trajectory") or [])
            ]
            if isinstance(ua.get("weight_trajectory"), list)
            else [],
            fold_seconds=_as_float_list(ua.get("fold_seconds")),
            device=_as_str(ua.get("device")),
        )
        oof = _oof_lists(ua.get("oof"))
        oof_report = _safe_class_report(
            [oof] if oof else [], f"{arm} search trial #{best_t.number}", warnings
        )
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    importances, note = _importances(study, n_complete)
    return ArmData(
        arm=arm,
        study_name=study.study_name,
        attrs=dict(study.user_attrs),
        trials=_frame(rows, _TRIAL_COLUMNS),
        folds=_frame(fold_rows, _FOLD_COLUMNS),
        best=best,
        param_log=param_log,
        importances=importances,
        importance_note=note,
        oof_report=oof_report,
        budget_skips=len(all_trials) - len(trials),
    )


def _extract_confirm(study: optuna.Study, warnings: list[str]) -> ConfirmData:
    attrs = dict(study.user_attrs)
    trials = study.get_trials(deepcopy=False)
    rows, score_rows = [], []
    params: dict[str, dict[str, Any]] = {}
    oofs: dict[str, list[tuple[list[int], list[int]]]] = {}
    seen: dict[tuple[str, int], int] = {}
    for t in trials:
        ua = t.user_attrs
        arm = _as_str(ua.get("arm")) or ""
        seed = _as_int(ua.get("seed"))
        row = _trial_row(t)
        row.update({"arm": arm, "seed": seed if seed is not None else -1})
        rows.append(row)
        if t.state != TrialState.COMPLETE or not arm or seed is None:
            continue
        if (arm, seed) in seen:
            warnings.append(
                f"Confirmation study has more than one finished trial for arm {arm}, seed {seed} "
                f"(#{seen[(arm, seed)]} and #{t.number}); the later one is used."
            )
            score_rows = [r for r in score_rows if not (r["arm"] == arm and r["seed"] == seed)]
            oofs[arm] = [o for o in oofs.get(arm, []) if o[2] != seed]  # type: ignore[misc]
        seen[(arm, seed)] = t.number
        for r in _fold_rows(t):
            r.update({"arm": arm, "seed": seed})
            score_rows.append(r)
        params.setdefault(arm, _as_dict(ua.get("params")))
        oof = _oof_lists(ua.get("oof"))
        if oof:
            oofs.setdefault(arm, []).append((*oof, seed))  # type: ignore[arg-type]
    arms = (
        [a for a in (attrs.get("arms") or []) if isinstance(a, str)]
        if isinstance(attrs.get("arms"), list)
        else []
    )
    arms += sorted({r["arm"] for r in rows if r["arm"] and r["arm"] not in arms}, key=_arm_order)
    seeds = (
        [s for s in (attrs.get("seeds") or []) if _as_int(s) is not None]
        if isinstance(attrs.get("seeds"), list)
        else []
    )
    seeds += sorted({r["seed"] for r in rows if r["seed"] >= 0 and r["seed"] not in seeds})
    n_folds = _as_int(attrs.get("n_folds"))
    scores = _frame(
        score_rows, ["arm", "seed", "fold", "score", "binary_f1", "macro_f1", "seconds", "number"]
    )
    if n_folds is None and len(scores):
        n_folds = int(scores["fold"].max()) + 1
    reports = {}
    for arm, lst in oofs.items():
        rep = _safe_class_report(
            [(o[0], o[1]) for o in lst], f"{arm} confirmation, {len(lst)} seed(s)", warnings
        )
        if rep is not None:
            reports[arm] = rep
    return ConfirmData(
        study_name=study.study_name,
        attrs=attrs,
        arms=arms,
        seeds=[int(s) for s in seeds],
        n_folds=n_folds,
        trials=_frame(rows, _TRIAL_COLUMNS + ["arm", "seed"]),
        scores=scores,
        params=params,
        oof_reports=reports,
    )


def _pairs_frame(sa: pd.DataFrame, sb: pd.DataFrame) -> pd.DataFrame:
    merged = sa.merge(sb, on=["seed", "fold"], suffixes=("_a", "_b"))
    out = pd.DataFrame(
        {"seed": merged["seed"], "fold": merged["fold"], "a": merged["score_a"], "b": merged["score_b"]}
    )
    out = out[np.isfinite(out["a"].astype(float)) & np.isfinite(out["b"].astype(float))]
    out = out.sort_values(["seed", "fold"]).reset_index(drop=True)
    out["diff"] = out["b"] - out["a"]
    return out


def _compare(a: str, b: str, data: ReportData, rope: float) -> ArmComparison:
    empty = pd.DataFrame(columns=["seed", "fold", "a", "b", "diff"])
    confirm = data.confirm
    if confirm is not None and len(confirm.scores):
        s = confirm.scores
        pairs = _pairs_frame(
            s[s["arm"] == a][["seed", "fold", "score"]], s[s["arm"] == b][["seed", "fold", "score"]]
        )
        k = confirm.n_folds
        if len(pairs) >= 2 and k is not None and k >= 2:
            n_seeds = pairs["seed"].nunique()
            note = (
                f"{len(pairs)} paired scores from the confirmation study ({n_seeds} seed(s) × {k} folds): "
                f"each arm's best configuration re-trained on fresh fold splits."
            )
            return ArmComparison(
                a,
                b,
                "confirmation",
                pairs,
                paired_comparison(pairs["a"], pairs["b"], n_folds=k, rope=rope),
                note,
            )
    # Fallback: the best search trials of both arms on the search split.
    arm_a, arm_b = data.arms.get(a), data.arms.get(b)
    if arm_a is None or arm_b is None or arm_a.best is None or arm_b.best is None:
        missing = [x for x, d in ((a, arm_a), (b, arm_b)) if d is None or d.best is None]
        return ArmComparison(
            a,
            b,
            "none",
            empty,
            None,
            f"No confirmation scores and no complete search trial for {', '.join(missing)}: nothing to compare yet.",
        )
    seed_a, seed_b = _as_int(arm_a.attrs.get("seed")), _as_int(arm_b.attrs.get("seed"))
    k = _as_int(arm_a.attrs.get("n_folds")) or len(arm_a.best.fold_scores)
    if seed_a != seed_b or _as_int(arm_b.attrs.get("n_folds")) not in (None, k):
        return ArmComparison(
            a,
            b,
            "none",
            empty,
            None,
            f"No confirmation scores, and the {a} and {b} searches used different fold splits "
            f"(seed {seed_a} vs {seed_b}): their fold scores cannot be paired.",
        )
    seed = seed_a if seed_a is not None else 0
    fa = pd.DataFrame(
        {"seed": seed, "fold": range(len(arm_a.best.fold_scores)), "score": arm_a.best.fold_scores}
    )
    fb = pd.DataFrame(
        {"seed": seed, "fold": range(len(arm_b.best.fold_scores)), "score": arm_b.best.fold_scores}
    )
    pairs = _pairs_frame(fa, fb)
    if len(pairs) < 2 or k < 2:
        return ArmComparison(
            a, b, "none", pairs, None, "Fewer than 2 paired fold scores: nothing to compare yet."
        )
    note = (
        f"SELECTION-BIASED: no confirmation scores, so these are the {len(pairs)} fold scores of each arm's best "
        f"search trial (#{arm_a.best.number} vs #{arm_b.best.number}). The best of many noisy trials "
        f"overestimates its own score, and more so for the arm with more or noisier trials. "
        f"Run `cmi-study confirm` for an honest comparison."
    )
    return ArmComparison(
        a, b, "search", pairs, paired_comparison(pairs["a"], pairs["b"], n_folds=k, rope=rope), note
    )


def _comparison_pairs(arms: list[str]) -> list[tuple[str, str]]:
    if "fixed" in arms:
        return [("fixed", b) for b in arms if b != "fixed"]
    return [(arms[0], b) for b in arms[1:]]


def _check_consistency(data: ReportData) -> None:
    keys = ("n_folds", "seed", "epochs", "preset", "n_trials")
    for key in keys:
        values = {a: d.attrs.get(key) for a, d in data.arms.items() if key in d.attrs}
        if len({repr(v) for v in values.values()}) > 1:
            listed = ", ".join(f"{a}: {v}" for a, v in values.items())
            data.warnings.append(f"Arms differ in {key} ({listed}): the comparison may not be like for like.")
    prints = {a: _as_dict(d.attrs.get("data")).get("fingerprint") for a, d in data.arms.items()}
    if data.confirm is not None:
        prints[CONFIRM] = _as_dict(data.confirm.attrs.get("data")).get("fingerprint")
    known = {k: v for k, v in prints.items() if v}
    if len(set(known.values())) > 1:
        listed = ", ".join(f"{a}: {v}" for a, v in known.items())
        data.warnings.append(f"Studies were run on different data (fingerprints {listed}).")


def _data_info(data: ReportData) -> DataInfo | None:
    sources = [d.attrs for d in data.arms.values()]
    if data.confirm is not None:
        sources.append(data.confirm.attrs)
    for attrs in sources:
        d = _as_dict(attrs.get("data"))
        if d:
            return DataInfo(
                source=_as_str(d.get("source")),
                n_sequences=_as_int(d.get("n_sequences")),
                n_subjects=_as_int(d.get("n_subjects")),
                n_rows=_as_int(d.get("n_rows")),
                fingerprint=_as_str(d.get("fingerprint")),
            )
    return None


def _resolve_name(name: str, existing: set[str]) -> str:
    wanted = {f"{name}-{a}" for a in (*ARMS, CONFIRM)}
    if wanted & existing:
        return name
    for suffix in (*ARMS, CONFIRM):  # accept "NAME-fixed" for "NAME"
        if name.endswith(f"-{suffix}"):
            base = name[: -len(suffix) - 1]
            if {f"{base}-{a}" for a in (*ARMS, CONFIRM)} & existing:
                return base
    return name


def extract(
    storage: str | optuna.storages.BaseStorage, study_name: str, *, rope: float = 0.005
) -> ReportData:
    """Read every study of ``study_name`` from ``storage`` into plain data.

    Raises :class:`StudyNotFoundError` (a ValueError) naming the studies that exist
    when none of ``NAME-fixed``, ``NAME-uncertainty``, ``NAME-direct``, ``NAME-confirm``
    is there. Everything else that is missing is recorded, not raised.
    """
    url = _storage_description(storage)
    backend = _resolve_storage(storage)
    existing = sorted(optuna.get_all_study_names(storage=backend))
    name = _resolve_name(study_name, set(existing))
    present = [a for a in (*ARMS, CONFIRM) if f"{name}-{a}" in existing]
    if not present:
        listing = ", ".join(existing) if existing else "(none: the storage holds no studies)"
        raise StudyNotFoundError(
            f"no study named {study_name!r} in {url}: expected one of "
            f"{', '.join(f'{name}-{a}' for a in (*ARMS, CONFIRM))}. Studies in this storage: {listing}"
        )
    warnings: list[str] = []
    arms: dict[str, ArmData] = {}
    for arm in ARMS:
        if arm in present:
            study = optuna.load_study(study_name=f"{name}-{arm}", storage=backend)
            arms[arm] = _extract_arm(study, arm, warnings)
    confirm = None
    if CONFIRM in present:
        confirm = _extract_confirm(
            optuna.load_study(study_name=f"{name}-{CONFIRM}", storage=backend), warnings
        )
    data = ReportData(
        name=name,
        storage_url=url,
        existing_studies=existing,
        arms=arms,
        confirm=confirm,
        comparisons=[],
        data_info=None,
        warnings=warnings,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    data.data_info = _data_info(data)
    _check_consistency(data)
    if not arms:
        data.warnings.append(f"No arm study ({', '.join(f'{name}-{a}' for a in ARMS)}) in this storage.")
    if confirm is None:
        data.warnings.append(
            f"No confirmation study {name}-{CONFIRM} yet: any verdict below rests on the best search trials, "
            f"which are selection-biased. Run `cmi-study confirm` for an honest comparison."
        )
    elif not len(confirm.scores):
        data.warnings.append(f"The confirmation study {name}-{CONFIRM} has no finished trial yet.")
    for arm, d in arms.items():
        running = d.state_counts.get("RUNNING", 0)
        if running:
            data.warnings.append(f"{arm}: {running} trial(s) still running; numbers may change.")
        if d.best is None and len(d.trials):
            data.warnings.append(f"{arm}: no complete trial yet ({_state_summary(d.state_counts)}).")
    names = data.arm_names()
    data.comparisons = (
        [_compare(a, b, data, rope) for a, b in _comparison_pairs(names)] if len(names) >= 2 else []
    )
    return data


def _state_summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n) or "no trials"


# ----------------------------------------------------------------------------- figures

_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=60, b=50), font=dict(size=12))


def _color(arm: str) -> str:
    return ARM_COLORS.get(arm, "#7F7F7F")


def fig_comparison(cmp: ArmComparison) -> go.Figure | None:
    """Left: paired scores of a and b, one line per (seed, fold). Right: the differences with CI and rope."""
    if cmp.comparison is None or not len(cmp.pairs):
        return None
    c, p = cmp.comparison, cmp.pairs
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.4, 0.6],
        subplot_titles=("Paired fold scores (one line per seed × fold)", f"Difference {cmp.b} − {cmp.a}"),
    )
    xs, ys = [], []
    for ya, yb in zip(p["a"], p["b"], strict=True):
        xs += [0, 1, None]
        ys += [ya, yb, None]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line=dict(color="rgba(120,120,120,0.45)", width=1),
            hoverinfo="skip",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    hover = [f"seed {s}, fold {f}" for s, f in zip(p["seed"], p["fold"], strict=True)]
    for x, arm, col in ((0, cmp.a, "a"), (1, cmp.b, "b")):
        fig.add_trace(
            go.Scatter(
                x=[x] * len(p),
                y=p[col],
                mode="markers",
                name=arm,
                text=hover,
                marker=dict(color=_color(arm), size=8),
                hovertemplate="%{text}<br>score %{y:.4f}<extra>" + esc(arm) + "</extra>",
            ),
            row=1,
            col=1,
        )
    fig.update_xaxes(tickvals=[0, 1], ticktext=[cmp.a, cmp.b], range=[-0.4, 1.4], row=1, col=1)
    fig.update_yaxes(title_text="competition score", row=1, col=1)
    seeds = sorted(p["seed"].unique())
    xpos = (
        np.array([seeds.index(s) for s in p["seed"]], dtype=float)
        + (p["fold"].to_numpy() - p["fold"].mean()) * 0.12
    )
    fig.add_trace(
        go.Scatter(
            x=xpos,
            y=p["diff"],
            mode="markers",
            text=hover,
            name="b − a per pair",
            showlegend=False,
            marker=dict(
                color=np.where(p["diff"] >= 0, _color(cmp.b), _color(cmp.a)),
                size=8,
                line=dict(width=0.5, color="white"),
            ),
            hovertemplate="%{text}<br>difference %{y:+.4f}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    # Shapes after the trace: plotly skips row/col shapes on subplots that are still empty.
    span = [*p["diff"].tolist(), c.ci_low, c.ci_high, -c.rope, c.rope, 0.0]
    pad = 0.08 * (max(span) - min(span) or 0.01)
    fig.add_hrect(
        y0=c.ci_low,
        y1=c.ci_high,
        fillcolor="rgba(76,120,168,0.18)",
        line_width=0,
        layer="below",
        row=1,
        col=2,
    )
    fig.add_hrect(
        y0=-c.rope, y1=c.rope, fillcolor="rgba(84,162,75,0.12)", line_width=0, layer="below", row=1, col=2
    )
    fig.add_hline(y=0, line=dict(color="black", width=1), row=1, col=2)
    fig.add_hline(
        y=c.mean_diff,
        line=dict(color="#1f3b73", width=2),
        layer="below",
        annotation_text=f"mean {c.mean_diff:+.4f}, {int(round(100 * (1 - c.alpha)))}% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
        annotation_position="top left",
        row=1,
        col=2,
    )
    fig.update_yaxes(range=[min(span) - pad, max(span) + pad], zeroline=False, row=1, col=2)
    fig.update_xaxes(tickvals=list(range(len(seeds))), ticktext=[f"seed {s}" for s in seeds], row=1, col=2)
    fig.update_yaxes(title_text=f"{cmp.b} − {cmp.a}  (green band: ±rope {c.rope})", row=1, col=2)
    title = f"{cmp.b} vs {cmp.a}: {cmp.verdict_words()}"
    if cmp.selection_biased:
        title += " (selection-biased: best search trials)"
    fig.update_layout(title=title, height=430, legend=dict(orientation="h", y=-0.15), **_LAYOUT)
    return fig


def fig_best_so_far(arms: dict[str, ArmData]) -> go.Figure | None:
    """Best complete score so far against trial number, one line per arm."""
    fig = go.Figure()
    for arm, d in sorted(arms.items(), key=lambda kv: _arm_order(kv[0])):
        t = d.trials[(d.trials["state"] == "COMPLETE") & np.isfinite(d.trials["value"].astype(float))]
        if not len(t):
            continue
        t = t.sort_values("number")
        fig.add_trace(
            go.Scatter(
                x=t["number"],
                y=t["value"].cummax(),
                mode="lines",
                line_shape="hv",
                name=f"{arm} best so far",
                line=dict(color=_color(arm), width=2.5),
                legendgroup=arm,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t["number"],
                y=t["value"],
                mode="markers",
                name=f"{arm} trials",
                legendgroup=arm,
                marker=dict(color=_color(arm), size=6, opacity=0.45),
                hovertemplate="trial #%{x}<br>CV score %{y:.4f}<extra>" + esc(arm) + "</extra>",
            )
        )
    if not fig.data:
        return None
    last = max(max(tr.x) for tr in fig.data)
    fig.update_layout(
        title="Best CV score so far by trial number",
        xaxis=dict(title="trial number", tickformat="d", dtick=max(1, math.ceil(last / 10))),
        yaxis_title="mean CV score",
        height=420,
        **_LAYOUT,
    )
    return fig


def fig_trial_scores(arms: dict[str, ArmData]) -> go.Figure | None:
    """Every trial of every arm: complete (box + dots), pruned/running (mean of folds so far), failed (✕ below)."""
    names = sorted((a for a, d in arms.items() if len(d.trials)), key=_arm_order)
    if not names:
        return None
    fig = go.Figure()
    all_scores = _finite(
        v for a in names for v in arms[a].trials["fold_mean"].tolist() + arms[a].trials["value"].tolist()
    )
    lo = min(all_scores) if all_scores else 0.0
    hi = max(all_scores) if all_scores else 1.0
    fail_y = lo - 0.08 * max(hi - lo, 0.01)
    styles = {
        "COMPLETE": dict(symbol="circle", size=8),
        "PRUNED": dict(symbol="circle-open", size=9),
        "RUNNING": dict(symbol="diamond-open", size=9),
        "FAIL": dict(symbol="x", size=9),
    }
    shown: set[str] = set()
    for i, arm in enumerate(names):
        t = arms[arm].trials
        done = t[t["state"] == "COMPLETE"]
        if len(done):
            fig.add_trace(
                go.Box(
                    x=np.full(len(done), i, dtype=float),
                    y=done["value"],
                    name=f"{arm} complete",
                    boxpoints=False,
                    marker_color=_color(arm),
                    width=0.5,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        for state, style in styles.items():
            s = t[t["state"] == state]
            if not len(s):
                continue
            jitter = ((s["number"].to_numpy() * 0.618) % 1.0 - 0.5) * 0.35
            if state == "COMPLETE":
                y = s["value"]
                text = [f"trial #{n}: CV score {v:.4f}" for n, v in zip(s["number"], s["value"], strict=True)]
            elif state == "FAIL":
                y = np.full(len(s), fail_y)
                text = [
                    f"trial #{n} failed: {esc(r) or 'no reason recorded'}"
                    for n, r in zip(s["number"], s["fail_reason"], strict=True)
                ]
            else:
                y = s["fold_mean"]
                text = [
                    f"trial #{n} {state.lower()}: mean of {k} fold(s) {_fmt(m)}"
                    for n, k, m in zip(s["number"], s["n_folds_done"], s["fold_mean"], strict=True)
                ]
            fig.add_trace(
                go.Scatter(
                    x=i + jitter,
                    y=y,
                    mode="markers",
                    text=text,
                    hovertemplate="%{text}<extra></extra>",
                    name=state.lower() if state != "FAIL" else "failed (drawn below, no score)",
                    legendgroup=state,
                    showlegend=state not in shown,
                    marker=dict(color=_color(arm), line=dict(width=1.5, color=_color(arm)), **style),
                )
            )
            shown.add(state)
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=names, range=[-0.6, len(names) - 0.4])
    fig.update_layout(
        title="Trial scores per arm (pruned/running: mean of the folds finished so far)",
        yaxis_title="mean CV score",
        height=440,
        **_LAYOUT,
    )
    return fig


def fixed_reference_weights(arms: dict[str, ArmData]) -> dict[str, float]:
    """Mean over folds of the best fixed trial's effective weights (term → weight)."""
    d = arms.get("fixed")
    if d is None or d.best is None or not d.best.fold_weights:
        return {}
    out = {}
    for term in {k for w in d.best.fold_weights for k in w}:
        vals = _finite(w.get(term, math.nan) for w in d.best.fold_weights)
        if vals:
            out[term] = float(np.mean(vals))
    return out


def fig_weights(arm: ArmData, reference: dict[str, float] | None = None) -> go.Figure | None:
    """Effective weight of each loss term over epochs for the best trial: one line per fold, fixed as dashes."""
    if arm.best is None or not arm.best.weight_trajectory:
        return None
    traj = arm.best.weight_trajectory
    terms = [t for t in TERMS if any(t in w for w in traj)] + sorted(
        {k for w in traj for k in w} - set(TERMS)
    )
    if not terms:
        return None
    cols = min(len(terms), 4)
    n_epochs = max((len(v) for w in traj for v in w.values()), default=1)
    fig = make_subplots(rows=1, cols=cols, subplot_titles=terms, shared_xaxes=False, horizontal_spacing=0.06)
    palette = [
        "#4C78A8",
        "#F58518",
        "#54A24B",
        "#E45756",
        "#72B7B2",
        "#B279A2",
        "#FF9DA6",
        "#9D755D",
        "#BAB0AC",
        "#EECA3B",
    ]
    for j, term in enumerate(terms[:cols]):
        for f, w in enumerate(traj):
            y = w.get(term)
            if not y:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(y) + 1)),
                    y=y,
                    mode="lines+markers",  # markers keep 1-epoch runs visible
                    marker=dict(size=5),
                    name=f"fold {f}",
                    legendgroup=f"fold {f}",
                    showlegend=j == 0,
                    line=dict(color=palette[f % len(palette)], width=1.8),
                    hovertemplate=f"fold {f}, epoch %{{x}}<br>{term} weight %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=j + 1,
            )
        ref = (reference or {}).get(term)
        if ref is not None and math.isfinite(ref):
            fig.add_hline(
                y=ref,
                line=dict(color="black", dash="dash", width=1.5),
                row=1,
                col=j + 1,
                annotation_text=f"best fixed {ref:.3g}",
                annotation_position="top right",
            )
        fig.update_xaxes(
            title_text="epoch", tickformat="d", dtick=max(1, math.ceil(n_epochs / 8)), row=1, col=j + 1
        )
    fig.update_yaxes(title_text="effective weight", row=1, col=1)
    fig.update_layout(
        title=f"{arm.arm}: effective loss weights of the best trial #{arm.best.number} (dashed: best fixed trial)",
        height=380,
        legend=dict(orientation="h", y=-0.2),
        **_LAYOUT,
    )
    return fig


def _complete_with(arm: ArmData, params: Sequence[str]) -> pd.DataFrame:
    t = arm.trials
    cols = [f"params_{p}" for p in params]
    if not len(t) or any(c not in t.columns for c in cols):
        return t.iloc[0:0]
    t = t[t["state"] == "COMPLETE"]
    return t.dropna(subset=cols + ["value"])


def fig_fixed_landscape(fixed: ArmData) -> go.Figure | None:
    """Score of every complete fixed-weight trial over alpha × kl_weight (colour = CV score)."""
    t = _complete_with(fixed, ("alpha", "kl_weight"))
    if not len(t):
        return None
    ncw = (
        t["params_nine_class_loss_weight"]
        if "params_nine_class_loss_weight" in t.columns
        else pd.Series(np.nan, index=t.index)
    )
    text = [
        f"trial #{n}<br>alpha {a:.3f}, kl_weight {k:.3f}<br>nine_class_loss_weight {_fmt(w, 3)}<br>CV score {v:.4f}"
        for n, a, k, w, v in zip(
            t["number"], t["params_alpha"], t["params_kl_weight"], ncw, t["value"], strict=True
        )
    ]
    fig = go.Figure(
        go.Scatter(
            x=t["params_alpha"],
            y=t["params_kl_weight"],
            mode="markers",
            text=text,
            hovertemplate="%{text}<extra></extra>",
            marker=dict(
                color=t["value"],
                colorscale="Viridis",
                size=13,
                showscale=True,
                colorbar=dict(title="CV score"),
                line=dict(width=0.5, color="white"),
            ),
            name="complete trials",
            showlegend=False,
        )
    )
    if fixed.best is not None and "alpha" in fixed.best.params and "kl_weight" in fixed.best.params:
        fig.add_trace(
            go.Scatter(
                x=[fixed.best.params["alpha"]],
                y=[fixed.best.params["kl_weight"]],
                mode="markers",
                name=f"best #{fixed.best.number}",
                marker=dict(
                    symbol="star", size=22, color="rgba(0,0,0,0)", line=dict(width=2, color="crimson")
                ),
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title="Fixed weights: CV score over alpha × kl_weight (each dot a complete trial)",
        xaxis_title="alpha",
        yaxis_title="kl_weight",
        height=460,
        legend=dict(orientation="h", y=-0.18, x=0),
        **_LAYOUT,
    )
    return fig


def fig_slices(arm: ArmData, params: Sequence[str] | None = None) -> go.Figure | None:
    """CV score against each parameter (one panel per parameter), complete trials only."""
    t = arm.trials[arm.trials["state"] == "COMPLETE"] if len(arm.trials) else arm.trials
    if params is None:
        order = [*FIXED_WEIGHT_PARAMS, "uncertainty_init_value", "weight_lr_multiplier", *SHARED_PARAMS]
        present = [c[len("params_") :] for c in t.columns if c.startswith("params_")]
        params = [p for p in order if p in present] + sorted(p for p in present if p not in order)
    params = [p for p in params if f"params_{p}" in t.columns and t[f"params_{p}"].notna().any()]
    if not len(t) or not params:
        return None
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=params, vertical_spacing=0.16, horizontal_spacing=0.07
    )
    for i, p in enumerate(params):
        r, c = i // cols + 1, i % cols + 1
        s = t.dropna(subset=[f"params_{p}"])
        fig.add_trace(
            go.Scatter(
                x=s[f"params_{p}"],
                y=s["value"],
                mode="markers",
                showlegend=False,
                marker=dict(
                    color=s["number"], colorscale="Blues", size=8, line=dict(width=0.5, color="#333")
                ),
                text=[f"trial #{n}" for n in s["number"]],
                hovertemplate="%{text}<br>" + esc(p) + " %{x:.4g}<br>score %{y:.4f}<extra></extra>",
            ),
            row=r,
            col=c,
        )
        if arm.param_log.get(p):
            fig.update_xaxes(type="log", row=r, col=c)
    fig.update_yaxes(title_text="CV score", col=1)
    fig.update_layout(
        title=f"{arm.arm}: CV score against each parameter (darker = later trial)",
        height=300 * rows + 80,
        **_LAYOUT,
    )
    return fig


def fig_importances(arms: dict[str, ArmData]) -> go.Figure | None:
    """fANOVA parameter importances, one panel per arm that has them."""
    names = sorted((a for a, d in arms.items() if d.importances), key=_arm_order)
    if not names:
        return None
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.15)
    for j, arm in enumerate(names):
        imp = sorted(arms[arm].importances.items(), key=lambda kv: kv[1])  # type: ignore[union-attr]
        fig.add_trace(
            go.Bar(
                x=[v for _, v in imp],
                y=[k for k, _ in imp],
                orientation="h",
                marker_color=_color(arm),
                showlegend=False,
                hovertemplate="%{y}: %{x:.2f}<extra>" + esc(arm) + "</extra>",
            ),
            row=1,
            col=j + 1,
        )
        fig.update_xaxes(title_text="importance (sums to 1)", range=[0, 1], row=1, col=j + 1)
    fig.update_layout(title="Parameter importances (fANOVA on complete trials)", height=360, **_LAYOUT)
    return fig


def _pad(values: Sequence[float], n: int) -> list[float]:
    return list(values[:n]) + [math.nan] * (n - len(values[:n]))


def metric_parts_frame(data: ReportData) -> pd.DataFrame:
    """Per arm and fold: score, binary F1, macro F1 of its best configuration (confirmation preferred)."""
    frames = []
    for arm in data.arm_names():
        if data.confirm is not None and (data.confirm.scores["arm"] == arm).any():
            s = data.confirm.scores[data.confirm.scores["arm"] == arm]
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": "confirmation",
                        "score": s["score"],
                        "binary_f1": s["binary_f1"],
                        "macro_f1": s["macro_f1"],
                    }
                )
            )
        elif arm in data.arms and data.arms[arm].best is not None:
            b = data.arms[arm].best
            n = len(b.fold_scores)
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "source": f"search trial #{b.number}",
                        "score": b.fold_scores,
                        "binary_f1": _pad(b.fold_binary_f1, n),
                        "macro_f1": _pad(b.fold_macro_f1, n),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["arm", "source", "score", "binary_f1", "macro_f1"])
    return pd.concat(frames, ignore_index=True)


def fig_metric_parts(parts: pd.DataFrame) -> go.Figure | None:
    """Fold-level binary F1, 9-class macro F1 and their mean (the score) for each arm."""
    if not len(parts):
        return None
    fig = go.Figure()
    labels = {"binary_f1": "binary F1", "macro_f1": "9-class macro F1", "score": "score"}
    for arm in sorted(parts["arm"].unique(), key=_arm_order):
        s = parts[parts["arm"] == arm]
        x, y = [], []
        for col, lab in labels.items():
            vals = s[col].astype(float)
            x += [lab] * int(vals.notna().sum())
            y += vals.dropna().tolist()
        if not y:
            continue
        fig.add_trace(
            go.Box(x=x, y=y, name=arm, marker_color=_color(arm), boxpoints="all", jitter=0.4, pointpos=0)
        )
    if not fig.data:
        return None
    fig.update_layout(
        boxmode="group",
        title="Metric parts per fold of each arm's best configuration",
        yaxis_title="F1 / score",
        height=420,
        **_LAYOUT,
    )
    return fig


def fig_per_class_f1(reports: dict[str, ClassReport]) -> go.Figure | None:
    """Out-of-fold F1 per 9-class label, grouped by arm."""
    if not reports:
        return None
    fig = go.Figure()
    for arm in sorted(reports, key=_arm_order):
        rep = reports[arm]
        fig.add_trace(
            go.Bar(
                x=list(NINE_CLASSES),
                y=[rep.per_class_f1[c] for c in NINE_CLASSES],
                name=arm,
                marker_color=_color(arm),
                hovertemplate="%{x}<br>F1 %{y:.3f}<extra>" + esc(arm) + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title="Out-of-fold F1 per 9-class label",
        yaxis=dict(title="F1", range=[0, 1]),
        xaxis=dict(tickangle=-30),
        height=460,
        **_LAYOUT,
    )
    return fig


def fig_confusion(arm: str, rep: ClassReport) -> go.Figure:
    """Row-normalised 9-class confusion matrix of out-of-fold predictions (counts on hover)."""
    cm = rep.confusion.astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    labels = list(NINE_CLASSES)
    fig = go.Figure(
        go.Heatmap(
            z=frac,
            x=labels,
            y=labels,
            customdata=rep.confusion,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            texttemplate="%{z:.2f}",
            textfont=dict(size=10),
            colorbar=dict(title="row share"),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} sequences (%{z:.1%} of the row)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="true label")
    fig.update_xaxes(tickangle=-35, title_text="predicted label")
    fig.update_layout(
        title=f"{arm}: 9-class confusion matrix ({rep.source}, {rep.n} sequences)",
        height=560,
        **{**_LAYOUT, "margin": dict(l=190, r=30, t=60, b=170)},
    )
    return fig


# ----------------------------------------------------------------------------- HTML


@dataclass
class _Page:
    """Collects figures while sections are written, so plotly.js is embedded once for all of them."""

    figures: list[tuple[str, go.Figure]] = field(default_factory=list)

    def figure(self, key: str, fig: go.Figure | None, missing: str) -> str:
        if fig is None:
            return f'<p class="missing">{esc(missing)}</p>'
        div_id = f"fig-{len(self.figures)}-{re.sub(r'[^A-Za-z0-9_-]', '-', key)}"
        self.figures.append((key, fig))
        body = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="figure">{body}</div>'


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """An HTML table; every cell is escaped unless wrapped in ``_Raw``."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else esc(c)}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _intro(text: str) -> str:
    return f'<p class="intro">{text}</p>'


def _warnings_html(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>'


def _data_html(data: ReportData) -> str:
    info = data.data_info
    k = data.n_folds
    if info is None:
        return '<p class="missing">No data description recorded in the studies (user attr <code>data</code>).</p>'
    if info.is_synthetic:
        what = (
            "the embedded <strong>synthetic</strong> data set (Kaggle schema, not the real competition data)"
        )
    elif info.source:
        what = f"Kaggle-format files in <code>{esc(info.source)}</code>"
    else:
        what = "an unrecorded data source"
    n = lambda x: f"{x:,}" if x is not None else "?"  # noqa: E731
    return (
        f"<p>Data: {what}; {n(info.n_sequences)} sequences from {n(info.n_subjects)} subjects "
        f"({n(info.n_rows)} rows), subject-grouped {k if k else '?'}-fold cross-validation. "
        f"Fingerprint <code>{esc(info.fingerprint or '?')}</code>.</p>"
    )


def _state_cell(d: ArmData) -> str:
    counts = d.state_counts
    text = " / ".join(str(counts.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))
    if d.budget_skips:
        text += f" (+{d.budget_skips} stepped aside: budget already taken by other workers)"
    return text


def _arms_table(data: ReportData) -> str:
    rows = []
    for arm in data.arm_names():
        d = data.arms.get(arm)
        c_sec = data.confirm.seconds(arm) if data.confirm else 0.0
        c_fold = data.confirm.fold_trainings(arm) if data.confirm else 0
        s_sec = d.seconds if d else 0.0
        s_fold = d.fold_trainings if d else 0
        total_fold = s_fold + c_fold
        confirmed = "—"
        if data.confirm is not None:
            cs = data.confirm.scores[data.confirm.scores["arm"] == arm]["score"].astype(float).dropna()
            if len(cs):
                sd = f" ± {cs.std(ddof=1):.4f}" if len(cs) > 1 else ""
                confirmed = f"{cs.mean():.4f}{sd} (n = {len(cs)})"
        rows.append(
            [
                _Raw(f'<span class="arm" style="color:{_color(arm)}">■</span> {esc(arm)}'),
                ARM_LABELS.get(arm, ""),
                d.budget if d and d.budget is not None else "—",
                _state_cell(d) if d else "no search study",
                _fmt(d.best.value) if d and d.best else "—",
                confirmed,
                f"{s_fold} + {c_fold}",
                f"{_fmt_seconds(s_sec)} + {_fmt_seconds(c_sec)}",
                _fmt_seconds((s_sec + c_sec) / total_fold) if total_fold else "—",
                d.attrs.get("epochs", "—") if d else "—",
            ]
        )
    if not rows:
        return '<p class="missing">No arm has any trial yet.</p>'
    return _table(
        [
            "arm",
            "weighting",
            "trial budget",
            "trials complete / pruned / failed / running",
            "best search CV score",
            "confirmation score (mean ± sd over folds)",
            "fold trainings (search + confirm)",
            "compute (search + confirm)",
            "per fold training",
            "max epochs",
        ],
        rows,
    )


def _comparison_table(cmp: ArmComparison) -> str:
    c = cmp.comparison
    assert c is not None
    level = int(round(100 * (1 - c.alpha)))
    return _table(
        ["quantity", "value"],
        [
            [f"mean difference ({cmp.b} − {cmp.a})", _fmt(c.mean_diff, signed=True)],
            [
                f"{level}% interval (corrected, t with {c.df} df)",
                f"[{_fmt(c.ci_low, signed=True)}, {_fmt(c.ci_high, signed=True)}]",
            ],
            ["corrected resampled t-test p (Nadeau–Bengio)", _fmt_p(c.p_value)],
            ["naive paired t-test p (ignores fold overlap; context only)", _fmt_p(c.naive_p_value)],
            [f"P({cmp.a} better by more than {c.rope})", _fmt(c.p_a_better, 3)],
            [f"P(practically equivalent, |difference| ≤ {c.rope})", _fmt(c.p_equivalent, 3)],
            [f"P({cmp.b} better by more than {c.rope})", _fmt(c.p_b_better, 3)],
            ["paired scores J (seeds × folds), K folds", f"{c.n}, K = {c.n_folds}"],
        ],
        cls="numbers",
    )


def verdict_sentence(cmp: ArmComparison) -> str:
    """One plain-text line: the verdict and the numbers behind it (used for dashboard notes too)."""
    c = cmp.comparison
    if c is None:
        return f"{cmp.b} vs {cmp.a}: no verdict. {cmp.note}"
    bias = " [SELECTION-BIASED: best search trials, no confirmation]" if cmp.selection_biased else ""
    return (
        f"{cmp.b} vs {cmp.a}: {cmp.verdict_words()}{bias}. Mean difference ({cmp.b} − {cmp.a}) {c.mean_diff:+.4f}, "
        f"{int(round(100 * (1 - c.alpha)))}% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], corrected p = {_fmt_p(c.p_value)}; "
        f"P({cmp.a} better) = {c.p_a_better:.3f}, P(equivalent within ±{c.rope}) = {c.p_equivalent:.3f}, "
        f"P({cmp.b} better) = {c.p_b_better:.3f}; J = {c.n} paired scores."
    )


def _verdict_html(data: ReportData) -> str:
    names = data.arm_names()
    if len(names) < 2:
        only = esc(names[0]) if names else "none"
        return f'<p class="missing">Only one arm ({only}) in this storage: there is nothing to compare yet. Run the other arm(s) with <code>cmi-study run --arms …</code>.</p>'
    out = []
    for cmp in data.comparisons:
        c = cmp.comparison
        cls = "verdict biased" if cmp.selection_biased else "verdict"
        if c is None:
            out.append(
                f'<div class="{cls}"><h3>{esc(cmp.b)} vs {esc(cmp.a)}: no verdict</h3><p>{esc(cmp.note)}</p></div>'
            )
            continue
        out.append(
            f'<div class="{cls}"><h3>{esc(ARM_LABELS.get(cmp.b, cmp.b))} vs {esc(ARM_LABELS.get(cmp.a, cmp.a))}: '
            f'<span class="word">{esc(cmp.verdict_words())}</span></h3>'
            f"<p>{esc(cmp.note)}</p>{_comparison_table(cmp)}</div>"
        )
    return "".join(out)


def _section(n: int, body: str) -> str:
    title = SECTION_TITLES[n]
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _headline(data: ReportData) -> str:
    return _section(
        0,
        _intro(
            "Does learning the loss weights beat tuning them by hand? Each arm had the same trial budget; the verdict "
            "compares the arms' best configurations re-trained on fresh splits (the confirmation study), using a "
            "cross-validation-aware test. <em>Practically equivalent</em> means the difference is confidently smaller "
            "than the region of practical equivalence (rope)."
        )
        + _warnings_html(data.warnings)
        + _data_html(data)
        + "<h3>Verdict</h3>"
        + _verdict_html(data)
        + "<h3>Arms, budgets and compute</h3>"
        + _arms_table(data),
    )


def _confirmation(data: ReportData, page: _Page) -> str:
    intro = _intro(
        "Each line joins the two arms' scores on the same seed and fold; lines that mostly slope the same way mean a "
        "consistent difference. On the right, each dot is one difference; the blue band is the interval of the mean "
        "difference (corrected for overlapping training sets), the green band is the rope."
    )
    parts = []
    if data.confirm is None:
        parts.append(
            f'<p class="missing">No confirmation study <code>{esc(data.name)}-confirm</code> yet: run '
            "<code>cmi-study confirm</code>. The comparison below (if any) uses the best search trials and is selection-biased.</p>"
        )
    else:
        c = data.confirm
        t = c.trials
        rows = []
        for arm in c.arms or sorted(set(t["arm"]), key=_arm_order):
            tt = t[t["arm"] == arm]
            done = sorted(int(s) for s in tt[tt["state"] == "COMPLETE"]["seed"])
            rows.append(
                [arm, ", ".join(map(str, done)) or "none", len(tt) - len(done), _fmt_seconds(c.seconds(arm))]
            )
        parts.append(
            f"<p>Confirmation study <code>{esc(c.study_name)}</code>: seeds {esc(', '.join(map(str, c.seeds)) or '?')}, "
            f"{esc(c.n_folds or '?')} folds each.</p>"
        )
        parts.append(_table(["arm", "seeds finished", "trials not finished", "compute"], rows))
    if not data.comparisons:
        parts.append('<p class="missing">No pair of arms to compare.</p>')
    for cmp in data.comparisons:
        parts.append(
            page.figure(f"compare-{cmp.a}-{cmp.b}", fig_comparison(cmp), f"{cmp.b} vs {cmp.a}: {cmp.note}")
        )
    return _section(1, intro + "".join(parts))


def _search(data: ReportData, page: _Page) -> str:
    intro = _intro(
        "How each arm's search progressed. A curve still rising at the end means the budget was too small for that "
        "arm. Below, every trial: pruned and running trials at the mean of the folds they finished, failed trials as "
        "crosses under the axis (hover for the reason)."
    )
    if not data.arms:
        return _section(2, intro + '<p class="missing">No arm study in this storage.</p>')
    parts = [
        page.figure(
            "best-so-far", fig_best_so_far(data.arms), "No complete trial in any arm yet: nothing to plot."
        ),
        page.figure("trial-scores", fig_trial_scores(data.arms), "No trials in any arm yet."),
    ]
    rows = []
    for arm, d in sorted(data.arms.items(), key=lambda kv: _arm_order(kv[0])):
        if d.best is None:
            rows.append([arm, "—", "—", f"no complete trial ({_state_summary(d.state_counts)})"])
            continue
        params = ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in d.best.params.items()
        )
        folds = ", ".join(_fmt(s) for s in d.best.fold_scores)
        rows.append([arm, f"#{d.best.number}", _fmt(d.best.value), f"{params}; folds: {folds}"])
    parts.append(
        "<h3>Best trial per arm</h3>"
        + _table(["arm", "trial", "CV score", "parameters and fold scores"], rows)
    )
    return _section(2, intro + "".join(parts))


def _weights(data: ReportData, page: _Page) -> str:
    intro = _intro(
        "What the learned schemes actually did: the effective weight of each loss term at the end of every epoch of "
        "the best trial, one line per fold. Dashed lines are the weights the best fixed trial used. Learned weights "
        "that settle near the fixed ones suggest the tuning found the same balance."
    )
    ref = fixed_reference_weights(data.arms)
    parts = []
    learned = [a for a in data.arms if a != "fixed"]
    if not learned:
        parts.append('<p class="missing">No learned-weight arm (uncertainty or direct) in this storage.</p>')
    for arm in sorted(learned, key=_arm_order):
        d = data.arms[arm]
        if d.best is None:
            missing = f"{arm}: no complete trial yet, so no weight trajectory to show."
        else:
            missing = f"{arm}: the best trial #{d.best.number} recorded no weight_trajectory."
        parts.append(page.figure(f"weights-{arm}", fig_weights(d, ref), missing))
    if learned and not ref:
        parts.append(
            '<p class="missing">No fixed-arm reference weights (no complete fixed trial with fold_weights).</p>'
        )
    return _section(3, intro + "".join(parts))


def _landscape(data: ReportData, page: _Page) -> str:
    intro = _intro(
        "Where the good fixed weights are. A broad bright region means the fixed scheme is easy to tune; a narrow "
        "one means a learned scheme could save tuning. Importances say which parameters mattered most in each arm "
        "(fANOVA; needs at least two complete trials)."
    )
    parts = []
    fixed = data.arms.get("fixed")
    if fixed is None:
        parts.append('<p class="missing">No fixed-weight arm in this storage.</p>')
    else:
        parts.append(
            page.figure(
                "fixed-landscape",
                fig_fixed_landscape(fixed),
                "No complete fixed trial with alpha and kl_weight yet.",
            )
        )
        parts.append(page.figure("fixed-slices", fig_slices(fixed), "No complete fixed trial yet."))
    parts.append("<h3>Parameter importances</h3>")
    parts.append(
        page.figure(
            "importances", fig_importances(data.arms), "No arm has enough complete trials for importances."
        )
    )
    notes = [
        [arm, d.importance_note] for arm, d in sorted(data.arms.items(), key=lambda kv: _arm_order(kv[0]))
    ]
    if notes:
        parts.append(_table(["arm", "importances"], notes))
    return _section(4, intro + "".join(parts))


def _metric_parts(data: ReportData, page: _Page) -> str:
    intro = _intro(
        "The score is the mean of binary F1 (target vs non-target) and 9-class macro F1 (8 targets + non-target). "
        "A scheme can win one half and lose the other. The per-class bars and confusion matrices use out-of-fold "
        "predictions of each arm's best configuration (confirmation runs when available)."
    )
    parts = [
        page.figure(
            "metric-parts",
            fig_metric_parts(metric_parts_frame(data)),
            "No complete trial or confirmation run yet.",
        )
    ]
    reports = data.class_reports()
    if reports:
        rows = [
            [arm, r.source, r.n, _fmt(r.score), _fmt(r.binary_f1), _fmt(r.macro_f1)]
            for arm, r in sorted(reports.items(), key=lambda kv: _arm_order(kv[0]))
        ]
        parts.append(
            _table(["arm", "out-of-fold predictions", "sequences", "score", "binary F1", "macro F1"], rows)
        )
    parts.append(
        page.figure(
            "per-class-f1",
            fig_per_class_f1(reports),
            "No out-of-fold predictions (user attr oof) recorded yet.",
        )
    )
    for arm, rep in sorted(reports.items(), key=lambda kv: _arm_order(kv[0])):
        parts.append(page.figure(f"confusion-{arm}", fig_confusion(arm, rep), ""))
    return _section(5, intro + "".join(parts))


def _versions_now() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "optuna",
        "optuna-dashboard",
        "plotly",
        "numpy",
        "pandas",
        "scipy",
        "torch",
        "pytorch-lightning",
        "scikit-learn",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _footer(data: ReportData, command: str | None) -> str:
    intro = _intro("Everything needed to re-run or audit this report.")
    studies = dict(data.arms.items())
    attrs_by_study = {
        f"{arm} study": d.attrs for arm, d in sorted(studies.items(), key=lambda kv: _arm_order(kv[0]))
    }
    if data.confirm is not None:
        attrs_by_study["confirmation"] = data.confirm.attrs
    recorded: dict[str, dict[str, str]] = {}
    for who, attrs in attrs_by_study.items():
        for pkg, ver in _as_dict(attrs.get("versions")).items():
            recorded.setdefault(pkg, {})[who] = str(ver)
    now = _versions_now()
    rows = []
    for pkg in sorted(set(recorded) | set(now)):
        vals = recorded.get(pkg, {})
        distinct = sorted(set(vals.values()))
        rec = distinct[0] if len(distinct) == 1 else "; ".join(f"{a}: {v}" for a, v in vals.items()) or "—"
        rows.append([pkg, rec, now.get(pkg, "—")])
    by_command: dict[str, list[str]] = {}  # the same command usually ran several arms
    for who, attrs in attrs_by_study.items():
        cmd = _as_str(attrs.get("command"))
        if cmd:
            by_command.setdefault(redact(cmd), []).append(who)
    commands = [[", ".join(who), _Raw(f"<code>{esc(cmd)}</code>")] for cmd, who in by_command.items()]
    if command:
        commands.append(["this report", _Raw(f"<code>{esc(redact(command))}</code>")])
    info = data.data_info
    facts = [
        ["storage", _Raw(f"<code>{esc(data.storage_url)}</code>")],
        ["study name", data.name],
        ["studies", ", ".join(s for s in data.existing_studies if s.startswith(f"{data.name}-"))],
        ["data source", info.source if info and info.source else "—"],
        [
            "data fingerprint",
            _Raw(f"<code>{esc(info.fingerprint if info and info.fingerprint else '—')}</code>"),
        ],
        [
            "devices",
            ", ".join(
                sorted(
                    {x for d in studies.values() for x in d.trials.get("device", pd.Series(dtype=str)) if x}
                )
            )
            or "—",
        ],
        ["generated", data.generated_at],
    ]
    return _section(
        6,
        intro
        + _table(["", ""], facts, cls="facts")
        + "<h3>Commands</h3>"
        + (
            _table(["what", "command"], commands)
            if commands
            else '<p class="missing">No command recorded.</p>'
        )
        + "<h3>Package versions</h3>"
        + _table(["package", "recorded by the studies", "at report time"], rows)
        + "<h3>Recorded configuration</h3>"
        + _config_details(attrs_by_study),
    )


_CONFIG_KEYS = (
    "preset",
    "epochs",
    "n_folds",
    "seed",
    "seeds",
    "n_trials",
    "arms",
    "search_space",
    "settings",
)


def _config_details(attrs_by_study: dict[str, dict[str, Any]]) -> str:
    """Each study's recorded configuration as collapsible JSON (escaped, passwords masked)."""
    out = []
    for who, attrs in attrs_by_study.items():
        cfg = {k: attrs[k] for k in _CONFIG_KEYS if k in attrs}
        if not cfg:
            continue
        text = redact(json.dumps(cfg, indent=2, sort_keys=False, default=str))
        out.append(f"<details><summary>{esc(who)}</summary><pre>{esc(text)}</pre></details>")
    return "".join(out) or '<p class="missing">No configuration recorded.</p>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:.2em 0}
h2{border-bottom:2px solid #dde2ea;padding-bottom:.2em;margin-top:2.2em}
h3{margin:1.2em 0 .4em}
p.intro{color:#4a5568;font-size:.95em;max-width:60em}
p.missing{color:#8a5a00;background:#fff8e6;border-left:4px solid #f0b429;padding:.5em .8em}
.warn{background:#fff4e5;border:1px solid #f0b429;border-radius:6px;padding:.6em 1em;margin:1em 0}
.warn ul{margin:.3em 0;padding-left:1.3em}
.verdict{border:1px solid #c9d3e3;border-left:6px solid #4C78A8;border-radius:6px;padding:.4em 1em .8em;margin:1em 0;background:#fbfcfe}
.verdict.biased{border-left-color:#f0b429;background:#fffdf6}
.verdict .word{color:#1f3b73}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #dde2ea;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f3f8}
table.numbers td:last-child{font-variant-numeric:tabular-nums;white-space:nowrap}
code{background:#f0f3f8;padding:0 .25em;border-radius:3px;word-break:break-all}
.figure{margin:1em 0;border:1px solid #eef1f5;border-radius:6px}
nav a{margin-right:1em;font-size:.9em}
details{margin:.3em 0}
summary{cursor:pointer}
pre{background:#f6f8fb;border:1px solid #eef1f5;padding:.6em;overflow-x:auto;font-size:.85em}
"""


def render_html(data: ReportData, *, command: str | None = None) -> tuple[str, list[tuple[str, go.Figure]]]:
    """The report page as one string (plotly.js embedded once) and the figures it contains."""
    from plotly.offline import get_plotlyjs

    page = _Page()
    sections = [
        _headline(data),
        _confirmation(data, page),
        _search(data, page),
        _weights(data, page),
        _landscape(data, page),
        _metric_parts(data, page),
        _footer(data, command),
    ]
    nav = "".join(
        f'<a href="#{re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-")}">{esc(t)}</a>' for t in SECTION_TITLES
    )
    doc = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="cmi-report-figures" content="{len(page.figures)}">
<link rel="icon" href="data:,">
<title>{esc(data.name)} — loss-weighting study report</title>
<style>{_CSS}</style>
<script type="text/javascript">window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body data-figures="{len(page.figures)}">
<main>
<h1>Fixed vs learned loss weights: <span class="study-name">{esc(data.name)}</span></h1>
<p class="intro">CMI multi-head gesture model · report generated {esc(data.generated_at)} · storage <code>{esc(data.storage_url)}</code></p>
<nav>{nav}</nav>
{"".join(sections)}
</main>
</body>
</html>
"""
    return doc, page.figures


def dashboard_note(data: ReportData, report_path: str | None = None) -> str:
    """Markdown note with the verdict(s) for optuna-dashboard."""
    lines = [f"## Loss-weighting verdict ({data.generated_at})", ""]
    names = data.arm_names()
    if len(names) < 2:
        lines.append(f"Only one arm ({', '.join(names) or 'none'}): nothing to compare yet.")
    for cmp in data.comparisons:
        lines.append(f"- {verdict_sentence(cmp)}")
    if data.confirm is None:
        lines += [
            "",
            "No confirmation study yet: the numbers above come from the best search trials (selection-biased).",
        ]
    if report_path:
        lines += ["", f"Full report: `{report_path}`"]
    # The dashboard renders Markdown; keep angle brackets from user strings inert.
    return "\n".join(lines).replace("<", "&lt;").replace(">", "&gt;")


def save_to_dashboard(
    storage: str | optuna.storages.BaseStorage,
    data: ReportData,
    figures: Sequence[tuple[str, go.Figure]],
    report_path: str | None = None,
) -> bool:
    """Save the verdict note and key figures on every study of the report; False if optuna_dashboard is missing."""
    try:
        import optuna_dashboard
    except ImportError:
        return False
    backend = _resolve_storage(storage)
    note = dashboard_note(data, report_path)
    by_key = dict(figures)
    names = [d.study_name for d in data.arms.values()]
    if data.confirm is not None:
        names.append(data.confirm.study_name)
    for study_name in names:
        study = optuna.load_study(study_name=study_name, storage=backend)
        optuna_dashboard.save_note(study, note)
        keys = [k for k in by_key if k.startswith("compare-") or k in ("best-so-far", "trial-scores")]
        arm = study_name[len(data.name) + 1 :]
        keys += [k for k in by_key if k == f"weights-{arm}"]
        for key in keys:
            optuna_dashboard.save_plotly_graph_object(
                study, _lean(by_key[key]), graph_object_id=DASHBOARD_GRAPH_PREFIX + key
            )
    return True


def _lean(fig: go.Figure) -> go.Figure:
    """A copy without plotly's full template (~6 kB of JSON per figure, stored in 2 kB system attrs)."""
    lean = go.Figure(fig)
    grid = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8")
    lean.layout.template = go.layout.Template(
        layout=dict(paper_bgcolor="white", plot_bgcolor="white", xaxis=grid, yaxis=grid)
    )
    return lean


def write_report(
    storage: str | optuna.storages.BaseStorage,
    study_name: str,
    out_path: str | Path,
    *,
    command: str | None = None,
    dashboard: bool = True,
    rope: float = 0.005,
) -> Path:
    """Write the HTML report of ``study_name`` to ``out_path`` and return its path.

    With ``dashboard=True`` and optuna_dashboard installed, also saves the verdict as a
    note and the key figures as graphs on each study (failures there are logged, not raised).
    """
    backend = _resolve_storage(storage)  # one connection pool for reading and for the dashboard notes
    data = extract(backend, study_name, rope=rope)
    doc, figures = render_html(data, command=command)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    if dashboard:
        try:
            save_to_dashboard(backend, data, figures, str(out.resolve()))
        except Exception as e:  # the report is written; a read-only storage must not lose it
            log.warning("could not save the verdict to optuna-dashboard: %s", e)
    return out

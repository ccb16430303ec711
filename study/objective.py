"""The cross-validated objective: K subject-grouped folds per trial, one report per fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
import torch
from optuna.trial import TrialState
from tqdm.auto import tqdm

from cmi_model.config import DataConfig, LossConfig, ModelConfig, TrainConfig
from cmi_model.data import SequenceData
from cmi_model.dataset import FoldCache
from cmi_model.train import FoldResult, fit_fold
from study import records, space
from study.settings import Settings
from study.workers import retrying

# FoldResult fields stored per fold: every field the storage format has (a FoldResult field
# that records.FoldRecord lacks is not stored).
FOLD_FIELDS = tuple(records.FoldRecord.model_fields)


class BudgetTaken(Exception):
    """Other workers already hold the arm's whole trial budget: this trial steps aside."""


@dataclass
class TrialConfigs:
    model: ModelConfig
    loss: LossConfig
    data: DataConfig
    train: TrainConfig


def _record(trial: optuna.Trial, results: list[FoldResult], data: SequenceData) -> None:
    """Write what the folds so far produced; called after every fold so partial trials keep it."""
    folds = [records.FoldRecord(**{f: getattr(r, f) for f in FOLD_FIELDS}) for r in results]
    idx = np.concatenate([r.val_indices for r in results])
    pred = np.concatenate([r.val_probs.argmax(1) for r in results])
    # Compact out-of-fold predictions (18-class indices) for per-class F1 and confusion matrices.
    oof = records.OOF(y_true=data.gesture[idx].tolist(), y_pred=pred.tolist())
    records.write(
        trial,
        folds=folds,
        device=results[-1].device,
        precision=results[-1].precision,
        oof=oof,
        threads=torch.get_num_threads(),
    )


def error_reason(e: BaseException) -> str:
    """A failed trial's fail_reason: the exception's type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def run_folds(
    trial: optuna.Trial,
    data: SequenceData,
    folds: list[tuple[np.ndarray, np.ndarray]],
    cfg: TrialConfigs,
    *,
    seed: int,
    prune: bool,
    label: str = "",
    fold_cache: FoldCache | None = None,
) -> float:
    """Train every fold, report each fold's score as step k, return the mean CV score.
    fold_cache: prepared fold tensors shared by the trials that train these folds."""
    results: list[FoldResult] = []
    try:
        for k, (train_idx, val_idx) in enumerate(
            tqdm(folds, desc=f"{label} folds", leave=False, unit="fold")
        ):
            train_cfg = cfg.train.model_copy(update={"seed": seed * 1000 + k})
            res = fit_fold(
                data,
                train_idx,
                val_idx,
                model_cfg=cfg.model,
                loss_cfg=cfg.loss,
                data_cfg=cfg.data,
                train_cfg=train_cfg,
                fold_cache=fold_cache,
            )
            results.append(res)
            _record(trial, results, data)
            trial.report(res.score, k)
            if prune and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k} (score {res.score:.4f})")
    except optuna.TrialPruned:
        raise
    except Exception as e:
        if (stop := retrying.broken(e)) is not None:  # the storage itself failed: nothing to record
            raise stop from None
        # Recorded on the trial so the report and dashboard can say why it failed.
        retrying.or_broken(records.write, trial, fail_reason=error_reason(e))
        raise
    return float(np.mean([r.score for r in results]))


def budget_counts(study: optuna.Study, before: int | None = None) -> tuple[int, int]:
    """(finished trials that count towards the budget: complete + pruned, trials running; of
    those only the ones numbered below `before` when it is given)."""
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    running = sum(t.state == TrialState.RUNNING and (before is None or t.number < before) for t in trials)
    return sum(t.state != TrialState.RUNNING for t in trials), running


class CVObjective:
    """One arm's objective: suggest → configs → K folds. Same folds for every trial, so each
    fold's tensors are prepared once (`fold_cache`; arms of one worker may share one cache)."""

    def __init__(
        self,
        arm: str,
        settings: Settings,
        data: SequenceData,
        folds,
        n_total: int,
        fold_cache: FoldCache | None = None,
    ):
        self.arm, self.settings, self.data, self.folds, self.n_total = arm, settings, data, folds, n_total
        self.fold_cache = fold_cache if fold_cache is not None else FoldCache()

    def __call__(self, trial: optuna.Trial) -> float:
        # Trials started before this one have the budget first; if they fill it, step aside.
        done, older = budget_counts(trial.study, before=trial.number)
        if done + older >= self.n_total:
            records.write(
                trial, fail_reason=f"{records.BUDGET_TAKEN}: other workers already run the rest of the budget"
            )
            raise BudgetTaken()
        params = space.suggest(trial, self.arm)
        s = self.settings
        model, loss, train = space.apply(self.arm, params, s.model, s.loss, s.train)
        cfg = TrialConfigs(model, loss, s.data, train)
        return run_folds(
            trial,
            self.data,
            self.folds,
            cfg,
            seed=s.study.seed,
            prune=s.study.pruner != "none",
            label=f"{self.arm} #{trial.number}",
            fold_cache=self.fold_cache,
        )

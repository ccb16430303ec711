"""The search space of each arm: every trial.suggest_* call of the project lives here.

Fairness: every arm searches the same shared space (same names, ranges, scales) and
its own weighting knobs, and its first trial is the original plan's defaults (for the
published schemes, their papers' defaults). Arms without knobs of their own (equal, rlw)
search the shared space only.
"""

from dataclasses import dataclass
from typing import Literal

import optuna

from cmi_model.config import LossConfig, ModelConfig, TrainConfig
from cmi_model.weighting import ARMS, strategy_for_arm


@dataclass(frozen=True)
class Param:
    name: str
    low: float
    high: float
    log: bool
    section: Literal["train", "model", "loss"]  # which config the value goes into
    integer: bool = False  # a count (trial.suggest_int), not a real number

    def describe(self) -> str:
        kind = ("log-uniform" if self.log else "uniform") + (" integer" if self.integer else "")
        return f"{kind} [{self.low:g}, {self.high:g}] ({self.section})"

    def suggest(self, trial: optuna.Trial) -> float | int:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


SHARED = (
    Param("lr", 1e-4, 1e-2, True, "train"),
    Param("weight_decay", 1e-5, 1e-1, True, "train"),
    Param("dropout", 0.0, 0.3, False, "model"),
)
ARM_PARAMS: dict[str, tuple[Param, ...]] = {
    "fixed": (
        Param("alpha", 0.0, 1.0, False, "loss"),
        Param("nine_class_loss_weight", 0.0, 1.0, False, "loss"),
        Param("kl_weight", 0.0, 1.0, False, "loss"),
    ),
    # weight_lr_multiplier: wide enough that s can reach its stationary point (log L_i, down
    # to ~-7 for the KL term) within the budget: ×3 does at the full preset's 4,000 steps, ×30
    # at the demo's 80; ×0.1 (the plan) moves s by < 0.5 (BENCHMARKS.md, "Learned weights").
    "uncertainty": (
        Param("uncertainty_init_value", -2.0, 2.0, False, "loss"),
        Param("weight_lr_multiplier", 0.1, 100.0, True, "loss"),
    ),
    "direct": (Param("weight_lr_multiplier", 0.1, 100.0, True, "loss"),),
    "equal": (),
    "dwa": (Param("dwa_temperature", 0.5, 10.0, True, "loss"),),
    # FAMO's logits have their own Adam; its weight decay stays at the paper's 1e-3.
    # FAMO balances the tasks; the KL term keeps a fixed weight, searched as the fixed arm's is.
    "famo": (Param("famo_lr", 1e-3, 0.1, True, "loss"), Param("kl_weight", 0.0, 1.0, False, "loss")),
    # IMTL-L's scales train in the weighting param group like uncertainty's s: the same range.
    "imtl_l": (Param("weight_lr_multiplier", 0.1, 100.0, True, "loss"),),
    "rlw": (),
    # The gradient-level schemes solve their weights from each step's gradients: only the
    # knobs their papers name are theirs to search.
    "upgrad": (),
    "mgda": (),
    "pcgrad": (),
    "imtl_g": (),
    "aligned_mtl": (),
    "cagrad": (Param("cagrad_c", 0.1, 0.9, False, "loss"),),  # the paper tried 0.1-0.9
    # Solving the bargaining problem every step costs a cvxpy solve; the paper's speed-up
    # solves every few steps and keeps the weights in between.
    "nash_mtl": (Param("nash_update_every", 1, 25, True, "loss", integer=True),),
}
assert set(ARM_PARAMS) == set(ARMS), "every weighting strategy's arm has a search space"

# The original plan's values, enqueued as each arm's first trial.
_PLAN = LossConfig()
BASELINE: dict[str, dict[str, float]] = {
    "fixed": {
        "alpha": _PLAN.alpha,
        "nine_class_loss_weight": _PLAN.nine_class_loss_weight,
        "kl_weight": _PLAN.kl_weight,
    },
    "uncertainty": {
        "uncertainty_init_value": _PLAN.uncertainty_init_value,
        "weight_lr_multiplier": _PLAN.weight_lr_multiplier,
    },
    "direct": {"weight_lr_multiplier": _PLAN.weight_lr_multiplier},
    "equal": {},
    "dwa": {"dwa_temperature": _PLAN.dwa_temperature},  # the paper's T = 2
    "famo": {"famo_lr": _PLAN.famo_lr, "kl_weight": _PLAN.kl_weight},  # the paper's lr 0.025
    "imtl_l": {"weight_lr_multiplier": _PLAN.weight_lr_multiplier},  # uncertainty's baseline
    "rlw": {},
    "upgrad": {},
    "mgda": {},
    "pcgrad": {},
    "imtl_g": {},
    "aligned_mtl": {},
    "cagrad": {"cagrad_c": _PLAN.cagrad_c},  # the paper's 0.4
    "nash_mtl": {"nash_update_every": _PLAN.nash_update_every},  # the paper's every step
}
assert set(BASELINE) == set(ARMS), "every arm has an enqueued first trial"


def params_of(arm: str) -> tuple[Param, ...]:
    return SHARED + ARM_PARAMS[arm]


def describe(arm: str) -> dict[str, str]:
    return {p.name: p.describe() for p in params_of(arm)}


def baseline(arm: str, train: TrainConfig, model: ModelConfig) -> dict[str, float]:
    """The first trial of an arm: the configured shared values and the plan's weights."""
    shared = {"lr": train.lr, "weight_decay": train.weight_decay, "dropout": model.dropout}
    return shared | BASELINE[arm]


def suggest(trial: optuna.Trial, arm: str) -> dict[str, float]:
    return {p.name: p.suggest(trial) for p in params_of(arm)}


def apply(
    arm: str, params: dict[str, float], model: ModelConfig, loss: LossConfig, train: TrainConfig
) -> tuple[ModelConfig, LossConfig, TrainConfig]:
    """Configs of one trial: the study's base configs with the arm's weighting and the trial's values."""
    updates: dict[str, dict] = {"train": {}, "model": {}, "loss": {"auto_weighting": strategy_for_arm(arm)}}
    for p in params_of(arm):
        if p.name in params:
            updates[p.section][p.name] = params[p.name]
    return (
        model.model_copy(update=updates["model"]),
        LossConfig(**(loss.model_dump() | updates["loss"])),  # re-validated: a trial can't make a bad config
        train.model_copy(update=updates["train"]),
    )

"""The search space of each arm: every trial.suggest_* call of the project lives here.

Fairness: every arm searches the same shared space (same names, ranges, scales) and
its own weighting knobs (each scheme's `knobs`, in its file under cmi_model/weighting), and its
first trial is the original plan's defaults (for the published schemes, their papers' defaults).
Arms without knobs of their own (equal, rlw, most gradient-level ones) search the shared space only.
"""

from dataclasses import dataclass
from typing import Literal

import optuna

from cmi_model.config import LossConfig, ModelConfig, TrainConfig
from cmi_model.weighting import SCHEMES


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


def _loss_param(arm: str, knob) -> Param:
    """A scheme's knob as a searched LossConfig value (a knob naming no LossConfig field is refused)."""
    if knob.field not in LossConfig.model_fields:
        raise ImportError(f"arm {arm!r} searches {knob.field!r}, which is not a LossConfig field")
    return Param(knob.field, knob.low, knob.high, knob.log, "loss", knob.integer)


# Each arm's own knobs, as its scheme's class states them (cmi_model.weighting, one file each).
ARM_PARAMS: dict[str, tuple[Param, ...]] = {
    arm: tuple(_loss_param(arm, k) for k in cls.knobs) for arm, cls in SCHEMES.items()
}

# The original plan's values (for the published schemes, their papers'), enqueued as each arm's
# first trial: the defaults of the fields its knobs set.
_PLAN = LossConfig()
BASELINE: dict[str, dict[str, float]] = {
    arm: {p.name: getattr(_PLAN, p.name) for p in params} for arm, params in ARM_PARAMS.items()
}


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
    updates: dict[str, dict] = {"train": {}, "model": {}, "loss": {"auto_weighting": arm}}
    for p in params_of(arm):
        if p.name in params:
            updates[p.section][p.name] = params[p.name]
    return (
        model.model_copy(update=updates["model"]),
        LossConfig(**(loss.model_dump() | updates["loss"])),  # re-validated: a trial can't make a bad config
        train.model_copy(update=updates["train"]),
    )

"""Loss-weighting strategies behind one interface, `Weighting`.

Each strategy is an nn.Module whose forward takes the active per-term losses
({"multiclass", "binary", "nine_class", "kl"} ⊇ keys) and returns
(total loss, effective weight applied to each term). Build one with
`build_weighting(loss_config)`.

Two names meet here: `LossConfig.auto_weighting` picks a strategy ("none" for the fixed
weights), and the study calls the same scheme an arm ("fixed"). Each class carries its
arm, so `strategy_for_arm` and `ARMS` translate between the two from one registry.
"""

import abc
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from cmi_model.config import LossConfig

Weights = dict[str, Tensor]


class Weighting(nn.Module, abc.ABC):
    """One way of combining the per-term losses into the loss that is minimised."""

    arm: ClassVar[str]  # the study arm that trains with this strategy

    @abc.abstractmethod
    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        """(total loss, the effective weight of each term, detached from the graph)."""

    def logged_params(self) -> dict[str, float]:
        """Learned quantities worth a line in the training log, by name."""
        return {}

    def project(self) -> None:
        """Bring the learned parameters back inside their bounds; called after every optimizer step.

        A projection rather than a clamp inside `forward`: a clamped value has zero gradient
        beyond the bound, so a parameter that overshot it would sit there with no signal to
        come back; projected, it stays a parameter on the bound with its true gradient.
        """


def _project(params: nn.ParameterDict, bounds: tuple[float, float]) -> None:
    with torch.no_grad():
        for p in params.values():
            p.clamp_(*bounds)


class FixedWeighting(Weighting):
    """alpha·L18 + (1−alpha)·Lbin + w9·L9 + wkl·KL: the hand-tuned baseline, no parameters."""

    arm = "fixed"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.coef = {
            "multiclass": cfg.alpha,
            "binary": 1.0 - cfg.alpha,
            "nine_class": cfg.nine_class_loss_weight,
            "kl": cfg.kl_weight,
        }

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        weights = {k: torch.tensor(self.coef[k], device=v.device) for k, v in losses.items()}
        return sum(weights[k] * v for k, v in losses.items()), weights


class UncertaintyWeighting(Weighting):
    """Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses".

    One learnable log-variance s_i per active term: L = Σ exp(−s_i)·L_i + s_i, with s_i kept
    inside `auto_weight_clamp` by `project`. The +s_i regulariser stops the weights collapsing
    to 0; its stationary point is s_i = log L_i (weight 1/L_i).
    """

    arm = "uncertainty"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.clamp = cfg.auto_weight_clamp
        self.s = nn.ParameterDict(
            {t: nn.Parameter(torch.tensor(float(cfg.uncertainty_init_value))) for t in cfg.active_terms()}
        )

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        total, weights = 0.0, {}
        for term, loss in losses.items():
            s = self.s[term]
            weights[term] = torch.exp(-s)
            total = total + weights[term] * loss + s
        return total, {k: w.detach() for k, w in weights.items()}

    def logged_params(self) -> dict[str, float]:
        return {f"s_{k}": float(v.detach()) for k, v in self.s.items()}

    def project(self) -> None:
        _project(self.s, self.clamp)


class DirectWeighting(Weighting):
    """The naive baseline: learn alpha = sigmoid(a), w9 = exp(b), wkl = exp(c) by the same loss.

    Nothing regularises it, so gradient descent can shrink the weights of the auxiliary
    terms towards zero (up to the clamp): the study should be able to show this.
    """

    arm = "direct"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.clamp = cfg.auto_weight_clamp
        eps = 1e-4  # alpha of exactly 0 or 1 (or a weight of 0) has no finite logit/log
        alpha = min(max(cfg.alpha, eps), 1 - eps)
        params = {"logit_alpha": math.log(alpha / (1 - alpha))}
        if "nine_class" in cfg.active_terms():
            params["log_nine_class"] = math.log(max(cfg.nine_class_loss_weight, eps))
        if "kl" in cfg.active_terms():
            params["log_kl"] = math.log(max(cfg.kl_weight, eps))
        self.p = nn.ParameterDict(
            {
                k: nn.Parameter(torch.tensor(min(max(v, self.clamp[0]), self.clamp[1])))
                for k, v in params.items()
            }
        )

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        alpha = torch.sigmoid(self.p["logit_alpha"])
        weights = {"multiclass": alpha, "binary": 1 - alpha}
        for term in ("nine_class", "kl"):
            if term in losses:
                weights[term] = torch.exp(self.p[f"log_{term}"])
        total = sum(weights[k] * v for k, v in losses.items())
        return total, {k: w.detach() for k, w in weights.items()}

    def logged_params(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in self.p.items()}

    def project(self) -> None:
        _project(self.p, self.clamp)


# LossConfig.auto_weighting value → strategy; the order is the arms' order in the study.
STRATEGIES: dict[str, type[Weighting]] = {
    "none": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "direct": DirectWeighting,
}
ARMS: tuple[str, ...] = tuple(cls.arm for cls in STRATEGIES.values())
_STRATEGY_OF_ARM = {cls.arm: name for name, cls in STRATEGIES.items()}


def build_weighting(cfg: LossConfig) -> Weighting:
    return STRATEGIES[cfg.auto_weighting](cfg)


def strategy_for_arm(arm: str) -> str:
    """The `LossConfig.auto_weighting` value of a study arm ("fixed" → "none")."""
    try:
        return _STRATEGY_OF_ARM[arm]
    except KeyError:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}") from None

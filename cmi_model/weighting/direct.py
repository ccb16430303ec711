"""Learned direct weights: the naive baseline, a control of what learning without a regulariser does."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from cmi_model.weighting.base import Knob, Parametric, Weights, clamp_params

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class DirectWeighting(Parametric):
    """The naive baseline: learn alpha = sigmoid(a), w9 = exp(b), wkl = exp(c) by the same loss.

    Nothing regularises it, so gradient descent can shrink the weights of the auxiliary
    terms towards zero (up to the clamp): the study should be able to show this.
    """

    arm = "direct"
    label = "learned direct weights"
    paper = "naive baseline"
    color = "#54A24B"
    position = 40
    knobs = (Knob("weight_lr_multiplier", 0.1, 100.0, log=True),)

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
        clamp_params(self.p, self.clamp)

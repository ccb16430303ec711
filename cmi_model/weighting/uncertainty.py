"""Learned uncertainty weights (Kendall, Gal & Cipolla 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from cmi_model.weighting.base import Knob, Parametric, Weights, clamp_params

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class UncertaintyWeighting(Parametric):
    """Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses".

    One learnable log-variance s_i per active term: L = Σ exp(−s_i)·L_i + s_i, with s_i kept
    inside `auto_weight_clamp` by `project`. The +s_i regulariser stops the weights collapsing
    to 0; its stationary point is s_i = log L_i (weight 1/L_i).
    """

    arm = "uncertainty"
    label = "learned uncertainty weights"
    paper = "Kendall, Gal & Cipolla 2018"
    inverse_loss_optimum = True
    color = "#F58518"
    position = 30
    # weight_lr_multiplier: wide enough that s can reach its stationary point (log L_i, down
    # to ~-7 for the KL term) within the budget: ×3 does at the full preset's 4,000 steps, ×30
    # at the demo's 80; ×0.1 (the plan) moves s by < 0.5 (BENCHMARKS.md, "Learned weights").
    knobs = (Knob("uncertainty_init_value", -2.0, 2.0), Knob("weight_lr_multiplier", 0.1, 100.0, log=True))

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
        clamp_params(self.s, self.clamp)

"""The fixed weights: the baseline every other arm is compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from cmi_model.weighting.base import Knob, Parametric, Weights

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class FixedWeighting(Parametric):
    """alpha·L18 + (1−alpha)·Lbin + w9·L9 + wkl·KL: the hand-tuned baseline, no parameters."""

    arm = "fixed"
    label = "tuned fixed weights"
    paper = "hand-tuned by the search"
    learned = False
    weights_vary = False
    color = "#4C78A8"
    family = "fixed"
    position = 10
    knobs = (Knob("alpha", 0.0, 1.0), Knob("nine_class_loss_weight", 0.0, 1.0), Knob("kl_weight", 0.0, 1.0))

    def __init__(self, cfg: LossConfig):
        super().__init__()
        coef = {
            "multiclass": cfg.alpha,
            "binary": 1.0 - cfg.alpha,
            "nine_class": cfg.nine_class_loss_weight,
            "kl": cfg.kl_weight,
        }
        self.terms = tuple(coef)
        # A buffer, moved to the device with the module once: a tensor built from each float in
        # every step is a host-to-device copy per term per step on a GPU.
        self.register_buffer("coef", torch.tensor(list(coef.values())), persistent=False)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        weights = {k: self.coef[self.terms.index(k)] for k in losses}
        return sum(weights[k] * v for k, v in losses.items()), weights

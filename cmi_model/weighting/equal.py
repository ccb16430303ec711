"""Equal weights: what no tuning at all gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchjd import scalarization as tjd

from cmi_model.weighting.base import Parametric, Weights, loss_vector

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class EqualWeighting(Parametric):
    """Every active term weight 1, Σ L_i (TorchJD `Sum`): what no tuning at all gives."""

    arm = "equal"
    label = "equal weights, no tuning"
    paper = "every weight 1"
    learned = False
    weights_vary = False
    color = "#7F7F7F"  # grey: no tuning, the reference
    family = "fixed"
    position = 20

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.terms = cfg.active_terms()
        self.scalarizer = tjd.Sum()

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = loss_vector(self, self.terms, losses)
        ones = torch.ones_like(v).detach()  # ∂ΣL/∂L_i = 1
        return self.scalarizer(v), dict(zip(self.terms, ones.unbind(), strict=True))

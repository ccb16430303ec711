"""Random loss weighting (Lin et al. 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchjd import scalarization as tjd

from cmi_model.weighting._scalarized import Scalarized

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class RandomWeighting(Scalarized):
    """Lin et al. (2022), "Reasonable Effectiveness of Random Weighting" (RLW): fresh weights every step.

    λ = softmax(N(0, I)) drawn from torch's global generator at every training step (TorchJD
    `Random`, the paper's Algorithm 2): positive and summing to 1 (TorchJD's convention, not K).
    Effective weights by autograd (= λ); in evaluation their expectation, 1/K each.
    """

    arm = "rlw"
    label = "random loss weights (RLW)"
    paper = "Lin et al. 2022"
    learned = False
    color = "#9D755D"
    position = 80

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, tjd.Random())
        self.last_weights.fill_(1.0 / len(self.terms))

    def _eval_weights(self) -> Tensor:
        return torch.full_like(self.last_weights, 1.0 / len(self.terms))

"""What the loss-level schemes that wrap a TorchJD scalarizer (`torchjd.scalarization`: DWA, FAMO,
random weights) share: the vector of active losses in `LossConfig.active_terms()` order (a term
that is absent is absent for the scheme too), and the effective weight of term i as ∂total/∂L_i:
TorchJD returns only the scalar, so it is one `torch.autograd.grad` on the loss vector away. (Equal
weights and IMTL-L write theirs down from the formula TorchJD documents: 1 and exp(s_i).)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchjd import scalarization as tjd

from cmi_model.weighting.base import Weighting, Weights, loss_vector

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class Scalarized(Weighting):
    """A TorchJD scalarizer over the vector of the active losses (`cfg.active_terms()` order).

    In training (`.train()` and losses that carry a gradient) the scalarizer combines them and
    advances its state; the effective weights are ∂total/∂L_i (`_effective`). In evaluation the
    total is Σ w_i·L_i with `_eval_weights()` and nothing changes, so a validation pass can
    neither roll nor feed DWA's epoch average, nor draw random numbers.
    """

    def __init__(self, cfg: LossConfig, scalarizer: tjd.Scalarizer):
        super().__init__()
        self.terms = cfg.active_terms()
        self.scalarizer = scalarizer
        # Effective weights of the last training step: logged, and the evaluation weights.
        self.register_buffer("last_weights", torch.ones(len(self.terms)), persistent=False)

    def _effective(self, total: Tensor, losses: Tensor) -> Tensor:
        """∂total/∂L_i by autograd: one backward through the scalarizer only (it stops at the
        loss vector; the graph is kept for the step's own backward)."""
        (grad,) = torch.autograd.grad(total, losses, retain_graph=True)
        return grad.detach()

    def _eval_weights(self) -> Tensor:
        return self.last_weights

    def _combine(self, v: Tensor) -> Tensor:
        """The training total of the loss vector: the scalarizer's."""
        return self.scalarizer(v)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = loss_vector(self, self.terms, losses)
        if self.training and v.requires_grad:
            total = self._combine(v)
            w = self._effective(total, v)
            self.last_weights = w
        else:
            w = self._eval_weights().to(v.dtype)
            total = (w * v).sum()
        return total, dict(zip(self.terms, w.unbind(), strict=True))

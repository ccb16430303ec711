"""IMTL-L (Liu et al. 2021): a control of uncertainty weighting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchjd import scalarization as tjd

from cmi_model.weighting.base import Knob, Parametric, Weights, loss_vector

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class IMTLLWeighting(Parametric):
    """Liu et al. (2021), "Towards Impartial Multi-task Learning": IMTL-L, Σ exp(s_i)·L_i − s_i.

    TorchJD `IMTLL`; the learned scales s_i live in the weighting param group (lr × the
    searched `weight_lr_multiplier`, like uncertainty's s) and `project` keeps them inside
    `auto_weight_clamp`. Effective weights exp(s_i) from TorchJD's documented formula; the
    stationary point is exp(s_i*) = 1/L_i, as for uncertainty weighting.

    A control, not a scheme of its own: exp(s_i)·L_i − s_i is uncertainty weighting's
    exp(−s_i)·L_i + s_i with s → −s (the same loss, checked in tests/test_weighting.py), so its
    weights are uncertainty's and, on the same fold and seed, so are its scores.
    `--arms all` leaves it out; name it to check that the study tells two equal arms apart from
    none.
    """

    arm = "imtl_l"
    label = "IMTL-L scales (control: uncertainty weights, s → −s)"
    paper = "Liu et al. 2021"
    inverse_loss_optimum = True
    color = "#72B7B2"
    control_of = "uncertainty"
    position = 70
    # Its scales train in the weighting param group like uncertainty's s: the same range.
    knobs = (Knob("weight_lr_multiplier", 0.1, 100.0, log=True),)

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.terms = cfg.active_terms()
        self.clamp = cfg.auto_weight_clamp
        self.scalarizer = tjd.IMTLL(len(self.terms))

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = loss_vector(self, self.terms, losses)
        weights = torch.exp(self.scalarizer.log_scale).detach()  # ∂/∂L_i (e^{s_i} L_i − s_i)
        return self.scalarizer(v), dict(zip(self.terms, weights.unbind(), strict=True))

    def logged_params(self) -> dict[str, float]:
        return {
            f"s_{t}": float(v) for t, v in zip(self.terms, self.scalarizer.log_scale.detach(), strict=True)
        }

    def project(self) -> None:
        with torch.no_grad():
            self.scalarizer.log_scale.clamp_(*self.clamp)

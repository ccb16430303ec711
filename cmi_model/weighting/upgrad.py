"""UPGrad (Quinton & Rey 2024)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class UPGradWeighting(GradientLevel):
    """Quinton & Rey (2024), "Jacobian Descent for Multi-Objective Optimization": UPGrad.

    Each term's gradient projected onto the dual cone of all of them (no step conflicts with
    any term), the projections averaged (TorchJD `UPGrad`, its defaults)."""

    arm = "upgrad"
    label = "UPGrad (Jacobian descent)"
    paper = "Quinton & Rey 2024"
    color = "#F781BF"
    position = 90

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.UPGrad())

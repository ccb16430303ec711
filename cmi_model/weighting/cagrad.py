"""CAGrad (Liu et al. 2021)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel
from cmi_model.weighting.base import Knob

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class CAGradWeighting(GradientLevel):
    """Liu et al. (2021), "Conflict-Averse Gradient Descent for Multi-task Learning": CAGrad.

    The step that maximises the worst term's improvement within a ball of radius c·‖mean
    gradient‖ around the mean gradient (TorchJD `CAGrad`); c (`cagrad_c`) is searched."""

    arm = "cagrad"
    label = "CAGrad (conflict-averse)"
    paper = "Liu et al. 2021 (CAGrad)"
    color = "#A6CEE3"
    position = 140
    knobs = (Knob("cagrad_c", 0.1, 0.9),)  # the paper tried 0.1-0.9

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.CAGrad(c=cfg.cagrad_c))

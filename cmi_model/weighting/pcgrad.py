"""PCGrad (Yu et al. 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class PCGradWeighting(GradientLevel):
    """Yu et al. (2020), "Gradient Surgery for Multi-Task Learning": PCGrad.

    Each term's gradient, projected off every other one it conflicts with (in random order,
    from torch's global generator), summed (TorchJD `PCGrad`)."""

    arm = "pcgrad"
    label = "PCGrad (gradient surgery)"
    paper = "Yu et al. 2020"
    color = "#6A3D9A"
    position = 110

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.PCGrad())

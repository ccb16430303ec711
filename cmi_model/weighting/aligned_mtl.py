"""Aligned-MTL (Senushkin et al. 2023)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class AlignedMTLWeighting(GradientLevel):
    """Senushkin et al. (2023), "Independent Component Alignment for Multi-Task Learning": Aligned-MTL.

    The gradients' matrix made well-conditioned (its singular values aligned to the smallest),
    then averaged (TorchJD `AlignedMTL`, scale mode "min" as in the paper)."""

    arm = "aligned_mtl"
    label = "Aligned-MTL (aligned gradients)"
    paper = "Senushkin et al. 2023"
    color = "#8E0152"
    position = 130

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.AlignedMTL())

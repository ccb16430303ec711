"""IMTL-G (Liu et al. 2021)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class IMTLGWeighting(GradientLevel):
    """Liu et al. (2021), "Towards Impartial Multi-task Learning": IMTL-G.

    The combination whose projection onto every term's unit gradient is the same (TorchJD
    `IMTLG`); the gradient half of the paper, whose loss half is the imtl_l arm."""

    arm = "imtl_g"
    label = "IMTL-G (impartial gradients)"
    paper = "Liu et al. 2021"
    color = "#01665E"
    position = 120

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.IMTLG())

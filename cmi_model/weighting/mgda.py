"""MGDA (Sener & Koltun 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class MGDAWeighting(GradientLevel):
    """Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization": MGDA.

    The min-norm point of the convex hull of the terms' gradients (Désidéri's MGDA, solved by
    Frank-Wolfe: TorchJD `MGDA`, epsilon 1e-3, 100 iterations), on the shared encoder as in
    the paper's MGDA-UB."""

    arm = "mgda"
    label = "MGDA (min-norm gradient)"
    paper = "Sener & Koltun 2018"
    color = "#FFD92F"
    position = 100

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.MGDA())

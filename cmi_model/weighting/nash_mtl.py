"""Nash-MTL (Navon et al. 2022)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel
from cmi_model.weighting.base import Knob

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


# cvxpy's note on every process's first Nash-MTL solve (TorchJD's problem is not in its DPP form,
# so re-solves are not cached): a fact about speed, already in BENCHMARKS.md, not a fault to report.
warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP")


class NashMTLWeighting(GradientLevel):
    """Navon et al. (2022), "Multi-Task Learning as a Bargaining Game": Nash-MTL.

    The Nash bargaining solution over the terms' gradients (TorchJD `NashMTL`, solved by
    cvxpy), solved anew every `nash_update_every` steps (searched; the paper's speed-up) and
    kept in between; the weights it keeps are stateful, so each fold starts afresh."""

    arm = "nash_mtl"
    label = "Nash-MTL (bargaining)"
    paper = "Navon et al. 2022"
    color = "#17BECF"
    position = 150
    # Solving the bargaining problem every step costs a cvxpy solve; the paper's speed-up solves
    # every few steps and keeps the weights in between.
    knobs = (Knob("nash_update_every", 1, 25, log=True, integer=True),)

    def __init__(self, cfg: LossConfig):
        aggregator = agg.NashMTL(n_tasks=len(cfg.active_terms()), update_weights_every=cfg.nash_update_every)
        super().__init__(cfg, aggregator)

"""The gradient-level schemes: each combines the per-term gradients of the shared encoder.

Jacobian descent with TorchJD (`torchjd.autojac`): `mtl_backward(losses, features)` puts the
Jacobian of the active losses with respect to the encoder's parameters in their `.jac` fields
(one row per term, `LossConfig.active_terms()` order) and gives each head the plain gradient
of its own terms (the KL term reaches both heads it compares); `jac_to_grad(encoder, aggregator)`
combines the rows into the encoder's `.grad` and returns the weight the aggregator gave each
row: the step's effective weights. The loss-level total that `forward` returns is only for
logging and evaluation: Σ w_i·L_i with the last training step's weights (1 before the first).
"""

import warnings
from collections.abc import Iterable

import torch
from torch import Tensor
from torchjd import aggregation as agg
from torchjd.autojac import jac_to_grad, mtl_backward

from cmi_model.config import LossConfig
from cmi_model.weighting.base import Weighting, Weights, _loss_vector

# cvxpy's note on every process's first Nash-MTL solve (TorchJD's problem is not in its DPP form,
# so re-solves are not cached): a fact about speed, already in BENCHMARKS.md, not a fault to report.
warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP")


class _GradientLevel(Weighting):
    """A TorchJD aggregator over the Jacobian of the active losses w.r.t. the encoder.

    Colours: hues that neither a loss-level arm nor a loss term (study/report/style.py) uses."""

    family = "gradient-level"
    learned = False  # weights solved afresh from each step's gradients, not parameters that move

    def __init__(self, cfg: LossConfig, aggregator: agg.WeightedAggregator):
        super().__init__()
        self.terms = cfg.active_terms()
        self.aggregator = aggregator
        self.register_buffer("last_weights", torch.ones(len(self.terms)), persistent=False)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = _loss_vector(self, self.terms, losses)
        w = self.last_weights.to(v.dtype)
        return (w * v).sum(), dict(zip(self.terms, w.unbind(), strict=True))

    def backward(
        self, total: Tensor, losses: dict[str, Tensor], features: Tensor | None, params: Iterable[Tensor]
    ) -> Weights:
        if features is None:
            raise ValueError(f"{self.arm} needs the network's 'features' output (what the heads read)")
        # retain_graph: the terms share the heads' part of the graph (the KL term reads the 18- and
        # 9-class logits), which the first task's backward would otherwise free for the rest.
        # parallel_chunk_size=1: one backward per term. torch.vmap over the terms fails under bf16
        # autocast ("expected scalar type BFloat16 but found Float") and, with no batching rule for
        # the CPU attention backward, was slower anyway: 142 vs 115 ms (tiny), 1008 vs 669 ms (small).
        mtl_backward(
            [losses[t] for t in self.terms], features=features, retain_graph=True, parallel_chunk_size=1
        )
        # The parameters mtl_backward gave a `.jac`: the encoder's (every leaf the features need).
        shared = [p for p in params if getattr(p, "jac", None) is not None]
        weights = jac_to_grad(shared, self.aggregator).detach()
        self.last_weights = weights.to(self.last_weights.dtype)
        return dict(zip(self.terms, weights.unbind(), strict=True))


class UPGradWeighting(_GradientLevel):
    """Quinton & Rey (2024), "Jacobian Descent for Multi-Objective Optimization": UPGrad.

    Each term's gradient projected onto the dual cone of all of them (no step conflicts with
    any term), the projections averaged (TorchJD `UPGrad`, its defaults)."""

    arm = "upgrad"
    label = "UPGrad (Jacobian descent)"
    paper = "Quinton & Rey 2024"
    color = "#F781BF"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.UPGrad())


class MGDAWeighting(_GradientLevel):
    """Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective Optimization": MGDA.

    The min-norm point of the convex hull of the terms' gradients (Désidéri's MGDA, solved by
    Frank-Wolfe: TorchJD `MGDA`, epsilon 1e-3, 100 iterations), on the shared encoder as in
    the paper's MGDA-UB."""

    arm = "mgda"
    label = "MGDA (min-norm gradient)"
    paper = "Sener & Koltun 2018"
    color = "#FFD92F"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.MGDA())


class PCGradWeighting(_GradientLevel):
    """Yu et al. (2020), "Gradient Surgery for Multi-Task Learning": PCGrad.

    Each term's gradient, projected off every other one it conflicts with (in random order,
    from torch's global generator), summed (TorchJD `PCGrad`)."""

    arm = "pcgrad"
    label = "PCGrad (gradient surgery)"
    paper = "Yu et al. 2020"
    color = "#6A3D9A"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.PCGrad())


class IMTLGWeighting(_GradientLevel):
    """Liu et al. (2021), "Towards Impartial Multi-task Learning": IMTL-G.

    The combination whose projection onto every term's unit gradient is the same (TorchJD
    `IMTLG`); the gradient half of the paper, whose loss half is the imtl_l arm."""

    arm = "imtl_g"
    label = "IMTL-G (impartial gradients)"
    paper = "Liu et al. 2021"
    color = "#01665E"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.IMTLG())


class AlignedMTLWeighting(_GradientLevel):
    """Senushkin et al. (2023), "Independent Component Alignment for Multi-Task Learning": Aligned-MTL.

    The gradients' matrix made well-conditioned (its singular values aligned to the smallest),
    then averaged (TorchJD `AlignedMTL`, scale mode "min" as in the paper)."""

    arm = "aligned_mtl"
    label = "Aligned-MTL (aligned gradients)"
    paper = "Senushkin et al. 2023"
    color = "#8E0152"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.AlignedMTL())


class CAGradWeighting(_GradientLevel):
    """Liu et al. (2021), "Conflict-Averse Gradient Descent for Multi-task Learning": CAGrad.

    The step that maximises the worst term's improvement within a ball of radius c·‖mean
    gradient‖ around the mean gradient (TorchJD `CAGrad`); c (`cagrad_c`) is searched."""

    arm = "cagrad"
    label = "CAGrad (conflict-averse)"
    paper = "Liu et al. 2021 (CAGrad)"
    color = "#A6CEE3"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, agg.CAGrad(c=cfg.cagrad_c))


class NashMTLWeighting(_GradientLevel):
    """Navon et al. (2022), "Multi-Task Learning as a Bargaining Game": Nash-MTL.

    The Nash bargaining solution over the terms' gradients (TorchJD `NashMTL`, solved by
    cvxpy), solved anew every `nash_update_every` steps (searched; the paper's speed-up) and
    kept in between; the weights it keeps are stateful, so each fold starts afresh."""

    arm = "nash_mtl"
    label = "Nash-MTL (bargaining)"
    paper = "Navon et al. 2022"
    color = "#17BECF"

    def __init__(self, cfg: LossConfig):
        aggregator = agg.NashMTL(n_tasks=len(cfg.active_terms()), update_weights_every=cfg.nash_update_every)
        super().__init__(cfg, aggregator)

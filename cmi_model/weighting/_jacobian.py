"""What the gradient-level schemes share: each combines the per-term gradients of the shared encoder.

Jacobian descent with TorchJD (`torchjd.autojac`): `mtl_backward(losses, features)` puts the
Jacobian of the active losses with respect to the encoder's parameters in their `.jac` fields
(one row per term, `LossConfig.active_terms()` order) and gives each head the plain gradient
of its own terms (the KL term reaches both heads it compares); `jac_to_grad(encoder, aggregator)`
combines the rows into the encoder's `.grad` and returns the weight the aggregator gave each
row: the step's effective weights. The loss-level total that `forward` returns is only for
logging and evaluation: Σ w_i·L_i with the last training step's weights (1 before the first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchjd import aggregation as agg
from torchjd.autojac import jac_to_grad, mtl_backward

from cmi_model.weighting.base import Weighting, Weights, loss_vector

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class GradientLevel(Weighting):
    """A TorchJD aggregator over the Jacobian of the active losses w.r.t. the encoder. Its weights
    are solved afresh from each step's gradients: only the knobs a scheme's paper names are searched.

    Colours: hues that neither a loss-level arm nor a loss term (study/report/style.py) uses."""

    family = "gradient-level"
    learned = False  # weights solved afresh from each step's gradients, not parameters that move

    def __init__(self, cfg: LossConfig, aggregator: agg.WeightedAggregator):
        super().__init__()
        self.terms = cfg.active_terms()
        self.aggregator = aggregator
        self.register_buffer("last_weights", torch.ones(len(self.terms)), persistent=False)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = loss_vector(self, self.terms, losses)
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

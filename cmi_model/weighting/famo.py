"""FAMO (Liu et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor, nn
from torchjd import scalarization as tjd

from cmi_model.weighting._scalarized import Scalarized
from cmi_model.weighting.base import Knob, loss_vector

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


FAMO_WEIGHT_DECAY = 1e-3  # weight decay of FAMO's logits: the paper's Algorithm 2 (and LibMTL)


class FAMOWeighting(Scalarized):
    """Liu et al. (2023), "FAMO: Fast Adaptive Multitask Optimization".

    Total c·Σ z_i·log L_i with z = softmax(w) and c = 1/Σ(z_i/L_i) held constant (TorchJD
    `FAMO`) over the task losses, + kl_weight·KL: effective weights by autograd, z_i/L_i
    normalised to sum to 1 over the tasks. After every optimizer step the losses recomputed on
    the same batch update the logits w with FAMO's own Adam (lr `famo_lr`, weight decay 1e-3);
    the module's optimizer never sees them.

    The KL consistency term is not one of the tasks FAMO balances: it keeps the fixed weight
    `kl_weight` (searched, as for the fixed arm). Balanced, its weight ∝ 1/KL grows without
    bound as the heads come to agree (KL → 0): it took 69-89% of the weight and cost 0.12 of
    the score on the demo (BENCHMARKS.md, "FAMO and the KL term").
    """

    arm = "famo"
    label = "FAMO weights"
    paper = "Liu et al. 2023"
    color = "#E45756"
    position = 60
    # FAMO's logits have their own Adam; its weight decay stays at the paper's 1e-3. The KL term
    # keeps a fixed weight, searched as the fixed arm's is.
    knobs = (Knob("famo_lr", 1e-3, 0.1, log=True), Knob("kl_weight", 0.0, 1.0))

    def __init__(self, cfg: LossConfig):
        tasks = tuple(t for t in cfg.active_terms() if t != "kl")
        super().__init__(cfg, tjd.FAMO(len(tasks), lr=cfg.famo_lr, weight_decay=FAMO_WEIGHT_DECAY))
        self.tasks = len(tasks)  # the first `tasks` of the loss vector; KL, when active, is last
        self.kl_weight = cfg.kl_weight
        self.last_weights[: self.tasks] = 1.0 / self.tasks
        self.last_weights[self.tasks :] = self.kl_weight

    def _combine(self, v: Tensor) -> Tensor:
        return self.scalarizer(v[: self.tasks]) + self.kl_weight * v[self.tasks :].sum()

    def optimized_parameters(self) -> list[nn.Parameter]:
        return []

    def after_optimizer_step(self, recompute_losses: Callable[[], dict[str, Tensor]]) -> None:
        v = loss_vector(self, self.terms, recompute_losses()).detach()
        self.scalarizer.update(v[: self.tasks])

    def logged_params(self) -> dict[str, float]:
        (logits,) = self.scalarizer.parameters()
        return {f"logit_{t}": float(v) for t, v in zip(self.terms, logits.detach(), strict=False)}

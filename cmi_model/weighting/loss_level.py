"""The loss-level schemes: each combines the per-term losses into one scalar to minimise.

Fixed, uncertainty (Kendall et al.) and direct weights are written here; the published
schemes (equal, DWA, FAMO, IMTL-L, random weights) wrap TorchJD's scalarizers
(`torchjd.scalarization`) over the vector of active losses, in `LossConfig.active_terms()`
order: a term that is absent is absent for the scheme too. Their effective weight of term i
is ∂total/∂L_i: TorchJD returns only the scalar, so it is one `torch.autograd.grad` on the
loss vector away (DWA, FAMO, random weights), or written down from the formula TorchJD
documents (equal: 1; IMTL-L: exp(s_i)).
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchjd import scalarization as tjd

from cmi_model.config import LossConfig
from cmi_model.weighting.base import Weighting, Weights, _loss_vector, _Parametric, _project

FAMO_WEIGHT_DECAY = 1e-3  # weight decay of FAMO's logits: the paper's Algorithm 2 (and LibMTL)


class FixedWeighting(_Parametric):
    """alpha·L18 + (1−alpha)·Lbin + w9·L9 + wkl·KL: the hand-tuned baseline, no parameters."""

    arm = "fixed"
    label = "tuned fixed weights"
    paper = "hand-tuned by the search"
    learned = False
    weights_vary = False
    color = "#4C78A8"
    family = "fixed"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        coef = {
            "multiclass": cfg.alpha,
            "binary": 1.0 - cfg.alpha,
            "nine_class": cfg.nine_class_loss_weight,
            "kl": cfg.kl_weight,
        }
        self.terms = tuple(coef)
        # A buffer, moved to the device with the module once: a tensor built from each float in
        # every step is a host-to-device copy per term per step on a GPU.
        self.register_buffer("coef", torch.tensor(list(coef.values())), persistent=False)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        weights = {k: self.coef[self.terms.index(k)] for k in losses}
        return sum(weights[k] * v for k, v in losses.items()), weights


class UncertaintyWeighting(_Parametric):
    """Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses".

    One learnable log-variance s_i per active term: L = Σ exp(−s_i)·L_i + s_i, with s_i kept
    inside `auto_weight_clamp` by `project`. The +s_i regulariser stops the weights collapsing
    to 0; its stationary point is s_i = log L_i (weight 1/L_i).
    """

    arm = "uncertainty"
    label = "learned uncertainty weights"
    paper = "Kendall, Gal & Cipolla 2018"
    inverse_loss_optimum = True
    color = "#F58518"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.clamp = cfg.auto_weight_clamp
        self.s = nn.ParameterDict(
            {t: nn.Parameter(torch.tensor(float(cfg.uncertainty_init_value))) for t in cfg.active_terms()}
        )

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        total, weights = 0.0, {}
        for term, loss in losses.items():
            s = self.s[term]
            weights[term] = torch.exp(-s)
            total = total + weights[term] * loss + s
        return total, {k: w.detach() for k, w in weights.items()}

    def logged_params(self) -> dict[str, float]:
        return {f"s_{k}": float(v.detach()) for k, v in self.s.items()}

    def project(self) -> None:
        _project(self.s, self.clamp)


class DirectWeighting(_Parametric):
    """The naive baseline: learn alpha = sigmoid(a), w9 = exp(b), wkl = exp(c) by the same loss.

    Nothing regularises it, so gradient descent can shrink the weights of the auxiliary
    terms towards zero (up to the clamp): the study should be able to show this.
    """

    arm = "direct"
    label = "learned direct weights"
    paper = "naive baseline"
    color = "#54A24B"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.clamp = cfg.auto_weight_clamp
        eps = 1e-4  # alpha of exactly 0 or 1 (or a weight of 0) has no finite logit/log
        alpha = min(max(cfg.alpha, eps), 1 - eps)
        params = {"logit_alpha": math.log(alpha / (1 - alpha))}
        if "nine_class" in cfg.active_terms():
            params["log_nine_class"] = math.log(max(cfg.nine_class_loss_weight, eps))
        if "kl" in cfg.active_terms():
            params["log_kl"] = math.log(max(cfg.kl_weight, eps))
        self.p = nn.ParameterDict(
            {
                k: nn.Parameter(torch.tensor(min(max(v, self.clamp[0]), self.clamp[1])))
                for k, v in params.items()
            }
        )

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        alpha = torch.sigmoid(self.p["logit_alpha"])
        weights = {"multiclass": alpha, "binary": 1 - alpha}
        for term in ("nine_class", "kl"):
            if term in losses:
                weights[term] = torch.exp(self.p[f"log_{term}"])
        total = sum(weights[k] * v for k, v in losses.items())
        return total, {k: w.detach() for k, w in weights.items()}

    def logged_params(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in self.p.items()}

    def project(self) -> None:
        _project(self.p, self.clamp)


# ----------------------------------------------------------------------------- TorchJD schemes


class _Scalarized(Weighting):
    """A TorchJD scalarizer over the vector of the active losses (`cfg.active_terms()` order).

    In training (`.train()` and losses that carry a gradient) the scalarizer combines them and
    advances its state; the effective weights are ∂total/∂L_i (`_effective`). In evaluation the
    total is Σ w_i·L_i with `_eval_weights()` and nothing changes, so a validation pass can
    neither roll nor feed DWA's epoch average, nor draw random numbers.
    """

    def __init__(self, cfg: LossConfig, scalarizer: tjd.Scalarizer):
        super().__init__()
        self.terms = cfg.active_terms()
        self.scalarizer = scalarizer
        # Effective weights of the last training step: logged, and the evaluation weights.
        self.register_buffer("last_weights", torch.ones(len(self.terms)), persistent=False)

    def _effective(self, total: Tensor, losses: Tensor) -> Tensor:
        """∂total/∂L_i by autograd: one backward through the scalarizer only (it stops at the
        loss vector; the graph is kept for the step's own backward)."""
        (grad,) = torch.autograd.grad(total, losses, retain_graph=True)
        return grad.detach()

    def _eval_weights(self) -> Tensor:
        return self.last_weights

    def _combine(self, v: Tensor) -> Tensor:
        """The training total of the loss vector: the scalarizer's."""
        return self.scalarizer(v)

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = _loss_vector(self, self.terms, losses)
        if self.training and v.requires_grad:
            total = self._combine(v)
            w = self._effective(total, v)
            self.last_weights = w
        else:
            w = self._eval_weights().to(v.dtype)
            total = (w * v).sum()
        return total, dict(zip(self.terms, w.unbind(), strict=True))


class EqualWeighting(_Parametric):
    """Every active term weight 1, Σ L_i (TorchJD `Sum`): what no tuning at all gives."""

    arm = "equal"
    label = "equal weights, no tuning"
    paper = "every weight 1"
    learned = False
    weights_vary = False
    color = "#7F7F7F"  # grey: no tuning, the reference
    family = "fixed"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.terms = cfg.active_terms()
        self.scalarizer = tjd.Sum()

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = _loss_vector(self, self.terms, losses)
        ones = torch.ones_like(v).detach()  # ∂ΣL/∂L_i = 1
        return self.scalarizer(v), dict(zip(self.terms, ones.unbind(), strict=True))


class DWAWeighting(_Scalarized):
    """Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning with Attention": Dynamic Weight Average.

    λ_k(t) = K·softmax_k(r(t−1)/T), r_k = L̄_k(t−1)/L̄_k(t−2) from the mean losses of the two
    previous epochs (TorchJD `DWA`; uniform for the first two epochs). Effective weights by
    autograd (= λ). The epoch's mean is rolled in `on_train_epoch_end`, once per epoch.
    """

    arm = "dwa"
    label = "Dynamic Weight Average (DWA)"
    paper = "Liu, Johns & Davison 2019"
    color = "#B279A2"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, tjd.DWA(temperature=cfg.dwa_temperature))

    def on_train_epoch_end(self) -> None:
        self.scalarizer.step()

    def logged_params(self) -> dict[str, float]:
        # Log-weights of the last training step (0 before the first): how far DWA moved them.
        return {f"log_w_{t}": math.log(float(w)) for t, w in zip(self.terms, self.last_weights, strict=True)}


class FAMOWeighting(_Scalarized):
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
        v = _loss_vector(self, self.terms, recompute_losses()).detach()
        self.scalarizer.update(v[: self.tasks])

    def logged_params(self) -> dict[str, float]:
        (logits,) = self.scalarizer.parameters()
        return {f"logit_{t}": float(v) for t, v in zip(self.terms, logits.detach(), strict=False)}


class IMTLLWeighting(_Parametric):
    """Liu et al. (2021), "Towards Impartial Multi-task Learning": IMTL-L, Σ exp(s_i)·L_i − s_i.

    TorchJD `IMTLL`; the learned scales s_i live in the weighting param group (lr × the
    searched `weight_lr_multiplier`, like uncertainty's s) and `project` keeps them inside
    `auto_weight_clamp`. Effective weights exp(s_i) from TorchJD's documented formula; the
    stationary point is exp(s_i*) = 1/L_i, as for uncertainty weighting.

    A control, not a scheme of its own: exp(s_i)·L_i − s_i is uncertainty weighting's
    exp(−s_i)·L_i + s_i with s → −s (the same loss, checked in tests/test_weighting.py), so its
    weights are uncertainty's and, on the same fold and seed, so are its scores.
    `--arms all` leaves it out; name it to check that the study tells two equal arms apart from
    none.
    """

    arm = "imtl_l"
    label = "IMTL-L scales (control: uncertainty weights, s → −s)"
    paper = "Liu et al. 2021"
    inverse_loss_optimum = True
    color = "#72B7B2"
    control_of = "uncertainty"

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.terms = cfg.active_terms()
        self.clamp = cfg.auto_weight_clamp
        self.scalarizer = tjd.IMTLL(len(self.terms))

    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        v = _loss_vector(self, self.terms, losses)
        weights = torch.exp(self.scalarizer.log_scale).detach()  # ∂/∂L_i (e^{s_i} L_i − s_i)
        return self.scalarizer(v), dict(zip(self.terms, weights.unbind(), strict=True))

    def logged_params(self) -> dict[str, float]:
        return {
            f"s_{t}": float(v) for t, v in zip(self.terms, self.scalarizer.log_scale.detach(), strict=True)
        }

    def project(self) -> None:
        with torch.no_grad():
            self.scalarizer.log_scale.clamp_(*self.clamp)


class RandomWeighting(_Scalarized):
    """Lin et al. (2022), "Reasonable Effectiveness of Random Weighting" (RLW): fresh weights every step.

    λ = softmax(N(0, I)) drawn from torch's global generator at every training step (TorchJD
    `Random`, the paper's Algorithm 2): positive and summing to 1 (TorchJD's convention, not K).
    Effective weights by autograd (= λ); in evaluation their expectation, 1/K each.
    """

    arm = "rlw"
    label = "random loss weights (RLW)"
    paper = "Lin et al. 2022"
    learned = False
    color = "#9D755D"

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, tjd.Random())
        self.last_weights.fill_(1.0 / len(self.terms))

    def _eval_weights(self) -> Tensor:
        return torch.full_like(self.last_weights, 1.0 / len(self.terms))

"""The interface every loss-weighting scheme implements, `Weighting`, and what its schemes share.

Lifecycle: the LightningModule calls generic hooks, no-ops by default, and never asks which
scheme it trains: `project()` and `after_optimizer_step(recompute_losses)` after every
optimizer step (FAMO's update, with the losses recomputed on the same batch),
`on_train_epoch_end()` once per training epoch (DWA's roll; never per validation pass), and
`backward(losses, features)` in place of `total.backward()` (the gradient-level schemes, which
combine the per-term gradients of the shared encoder instead of the losses). In evaluation
(`.eval()` or no gradient) a stateful or random scheme changes no state and draws nothing: its
total is Σ w_i·L_i with the weights of its last training step (random weights: their
expectation, 1/K).
"""

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

Weights = dict[str, Tensor]
# The families the report groups the arms by, in its order: weights set by hand (or not at all),
# schemes that weigh the losses, schemes that combine the per-term gradients of the encoder.
FAMILIES: tuple[str, ...] = ("fixed", "loss-level", "gradient-level")


@dataclass(frozen=True)
class Knob:
    """A setting of one scheme that the search tunes: a `LossConfig` field and its range. The
    arm's first trial takes the field's default (the plan's value, or the paper's)."""

    field: str  # the LossConfig field the searched value goes into
    low: float
    high: float
    log: bool = False  # searched on a log scale
    integer: bool = False  # a count (trial.suggest_int), not a real number


class Weighting(nn.Module, abc.ABC):
    """One way of combining the per-term losses into the loss that is minimised."""

    # What the scheme says of itself: the study, the report, the dashboard note and the CLI help
    # read these, so a new scheme is described here and nowhere else.
    arm: ClassVar[str]  # the study arm that trains with this strategy
    label: ClassVar[str]  # in words, for headlines and tables
    paper: ClassVar[str]  # where the scheme comes from: its paper, or how its weights are set
    learned: ClassVar[bool] = True  # learns its weights while training: the report judges how far they moved
    weights_vary: ClassVar[bool] = True  # its weights change during training: a panel in the weights figure
    inverse_loss_optimum: ClassVar[bool] = False  # stationary at weight 1/L_i: drawn as its reference
    color: ClassVar[str]  # its colour in every figure
    family: ClassVar[str] = "loss-level"  # one of FAMILIES
    # The arm this one is only a reparametrisation of: a labelled control, left out of `--arms all`.
    control_of: ClassVar[str | None] = None
    # Its place in the study's list of arms (and every table and figure): ascending.
    position: ClassVar[int]
    # What the search tunes besides the shared knobs (study/space.py); an arm without knobs of its
    # own searches the shared space only.
    knobs: ClassVar[tuple[Knob, ...]] = ()

    @abc.abstractmethod
    def forward(self, losses: dict[str, Tensor]) -> tuple[Tensor, Weights]:
        """(total loss, the effective weight of each term, detached from the graph)."""

    def backward(
        self, total: Tensor, losses: dict[str, Tensor], features: Tensor | None, params: Iterable[Tensor]
    ) -> Weights | None:
        """Fill the gradients of the step (called in place of `total.backward()`). `losses` are the
        step's terms, `features` the shared representation the heads read (the network's
        "features" output) and `params` the network's parameters. Returns the step's effective weights where only the backward knows
        them (the gradient-level schemes); None: the weights `forward` returned stand."""
        total.backward()
        return None

    def logged_params(self) -> dict[str, float]:
        """Learned quantities worth a line in the training log, by name."""
        return {}

    def project(self) -> None:
        """Bring the learned parameters back inside their bounds; called after every optimizer step.

        A projection rather than a clamp inside `forward`: a clamped value has zero gradient
        beyond the bound, so a parameter that overshot it would sit there with no signal to
        come back; projected, it stays a parameter on the bound with its true gradient.
        """

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The parameters the module's optimizer trains, in the weighting's own param group
        (FAMO steps its logits with its own Adam, so it hands over none)."""
        return list(self.parameters())

    def epoch_weights(self, step_mean: Weights) -> Weights:
        """The effective weights recorded for the training epoch that just ended.

        `step_mean` is the mean over the epoch's training steps of the weights `forward`
        returned. This default keeps it: the weights of DWA (constant within an epoch), FAMO
        (a function of each batch's losses) and random weights (fresh every step).
        """
        return step_mean

    def on_train_epoch_end(self) -> None:
        """Called once at the end of every training epoch (after any validation pass in it)."""

    def after_optimizer_step(self, recompute_losses: Callable[[], dict[str, Tensor]]) -> None:
        """Called after every optimizer step (and `project`). `recompute_losses()` evaluates the
        loss terms again on the step's batch with the updated network (no gradient, same dropout
        masks, no running state touched); a scheme that needs them calls it, once."""


class Parametric(Weighting):
    """Weights that are a function of the parameters alone: each epoch records them as they
    stand at its end (the effective weights of unit losses)."""

    def epoch_weights(self, step_mean: Weights) -> Weights:
        device = next((w.device for w in step_mean.values()), None)
        with torch.no_grad():
            _, weights = self({k: torch.ones((), device=device) for k in step_mean})
        return weights


def clamp_params(params: nn.ParameterDict, bounds: tuple[float, float]) -> None:
    with torch.no_grad():
        for p in params.values():
            p.clamp_(*bounds)


def loss_vector(w: Weighting, terms: tuple[str, ...], losses: dict[str, Tensor]) -> Tensor:
    """The losses as one vector in `terms` order (the active terms: absent terms stay absent)."""
    if set(losses) != set(terms):
        raise ValueError(f"{w.arm} weights the terms {terms}, got {tuple(losses)}")
    return torch.stack([losses[t] for t in terms])

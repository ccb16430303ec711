"""Learned weights frozen into the fixed formula: did learning matter, or only where it ended?

For a loss-level arm that learns its weights (Gama & Grassi 2025 copy learned weights into fixed
runs the same way), the frozen configuration is the fixed arm at the learned arm's effective weights:
per confirmation fold the mean over its last quarter of epochs (at least one) of each term's
effective weight ∂ total / ∂ L_i, averaged over every fold and seed of the arm's current
confirmation runs, then mapped onto ``alpha·L18 + (1 − alpha)·Lbin + w9·L9 + wkl·KL`` by dividing
by w18 + wbin:

    alpha = w18 / (w18 + wbin),  nine_class_loss_weight = w9 / (w18 + wbin),  kl_weight = wkl / (w18 + wbin)

The dropped scale w18 + wbin multiplies every gradient by a constant: AdamW's steps do not depend on
it (each coordinate is divided by its own running scale), only gradient clipping does, which the
frozen run applies to its normalised loss. The learned arm's shared knobs (lr, weight decay, dropout)
come with it; no search. Gradient-level arms record per-step combinations of gradients, not loss
weights: frozen, they would be a different method, so they get no frozen configuration. An arm
whose log-weights moved less than MOVED is effectively fixed already: no frozen configuration.

A frozen configuration is confirmed as its own "arm" in the confirmation study, labelled
``fixed@ARM`` (:func:`label`); its pairs re-train the learned arm's current best trial's knobs, so
they are current exactly when the learned arm's pairs are (``source_trial`` is that trial).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cmi_model.weighting import SCHEMES
from study.records import FROZEN_PREFIX, TrialRecord, source_arm

TERMS = ("multiclass", "binary", "nine_class", "kl")  # the loss terms, as the fold records name them
MOVED = 0.1  # learned log-weights that moved less than this (max |Δs| over folds) are effectively fixed
LAST_SHARE = 0.25  # the share of a fold's last epochs whose effective weights are averaged


def label(arm: str) -> str:
    """The confirmation's arm label of `arm`'s frozen weights."""
    return FROZEN_PREFIX + arm


def is_frozen(arm: str | None) -> bool:
    return bool(arm) and arm.startswith(FROZEN_PREFIX) and source_arm(arm) in SCHEMES


def freezable(arm: str) -> bool:
    """A loss-level arm whose weights are learned (a gradient-level arm's are not loss weights)."""
    scheme = SCHEMES.get(arm)
    return scheme is not None and scheme.family == "loss-level" and scheme.learned


def moved(runs: Iterable[TrialRecord]) -> float | None:
    """The largest |Δs| over the runs' folds (None: not recorded)."""
    known = [f.max_abs_delta_s for r in runs for f in r.folds if f.max_abs_delta_s is not None]
    return max(known) if known else None


def _fold_weights(fold) -> dict[str, float] | None:
    traj = fold.weight_trajectory
    if all(traj.get(t) for t in TERMS):
        last = max(1, round(len(traj[TERMS[0]]) * LAST_SHARE))
        return {t: float(np.mean(traj[t][-last:])) for t in TERMS}
    if all(t in fold.weights for t in TERMS):
        return {t: float(fold.weights[t]) for t in TERMS}
    return None


def frozen_params(runs: list[TrialRecord]) -> dict[str, float] | None:
    """The fixed arm's parameters at these runs' learned weights, with their shared knobs; None
    when a fold lacks a term's weight or the runs disagree on their source configuration."""
    folds = [_fold_weights(f) for r in runs for f in r.folds]
    sources = {r.source_trial for r in runs}
    if not folds or any(w is None for w in folds) or len(sources) != 1 or runs[0].params is None:
        return None
    w = {t: float(np.mean([f[t] for f in folds])) for t in TERMS}  # type: ignore[index]
    scale = w["multiclass"] + w["binary"]
    if not (np.isfinite(scale) and scale > 0):
        return None
    # The shared knobs: what the learned arm searched besides its own (its scheme's knobs).
    own = {k.field for k in SCHEMES[runs[0].arm].knobs} if runs[0].arm in SCHEMES else set()
    shared = {k: v for k, v in runs[0].params.items() if k not in own}
    return shared | {
        "alpha": w["multiclass"] / scale,
        "nine_class_loss_weight": w["nine_class"] / scale,
        "kl_weight": w["kl"] / scale,
    }

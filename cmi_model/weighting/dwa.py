"""Dynamic Weight Average (Liu, Johns & Davison 2019)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torchjd import scalarization as tjd

from cmi_model.weighting._scalarized import Scalarized
from cmi_model.weighting.base import Knob

if TYPE_CHECKING:
    from cmi_model.config import LossConfig


class DWAWeighting(Scalarized):
    """Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning with Attention": Dynamic Weight Average.

    λ_k(t) = K·softmax_k(r(t−1)/T), r_k = L̄_k(t−1)/L̄_k(t−2) from the mean losses of the two
    previous epochs (TorchJD `DWA`; uniform for the first two epochs). Effective weights by
    autograd (= λ). The epoch's mean is rolled in `on_train_epoch_end`, once per epoch.
    """

    arm = "dwa"
    label = "Dynamic Weight Average (DWA)"
    paper = "Liu, Johns & Davison 2019"
    color = "#B279A2"
    position = 50
    knobs = (Knob("dwa_temperature", 0.5, 10.0, log=True),)

    def __init__(self, cfg: LossConfig):
        super().__init__(cfg, tjd.DWA(temperature=cfg.dwa_temperature))

    def on_train_epoch_end(self) -> None:
        self.scalarizer.step()

    def logged_params(self) -> dict[str, float]:
        # Log-weights of the last training step (0 before the first): how far DWA moved them.
        return {f"log_w_{t}": math.log(float(w)) for t, w in zip(self.terms, self.last_weights, strict=True)}

"""Loss-weighting schemes behind one interface, `Weighting` (base.py), and their registry.

Each scheme is an nn.Module whose forward takes the active per-term losses
({"multiclass", "binary", "nine_class", "kl"} ⊇ keys) and returns (total loss, effective
weight applied to each term). Build one with `build_weighting(loss_config)`. Loss-level
schemes (loss_level.py) combine the losses; gradient-level ones (gradient_level.py) combine
the per-term gradients of the shared encoder.

Two names meet here: `LossConfig.auto_weighting` picks a strategy ("none" for the fixed
weights), and the study calls the same scheme an arm ("fixed"). Each class carries its
arm, so `strategy_for_arm` and `ARMS` translate between the two from one registry.
"""

from cmi_model.config import LossConfig
from cmi_model.weighting.base import FAMILIES, Weighting, Weights
from cmi_model.weighting.gradient_level import (
    AlignedMTLWeighting,
    CAGradWeighting,
    IMTLGWeighting,
    MGDAWeighting,
    NashMTLWeighting,
    PCGradWeighting,
    UPGradWeighting,
)
from cmi_model.weighting.loss_level import (
    DirectWeighting,
    DWAWeighting,
    EqualWeighting,
    FAMOWeighting,
    FixedWeighting,
    IMTLLWeighting,
    RandomWeighting,
    UncertaintyWeighting,
)

__all__ = [
    "ALL_ARMS",
    "ARMS",
    "BASELINE_ARM",
    "FAMILIES",
    "NO_TUNING_ARM",
    "SCHEMES",
    "STRATEGIES",
    "Weighting",
    "Weights",
    "build_weighting",
    "strategy_for_arm",
    "AlignedMTLWeighting",
    "CAGradWeighting",
    "IMTLGWeighting",
    "MGDAWeighting",
    "NashMTLWeighting",
    "PCGradWeighting",
    "UPGradWeighting",
    "DirectWeighting",
    "DWAWeighting",
    "EqualWeighting",
    "FAMOWeighting",
    "FixedWeighting",
    "IMTLLWeighting",
    "RandomWeighting",
    "UncertaintyWeighting",
]

# LossConfig.auto_weighting value → strategy; the order is the arms' order in the study.
STRATEGIES: dict[str, type[Weighting]] = {
    "none": FixedWeighting,
    "equal": EqualWeighting,
    "uncertainty": UncertaintyWeighting,
    "direct": DirectWeighting,
    "dwa": DWAWeighting,
    "famo": FAMOWeighting,
    "imtl_l": IMTLLWeighting,
    "rlw": RandomWeighting,
    "upgrad": UPGradWeighting,
    "mgda": MGDAWeighting,
    "pcgrad": PCGradWeighting,
    "imtl_g": IMTLGWeighting,
    "aligned_mtl": AlignedMTLWeighting,
    "cagrad": CAGradWeighting,
    "nash_mtl": NashMTLWeighting,
}
ARMS: tuple[str, ...] = tuple(cls.arm for cls in STRATEGIES.values())
# What `--arms all` runs: every arm but the controls (an arm that only reparametrises another).
ALL_ARMS: tuple[str, ...] = tuple(cls.arm for cls in STRATEGIES.values() if cls.control_of is None)
_STRATEGY_OF_ARM = {cls.arm: name for name, cls in STRATEGIES.items()}
SCHEMES: dict[str, type[Weighting]] = {cls.arm: cls for cls in STRATEGIES.values()}  # arm → its class
# Two arms have a part in every comparison: the baseline that every other arm is compared with,
# and the reference line of what no tuning at all gives.
BASELINE_ARM = FixedWeighting.arm
NO_TUNING_ARM = EqualWeighting.arm


def build_weighting(cfg: LossConfig) -> Weighting:
    return STRATEGIES[cfg.auto_weighting](cfg)


def strategy_for_arm(arm: str) -> str:
    """The `LossConfig.auto_weighting` value of a study arm ("fixed" → "none")."""
    try:
        return _STRATEGY_OF_ARM[arm]
    except KeyError:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}") from None

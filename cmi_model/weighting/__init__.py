"""Loss-weighting schemes behind one interface, `Weighting` (base.py), one file per scheme.

Each scheme is an nn.Module whose forward takes the active per-term losses
({"multiclass", "binary", "nine_class", "kl"} ⊇ keys) and returns (total loss, effective
weight applied to each term). Loss-level schemes combine the losses; gradient-level ones
(`_jacobian.GradientLevel`) combine the per-term gradients of the shared encoder.

The registry is the package itself: every module here whose name does not start with "_" (and
is not base.py) holds one scheme, a `Weighting` subclass whose `arm` is the file's name. The study's arms,
`LossConfig.auto_weighting`'s values, the search space of each arm (its `knobs`) and the report's
labels and colours are all read from those classes: a new scheme is one new file.
"""

import importlib
import pkgutil

from cmi_model.weighting.base import FAMILIES, Knob, Weighting, Weights

__all__ = [
    "ALL_ARMS",
    "ARMS",
    "BASELINE_ARM",
    "FAMILIES",
    "Knob",
    "NO_TUNING_ARM",
    "SCHEMES",
    "Weighting",
    "Weights",
    "build_weighting",
    "scheme",
]


# What every scheme states of itself: the study, the report and the CLI's help read these.
STATED = ("arm", "label", "paper", "color", "position")


def _discover(path=__path__, package: str = __name__) -> dict[str, type[Weighting]]:
    """arm → scheme class, from the package's scheme modules, in the classes' `position` order. A
    module that breaks the rules (one class, named after its file, stating STATED, a known family,
    a position of its own) is an ImportError naming the file."""
    found: dict[str, type[Weighting]] = {}
    for info in pkgutil.iter_modules(path):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        where = module.__file__
        mine = [
            c
            for c in vars(module).values()
            if isinstance(c, type)
            and issubclass(c, Weighting)
            and c.__module__ == module.__name__
            and "arm" in vars(c)
        ]
        if len(mine) != 1:
            raise ImportError(
                f"{where}: a scheme module holds one Weighting class with an arm, found {len(mine)}"
            )
        cls = mine[0]
        if missing := [name for name in STATED if name not in vars(cls)]:
            raise ImportError(f"{where}: {cls.__name__} does not state its {', '.join(missing)}")
        if cls.arm != info.name:  # the file is named after its arm: one place to look for it
            raise ImportError(f"{where}: its scheme's arm is {cls.arm!r}, not the file's name")
        if cls.family not in FAMILIES:
            raise ImportError(f"{where}: family {cls.family!r} is not one of {FAMILIES}")
        if same := [c for c in found.values() if c.position == cls.position]:
            raise ImportError(
                f"{where}: position {cls.position} is already {same[0].arm}'s: the arms' order is ambiguous"
            )
        found[cls.arm] = cls
    return dict(sorted(found.items(), key=lambda item: item[1].position))


SCHEMES: dict[str, type[Weighting]] = _discover()  # arm → its class, in the study's order
ARMS: tuple[str, ...] = tuple(SCHEMES)
# What `--arms all` runs: every arm but the controls (an arm that only reparametrises another).
ALL_ARMS: tuple[str, ...] = tuple(arm for arm, cls in SCHEMES.items() if cls.control_of is None)
# Two arms have a part in every comparison: the baseline that every other arm is compared with,
# and the reference line of what no tuning at all gives.
BASELINE_ARM = "fixed"
NO_TUNING_ARM = "equal"
assert {BASELINE_ARM, NO_TUNING_ARM} <= set(SCHEMES), "the baseline and no-tuning schemes are in the folder"


def scheme(arm: str) -> type[Weighting]:
    try:
        return SCHEMES[arm]
    except KeyError:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}") from None


def build_weighting(cfg) -> Weighting:
    """The scheme `cfg.auto_weighting` (a LossConfig) names, built from it."""
    return scheme(cfg.auto_weighting)(cfg)

"""Pydantic configs: every knob of the model, its losses, the data and training.

Unknown keys and impossible values are validation errors (the CLI turns them into
one line and exit code 2). No float may be inf or NaN (`allow_inf_nan=False`), and every
size has an upper bound (stated per field) far beyond any sane run, so that a typo such as
`max_len = 1000000` fails at once instead of exhausting memory hours into a study.
"""

import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmi_model.weighting import ARMS


def _takes_bool(annotation) -> bool:
    return annotation is bool or bool in typing.get_args(annotation)


class StrictModel(BaseModel):
    """Unknown keys, inf/NaN and booleans where a number belongs are errors; instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data):
        # pydantic reads `true` as 1 for a number: `max_epochs = true` would quietly train one epoch.
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and not _takes_bool(field.annotation):
                    raise ValueError(f"{name}: expected a number, got the boolean {str(data[name]).lower()}")
        return data


MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range is 0..2**32-1


class LossConfig(StrictModel):
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # share of the 18-class loss vs the binary loss
    nine_class_loss_weight: float = Field(0.2, ge=0.0)  # weight of the 9-class head's CE
    kl_weight: float = Field(0.1, ge=0.0)  # weight of KL(p9_from_18 || p9); 0 removes the term
    kl_temperature: float = Field(1.0, gt=0.0)  # softens both distributions inside the KL
    nine_class_head_enabled: bool = True  # off: no 9-class head, no 9-class CE, no KL
    # The weighting scheme, by arm name (cmi_model.weighting: one file each); "fixed": the weights above.
    auto_weighting: Literal[ARMS] = "fixed"
    auto_weight_clamp: tuple[float, float] = (-10.0, 10.0)  # bounds on each learned log-weight
    uncertainty_init_value: float = 0.0  # initial s_i (weight exp(-s_i) = 1 at 0)
    weight_lr_multiplier: float = Field(0.1, gt=0.0)  # lr of weighting params = lr × this
    dwa_temperature: float = Field(2.0, gt=0.0)  # DWA softmax temperature T (paper: 2); larger: more uniform
    famo_lr: float = Field(0.025, gt=0.0)  # lr of FAMO's own Adam on its task logits (paper: 0.025)
    cagrad_c: float = Field(0.4, ge=0.0, lt=1.0)  # CAGrad's radius c (paper: 0.4 on NYU-v2; < 1 to converge)
    nash_update_every: int = Field(1, ge=1, le=10_000)  # Nash-MTL solves every this many steps (paper: 1)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # for both cross-entropy heads
    class_weighting: bool = False  # inverse-frequency CE weights fitted on the training fold

    @field_validator("auto_weighting", mode="before")
    @classmethod
    def _fixed_was_none(cls, value):
        # Before the schemes were named by arm, the fixed weights were "none" (older TOML files).
        return "fixed" if value == "none" else value

    @model_validator(mode="after")
    def _check(self) -> "LossConfig":
        low, high = self.auto_weight_clamp
        if not low < high:
            raise ValueError(f"auto_weight_clamp low ({low}) must be below high ({high})")
        if not low <= self.uncertainty_init_value <= high:
            raise ValueError(
                f"uncertainty_init_value {self.uncertainty_init_value} lies outside "
                f"auto_weight_clamp {self.auto_weight_clamp}"
            )
        return self

    @property
    def kl_active(self) -> bool:
        return self.nine_class_head_enabled and self.kl_weight > 0

    def active_terms(self) -> tuple[str, ...]:
        """Loss terms present under this config, in a fixed order."""
        terms = ["multiclass", "binary"]
        if self.nine_class_head_enabled:
            terms.append("nine_class")
        if self.kl_active:
            terms.append("kl")
        return tuple(terms)


class ModelConfig(StrictModel):
    # Upper bounds: 4x to 16x the public preset (d_model 256, 8 layers, 8 heads, d_ff 1024, kernel 31).
    d_model: int = Field(64, ge=8, le=4096)
    n_layers: int = Field(2, ge=1, le=64)
    n_heads: int = Field(4, ge=1, le=64)
    d_ff: int = Field(128, ge=8, le=16384)
    kernel_size: int = Field(15, ge=3, le=255)  # depthwise conv kernel of the convolution module
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # Dropout on the attention weights; None: the same as `dropout` (the search then moves both).
    attn_dropout: float | None = Field(None, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({self.kernel_size}) must be odd to keep sequence length")
        return self


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Seconds on a CPU: for tests and the demo. 2 heads, no attention dropout: on a CPU the
    # attention's per-head kernels and its (batch × heads × T × T) dropout mask cost 40% of each
    # step at 4 heads with dropout (benchmarks/bench_study.py, "tiny model step").
    "tiny": ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, kernel_size=7, attn_dropout=0.0),
    "small": ModelConfig(),
    # The public Squeezeformer experiment this study reproduces.
    "public": ModelConfig(d_model=256, n_layers=8, n_heads=8, d_ff=1024, kernel_size=31),
}


class DataConfig(StrictModel):
    # Longer sequences keep their last max_len steps (the gesture); at most 10,000 (the longest
    # real sequence has ~700 rows).
    max_len: int = Field(128, ge=8, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)  # at most 65,536 sequences per batch
    modalities: Literal["all", "imu"] = "all"  # "imu": drop thermopiles and ToF (as in IMU-only test data)


class TrainConfig(StrictModel):
    lr: float = Field(2e-3, gt=0.0, le=1.0)  # at most 1 (AdamW diverges far below that)
    weight_decay: float = Field(1e-2, ge=0.0)
    max_epochs: int = Field(20, ge=1, le=10_000)  # at most 10,000
    warmup_epochs: float = Field(1.0, ge=0.0, le=10_000)  # linear warmup, then cosine decay; at most 10,000
    grad_clip: float = Field(1.0, gt=0.0)  # max gradient norm of the network (learned weights unclipped)
    # How a fold chooses the model it is scored with. Early stopping on the validation fold
    # itself would report a maximum over epochs of the evaluation (optimistic, and more so the
    # noisier an arm's epochs are), so the validation subjects never choose anything:
    # "none": train the whole warm-up + cosine schedule and score the last epoch;
    # "inner": choose the epoch on training subjects set aside (`inner_fraction`), then score it.
    early_stopping: Literal["none", "inner"] = "none"
    inner_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # share of training subjects set aside for "inner"
    # Epochs without a better stop-subject score before "inner" stops; at most 10,000.
    patience: int = Field(5, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # 0..2**32-1
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    # Lightning precision of training and evaluation. "auto": bf16-mixed on a GPU with native bf16
    # and on a CPU with bf16 units for a model wide enough to gain (cmi_model.train.auto_precision),
    # else 32-true; a worker joining a study trains in the study's precision.
    # Under autocast the loss terms, the learned weighting parameters, the optimizer state and the
    # metric's softmax stay fp32 (cmi_model/losses.py, weighting/, module.py). It changes scores, so
    # a study records the precision it resolved to and refuses a worker that resolves to another.
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto"

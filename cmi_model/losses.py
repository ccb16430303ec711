"""Per-head loss terms. Weighting them is the job of cmi_model.weighting."""

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from cmi_model.config import LossConfig
from cmi_model.labels import aggregation_matrix

_AGGREGATE = torch.from_numpy(aggregation_matrix())  # (18, 9), from the label hierarchy, never by position


@functools.cache
def _aggregate_on(device: torch.device) -> Tensor:
    """The aggregation matrix on `device`, copied there once (not once per step)."""
    return _AGGREGATE.to(device)


def inverse_frequency_weights(labels, n_classes: int) -> Tensor:
    """w_y ∝ 1/n_y on the training fold, scaled so a sample's mean weight is 1; unseen classes get 0."""
    counts = torch.bincount(torch.as_tensor(labels), minlength=n_classes).double()
    w = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), 0.0)
    return w.float()


def kl_consistency(logits18: Tensor, logits9: Tensor, temperature: float) -> Tensor:
    """KL(p9_from_18 || p9): the 9-class head should agree with the 18-class head summed by hierarchy.

    In fp32 with autocast off: autocast would run the aggregation matmul in bf16, whose rounding
    (std 1.5e-4 against a converged KL of ~2e-4) makes the KL negative on some batches, and the
    schemes that take its log (FAMO, uncertainty weights) would chase that noise or reach NaN."""
    with torch.autocast(logits18.device.type, enabled=False):
        p18 = torch.softmax(logits18.float() / temperature, dim=-1)  # (B, 18)
        p9_from_18 = p18 @ _aggregate_on(p18.device)  # (B, 9)
        log_p9 = torch.log_softmax(logits9.float() / temperature, dim=-1)
        return F.kl_div(log_p9, p9_from_18, reduction="batchmean")


def loss_terms(
    out: dict[str, Tensor],
    batch: dict[str, Tensor],
    cfg: LossConfig,
    class_weights: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The active terms of `cfg` (see LossConfig.active_terms), each a scalar."""
    cw = class_weights or {}
    terms = {
        "multiclass": F.cross_entropy(
            out["multiclass"].float(),
            batch["y18"],
            weight=cw.get("multiclass"),
            label_smoothing=cfg.label_smoothing,
        ),
        "binary": F.binary_cross_entropy_with_logits(out["binary"].float(), batch["ybin"].float()),
    }
    if cfg.nine_class_head_enabled:
        terms["nine_class"] = F.cross_entropy(
            out["nine_class"].float(),
            batch["y9"],
            weight=cw.get("nine_class"),
            label_smoothing=cfg.label_smoothing,
        )
    if cfg.kl_active:
        terms["kl"] = kl_consistency(out["multiclass"], out["nine_class"], cfg.kl_temperature)
    return terms

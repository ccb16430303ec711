"""Fit one fold → FoldResult."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch

from cmi_model.config import DataConfig, LossConfig, ModelConfig, TrainConfig
from cmi_model.data import SequenceData
from cmi_model.dataset import Normalizer, make_loader
from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.losses import inverse_frequency_weights
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork


@dataclass
class FoldResult:
    score: float  # competition score at the best validation epoch
    binary_f1: float
    macro_f1: float
    best_epoch: int
    epochs: int  # epochs actually run (early stopping may end sooner)
    seconds: float
    device: str
    weights: dict[str, float]  # effective weights at the end of training
    weight_trajectory: dict[str, list[float]]  # term → effective weight after each epoch
    val_indices: np.ndarray = field(repr=False)  # sequence indices of the validation fold
    val_probs: np.ndarray = field(repr=False)  # (n_val, 18) class probabilities at the best epoch


def resolve_accelerator(requested: str) -> tuple[str, str]:
    """(Lightning accelerator, precision): bf16-mixed on CUDA, fp32 on CPU."""
    use_gpu = requested in ("gpu", "cuda") or (requested == "auto" and torch.cuda.is_available())
    return ("gpu", "bf16-mixed") if use_gpu else ("cpu", "32-true")


def quiet_lightning() -> None:
    """Lightning's banners and tips are noise inside a study with its own progress bars."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # Lightning 2.6 on torch 2.13
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")


def _class_weights(y18: np.ndarray) -> dict[str, torch.Tensor]:
    """Inverse-frequency cross-entropy weights of the 18- and 9-class heads."""
    return {
        "multiclass": inverse_frequency_weights(y18, len(GESTURES)),
        "nine_class": inverse_frequency_weights(EIGHTEEN_TO_NINE[y18], len(NINE_CLASSES)),
    }


def fit_fold(
    data: SequenceData,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    callbacks: list[pl.Callback] | None = None,
) -> FoldResult:
    """Train on train_idx with early stopping on val/score; raises TrainingDiverged on NaN/inf loss."""
    quiet_lightning()
    start = time.perf_counter()
    pl.seed_everything(train_cfg.seed, workers=True, verbose=False)
    norm = Normalizer.fit(data, train_idx)
    train_loader = make_loader(data, train_idx, norm, data_cfg, shuffle=True, seed=train_cfg.seed)
    val_loader = make_loader(data, val_idx, norm, data_cfg, shuffle=False)
    class_weights = _class_weights(data.gesture[train_idx]) if loss_cfg.class_weighting else None
    network = CMINetwork(model_cfg, nine_class_head=loss_cfg.nine_class_head_enabled)
    module = CMILitModule(network, loss_cfg, train_cfg, class_weights)
    accelerator, precision = resolve_accelerator(train_cfg.accelerator)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=train_cfg.max_epochs,
        gradient_clip_val=train_cfg.grad_clip,
        callbacks=[
            pl.callbacks.EarlyStopping(monitor="val/score", mode="max", patience=train_cfg.patience),
            *(callbacks or []),
        ],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=accelerator == "cpu",
    )
    trainer.fit(module, train_loader, val_loader)
    best = module.best
    if best is None:
        raise RuntimeError("training ended before the first validation epoch")
    order = np.argsort(best["indices"])  # back to val_idx order regardless of loader order
    trajectory = {t: [h[t] for h in module.weight_history] for t in loss_cfg.active_terms()}
    return FoldResult(
        score=best["score"],
        binary_f1=best["binary_f1"],
        macro_f1=best["macro_f1"],
        best_epoch=best["epoch"],
        epochs=trainer.current_epoch,
        seconds=time.perf_counter() - start,
        device=torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu",
        weights=module.weight_history[-1] if module.weight_history else {},
        weight_trajectory=trajectory,
        val_indices=best["indices"][order],
        val_probs=best["probs"][order],
    )

"""Fit one fold → FoldResult."""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from cmi_model.config import DataConfig, LossConfig, ModelConfig, TrainConfig
from cmi_model.data import SequenceData
from cmi_model.dataset import FoldCache, TensorBatches
from cmi_model.errors import Interrupted
from cmi_model.folds import inner_split, subjects_of
from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.losses import inverse_frequency_weights
from cmi_model.metric import score_indices, subject_scores
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.stopping import raise_if_stopping, request_stop, stop_signal


@dataclass
class FoldResult:
    score: float  # competition score of the chosen model, evaluated once on the validation fold
    binary_f1: float
    macro_f1: float
    rule: str  # how the model was chosen: "last_epoch" (the whole schedule) or "inner" (early stopping)
    best_epoch: int  # the chosen epoch, 0-based: the last one under "last_epoch"
    epochs: int  # epochs actually run ("inner" early stopping may end sooner)
    seconds: float
    device: str
    precision: str  # the Lightning precision it trained and predicted in ("32-true", "bf16-mixed")
    weights: dict[str, float]  # effective weights of the chosen epoch's model
    weight_trajectory: dict[str, list[float]]  # term → effective weight after each epoch
    loss_trajectory: dict[str, list[float]]  # term → mean training loss of each epoch (unweighted)
    learned_start: dict[str, float]  # weighting.logged_params() before the first step ({} for fixed)
    learned_end: dict[str, float]  # weighting.logged_params() after the last step
    max_abs_delta_s: float | None  # largest |end − start| of a learned parameter; None: nothing learned
    val_subjects: list[str]  # subjects of the validation fold
    train_subjects: list[str]  # subjects whose sequences the weights were fitted on
    subject_scores: dict[
        str, dict
    ]  # validation subject → its score, binary_f1, macro_f1, n (metric.subject_scores)
    stop_subjects: list[str]  # training subjects set aside to choose the epoch (empty for "last_epoch")
    val_indices: np.ndarray = field(repr=False)  # sequence indices of the validation fold, sorted
    val_probs: np.ndarray = field(repr=False)  # (n_val, 18) class probabilities of the chosen model
    # Wall seconds of the fold's phases: "prepare" (normalised, padded tensors; ~0 from a FoldCache
    # hit), "setup" (seeding, network, module, Trainer), "train" (trainer.fit), "predict".
    phase_seconds: dict[str, float] = field(default_factory=dict, repr=False)


NATIVE_BF16 = (8, 0)  # compute capability of Ampere, the first NVIDIA GPUs with bf16 units


def resolve_accelerator(
    requested: str, precision: str = "auto", model: ModelConfig | None = None
) -> tuple[str, str]:
    """(Lightning accelerator, precision): `precision` as asked, or for "auto" see `auto_precision`."""
    use_gpu = requested in ("gpu", "cuda") or (requested == "auto" and torch.cuda.is_available())
    if precision == "auto":
        precision = auto_precision(use_gpu, model)[0]
    return ("gpu" if use_gpu else "cpu"), precision


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of x86 bf16 units (AMX tiles, AVX512-BF16)


def cpu_bf16_units(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The CPU's bf16 units as /proc/cpuinfo names them (empty: bf16 runs in fp32 arithmetic there),
    counted only where torch dispatches AVX512 kernels (its oneDNN bf16 paths need them)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux: no claim
            return ()
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []
    )
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return ()
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


# The narrowest model (d_model) whose training step measured faster under bf16 autocast than in
# fp32 on a CPU with bf16 units (BENCHMARKS.md, "fp32 against bf16 on the CPU", AMX machine: 1.21x
# at 64, 1.00x at 48, 0.54x for the tiny preset at 32): in narrower ones the casts around every op
# and the attention's bf16 backward cost more than the smaller matmuls save.
CPU_BF16_MIN_WIDTH = 64


def auto_precision(use_gpu: bool, model: ModelConfig | None = None) -> tuple[str, str]:
    """(precision, why) for `precision = "auto"`: bf16-mixed on a GPU with native bf16, and on a
    CPU with bf16 units for a model at least CPU_BF16_MIN_WIDTH wide; else fp32.

    Not `torch.cuda.is_bf16_supported()`, which is true on older cards (T4, V100, P100) through
    emulation, slower there than fp32. Nor 16-mixed on them: its loss scaling reaches the total
    that Lightning backpropagates, not the per-term backward of the gradient-level arms, and
    Lightning skips unscaling before clipping with the fused AdamW used here."""
    if not use_gpu:
        units = cpu_bf16_units()
        if not units:
            return "32-true", "the CPU has no bf16 units"
        width = model.d_model if model is not None else 0
        if width < CPU_BF16_MIN_WIDTH:
            return "32-true", (
                f"the CPU has bf16 units ({', '.join(units)}), but a model of width {width} trains faster "
                f"in fp32 there (bf16 pays from width {CPU_BF16_MIN_WIDTH})"
            )
        return "bf16-mixed", f"the CPU has bf16 units ({', '.join(units)}) and the model is {width} wide"
    capability = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    cc = f"compute capability {capability[0]}.{capability[1]}"
    if tuple(capability) >= NATIVE_BF16:
        return "bf16-mixed", f"{name} has native bf16 ({cc})"
    return "32-true", f"{name} has no native bf16 ({cc} < 8.0)"


def quiet_lightning() -> None:
    """Lightning's banners and tips are noise inside a study with its own progress bars."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # Lightning 2.6 on torch 2.13
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")


class _StopOnSignal(pl.Callback):
    """Stops training at the next batch once a stopping signal was received (see
    cmi_model.stopping.request_stop): the handler's own exception may have been swallowed."""

    def on_train_batch_start(self, *args) -> None:
        raise_if_stopping()


def _class_weights(y18: np.ndarray) -> dict[str, torch.Tensor]:
    """Inverse-frequency cross-entropy weights of the 18- and 9-class heads."""
    return {
        "multiclass": inverse_frequency_weights(y18, len(GESTURES)),
        "nine_class": inverse_frequency_weights(EIGHTEEN_TO_NINE[y18], len(NINE_CLASSES)),
    }


def _predict(trainer: pl.Trainer, module: CMILitModule, batches) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, sequence indices) of one pass over the batches, in index order."""
    parts = trainer.predict(module, batches)
    probs, idx = (torch.cat(t).cpu().numpy() for t in zip(*parts, strict=True))
    order = np.argsort(idx)
    return probs[order].astype(np.float32), idx[order]


def fold_state(seed: int | None) -> None:
    """The process-wide state a fold's numbers depend on, set from the fold alone (seed: every
    random generator, as `pl.seed_everything`; None: leave them), so that what the process ran
    before (other folds, trials, arms, tests) cannot reach it.

    Deterministic algorithms on every device: on CUDA the attention and convolution backward
    kernels otherwise vary from run to run, and the sampler's draws with them after the first
    trial. cuBLAS needs its workspace fixed before its first call (what Lightning's
    `deterministic=True` sets too). Without `fill_uninitialized_memory = False` every new
    uninitialised tensor would be filled with NaN (a debugging aid: ~4% of the tiny model's CPU
    step, in torch.profiler); no result reads uninitialised memory, so the results are the same
    without it (tested). The one setting left to the worker is its torch thread count
    (`--threads`): reductions split over more threads round differently in the last bits, so it
    is recorded with every trial.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)


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
    fold_cache: FoldCache | None = None,
) -> FoldResult:
    """Train on train_idx, choose the model without the validation fold (`TrainConfig.early_stopping`),
    then score it once on val_idx. Raises TrainingDiverged on a NaN/inf loss.

    fold_cache: where the fold's normalised, padded tensors are looked up and kept (every trial
    of a study trains the same folds); without one they are prepared for this call alone. The
    result is the same either way."""
    quiet_lightning()
    start = time.perf_counter()
    inner = train_cfg.early_stopping == "inner"
    if inner:
        fit_idx, stop_idx = inner_split(data, train_idx, train_cfg.inner_fraction, train_cfg.seed)
    else:
        fit_idx, stop_idx = train_idx, train_idx[:0]
    cache = fold_cache if fold_cache is not None else FoldCache(max_bytes=0)
    accelerator, precision = resolve_accelerator(train_cfg.accelerator, train_cfg.precision, model_cfg)
    # On the device the Trainer trains on (devices=1: the first visible), moved there once: the
    # batches are gathered there, not on the host and copied at every step.
    device = torch.device("cuda", 0) if accelerator == "gpu" else torch.device("cpu")
    # Normalised with the statistics of the rows the model is fitted on (fit_idx) only.
    fit_tensors = cache.tensors(data, fit_idx, fit_idx, data_cfg, device)
    val_tensors = cache.tensors(data, val_idx, fit_idx, data_cfg, device)
    fit_batches = TensorBatches(fit_tensors, data_cfg.batch_size, shuffle=True, seed=train_cfg.seed)
    prepared = time.perf_counter()
    fold_state(train_cfg.seed)
    class_weights = _class_weights(data.gesture[fit_idx]) if loss_cfg.class_weighting else None
    network = CMINetwork(model_cfg, nine_class_head=loss_cfg.nine_class_head_enabled)
    module = CMILitModule(network, loss_cfg, train_cfg, class_weights)
    learned_start = module.weighting.logged_params()
    stopping = [pl.callbacks.EarlyStopping(monitor="stop/score", mode="max", patience=train_cfg.patience)]
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=train_cfg.max_epochs,
        # No gradient_clip_val: CMILitModule.configure_gradient_clipping clips the network only.
        callbacks=[_StopOnSignal(), *(stopping if inner else []), *(callbacks or [])],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    fold_state(None)  # the Trainer set the flags again
    set_up = time.perf_counter()
    stop_batches = None
    if inner:
        stop_tensors = cache.tensors(data, stop_idx, fit_idx, data_cfg, device)
        stop_batches = TensorBatches(stop_tensors, data_cfg.batch_size, shuffle=False)
    try:  # without stop batches: no validation loop at all, nothing to choose
        trainer.fit(module, fit_batches, stop_batches)
    except SIGTERMException:
        # Lightning's own answer to a SIGTERM it saw (a silent SystemExit(0) at the end of the
        # epoch): the trial would be left RUNNING. It is a stop like any other.
        request_stop(signal.SIGTERM)
        raise Interrupted(stop_signal() or signal.SIGTERM) from None
    trained = time.perf_counter()
    learned_end = module.weighting.logged_params()
    epochs = len(module.weight_history)
    if inner:
        if module.best_state is None:
            raise RuntimeError("training ended before the first epoch on the stop subjects")
        module.load_state_dict(module.best_state)
        best_epoch = module.best["epoch"]
    else:
        best_epoch = epochs - 1
    val_probs, val_indices = _predict(
        trainer, module, TensorBatches(val_tensors, data_cfg.batch_size, shuffle=False)
    )
    predicted = time.perf_counter()
    val_pred = val_probs.argmax(1)
    s = score_indices(data.gesture[val_indices], val_pred)
    terms = loss_cfg.active_terms()
    return FoldResult(
        score=s.score,
        binary_f1=s.binary_f1,
        macro_f1=s.macro_f1,
        rule="inner" if inner else "last_epoch",
        best_epoch=best_epoch,
        epochs=epochs,
        seconds=time.perf_counter() - start,
        device=torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu",
        precision=precision,
        weights=module.weight_history[best_epoch] if module.weight_history else {},
        weight_trajectory={t: [h[t] for h in module.weight_history] for t in terms},
        loss_trajectory={t: [h[t] for h in module.loss_history] for t in terms},
        learned_start=learned_start,
        learned_end=learned_end,
        max_abs_delta_s=max((abs(learned_end[k] - v) for k, v in learned_start.items()), default=None),
        val_subjects=subjects_of(data, val_idx),
        train_subjects=subjects_of(data, fit_idx),
        subject_scores=subject_scores(data.gesture[val_indices], val_pred, data.subject[val_indices]),
        stop_subjects=subjects_of(data, stop_idx),
        val_indices=val_indices,
        val_probs=val_probs,
        phase_seconds={
            "prepare": prepared - start,
            "setup": set_up - prepared,
            "train": trained - set_up,
            "predict": predicted - trained,
        },
    )

"""CMILitModule: the LightningModule = network + per-head losses + a weighting strategy.

The module drives any strategy through the Weighting hooks alone (`project`,
`after_optimizer_step`, `on_train_epoch_end`, `epoch_weights`, `optimized_parameters`): it
never asks which scheme it trains.
"""

import contextlib
import math

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from cmi_model.config import LossConfig, TrainConfig
from cmi_model.errors import TrainingDiverged
from cmi_model.losses import loss_terms
from cmi_model.metric import score_indices
from cmi_model.weighting import build_weighting


class CMILitModule(pl.LightningModule):
    """Takes the network as an argument (any nn.Module with the CMINetwork output dict)."""

    def __init__(
        self,
        network: nn.Module,
        loss_cfg: LossConfig,
        train_cfg: TrainConfig,
        class_weights: dict[str, Tensor] | None = None,
    ):
        super().__init__()
        self.network = network
        self.loss_cfg, self.train_cfg = loss_cfg, train_cfg
        self.weighting = build_weighting(loss_cfg)
        for name, w in (class_weights or {}).items():
            self.register_buffer(f"class_weight_{name}", w)
        self._class_weight_names = tuple(class_weights or ())
        self.weight_history: list[dict[str, float]] = []  # effective weights at the end of each epoch
        self.loss_history: list[dict[str, float]] = []  # mean training loss of each term, per epoch
        # The validation loop, where there is one, only chooses the epoch (early stopping on
        # subjects set aside from training): its best epoch's scores and a copy of its weights.
        self.best: dict | None = None
        self.best_state: dict[str, Tensor] | None = None
        self._val_outputs: list[tuple[Tensor, Tensor]] = []  # (probs, y18) per batch, on the device
        self._train_sums: dict[str, Tensor] = {}
        self._train_count = 0
        self._weight_sums: dict[str, Tensor] = {}  # effective weights summed over the epoch's steps
        self._train_steps = 0
        # The training step's batch and the random state its forward started from, for
        # `recompute_losses` after the optimizer step (FAMO): same batch, same dropout masks.
        self._step_batch: dict[str, Tensor] | None = None
        # The step's loss terms, shared features and weights, for `backward` (the weighting's own)
        self._step: tuple[dict[str, Tensor], Tensor | None, dict[str, Tensor]] | None = None
        self._step_rng: tuple[Tensor, Tensor | None] | None = None
        # The epoch's first non-finite step, kept on the device and read once per epoch (a check
        # per step would make the CPU wait for the GPU before queueing the backward): its batch
        # index (−1: none) and its [total, *terms].
        self._bad_batch: Tensor | None = None
        self._bad_values: Tensor | None = None
        # BatchNorm-like layers would update running statistics in a training-mode forward;
        # the recomputation puts them in eval mode (CMINetwork has none: LayerNorm only).
        self._running_stat_layers = [
            m
            for m in network.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
        ]

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.network(batch)

    def _loss_terms(self, out: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        cw = {n: getattr(self, f"class_weight_{n}") for n in self._class_weight_names}
        return loss_terms(out, batch, self.loss_cfg, cw)

    def model_step(self, batch: dict[str, Tensor]):
        out = self(batch)
        terms = self._loss_terms(out, batch)
        # fp32 with autocast off: the schemes take logs, ratios and exponentials of the terms
        # (and TorchJD's scalarizers a matmul, which autocast would run in bf16).
        with torch.autocast(self.device.type, enabled=False):
            total, weights = self.weighting(terms)
        return out, terms, total, weights

    def _rng_state(self) -> tuple[Tensor, Tensor | None]:
        cuda = self.device.type == "cuda"
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None

    def recompute_losses(self) -> dict[str, Tensor]:
        """The loss terms of the last training step's batch with the network as it is now.

        Without gradient, in the step's precision, replaying the random state the step's forward
        started from (the same dropout masks, so the change measures the optimizer step alone)
        inside a forked generator (the global random stream is left as it was), and with any
        running-statistics layer in eval mode: gradients, parameters and running state untouched.
        """
        if self._step_batch is None or self._step_rng is None:
            raise RuntimeError("recompute_losses needs a training step first")
        cpu_state, cuda_state = self._step_rng
        devices = [self.device] if cuda_state is not None else []
        plugin = getattr(self._trainer, "precision_plugin", None)
        precision = plugin.train_step_context() if plugin is not None else contextlib.nullcontext()
        modes = [m.training for m in self._running_stat_layers]
        try:
            for m in self._running_stat_layers:
                m.eval()
            with torch.random.fork_rng(devices=devices), torch.no_grad(), precision:
                torch.set_rng_state(cpu_state)
                if cuda_state is not None:
                    torch.cuda.set_rng_state(cuda_state, self.device)
                terms = self._loss_terms(self(self._step_batch), self._step_batch)
        finally:
            for m, mode in zip(self._running_stat_layers, modes, strict=True):
                m.train(mode)
        return terms

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._step_batch, self._step_rng = batch, self._rng_state()
        out, terms, total, weights = self.model_step(batch)
        self._note_if_diverged(batch_idx, total, terms)
        # Summed here and logged once per epoch: a self.log call per term per step cost
        # more than 10% of a tiny model's step (benchmarks/bench_model.py).
        n = len(batch["y18"])
        for k, v in {"loss": total, **{f"loss_{t}": x for t, x in terms.items()}}.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach() * n
        self._train_count += n
        self._step = terms, out.get("features"), weights
        return total

    def _note_if_diverged(self, batch_idx: int, total: Tensor, terms: dict[str, Tensor]) -> None:
        """Record the epoch's first step with a NaN/inf loss, on the device (no host sync)."""
        values = torch.stack([total.detach(), *(v.detach() for v in terms.values())])
        if self._bad_batch is None:  # a step outside an epoch (tests, benchmarks): its own record
            self._reset_divergence()
        hit = (self._bad_batch < 0) & ~torch.isfinite(values[0])
        self._bad_batch = torch.where(hit, batch_idx, self._bad_batch)
        self._bad_values = torch.where(hit, values, self._bad_values)

    def raise_if_diverged(self) -> None:
        """TrainingDiverged naming the epoch, batch and terms of this epoch's first non-finite loss."""
        if self._bad_batch is None or int(self._bad_batch) < 0:
            return
        total, *terms = self._bad_values.tolist()
        named = ", ".join(f"{k}={v:.4g}" for k, v in zip(self.loss_cfg.active_terms(), terms, strict=True))
        raise TrainingDiverged(
            f"loss became {total} at epoch {self.current_epoch}, batch {int(self._bad_batch)} (terms: {named})"
        )

    def backward(self, loss: Tensor, *args, **kwargs) -> None:
        """The weighting's backward (a gradient-level scheme combines the per-term gradients of
        the shared features); the step's effective weights are summed once it is known."""
        if self._step is None:
            raise RuntimeError("backward needs a training step first")
        terms, features, weights = self._step
        self._step = None  # the graph is not kept past its backward
        try:
            weights = self.weighting.backward(loss, terms, features, self.network.parameters()) or weights
        except Exception:  # a solver fed NaN gradients (UPGrad's QP, CAGrad's cvxpy): say why first
            self.raise_if_diverged()
            raise
        for k, w in weights.items():
            self._weight_sums[k] = self._weight_sums.get(k, 0.0) + w
        self._train_steps += 1

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_count = {}, 0
        self._weight_sums, self._train_steps = {}, 0
        self._reset_divergence()

    def _reset_divergence(self) -> None:
        self._bad_batch = torch.full((), -1, dtype=torch.long, device=self.device)
        self._bad_values = torch.zeros(1 + len(self.loss_cfg.active_terms()), device=self.device)

    def on_train_epoch_end(self) -> None:
        self.raise_if_diverged()
        terms = self.loss_cfg.active_terms()
        if self._train_steps:
            step_mean = {k: self._weight_sums[k] / self._train_steps for k in terms}
        else:
            step_mean = {k: torch.full((), math.nan, device=self.device) for k in terms}
        weights = self.weighting.epoch_weights(step_mean)
        self.weight_history.append({k: float(v) for k, v in weights.items()})
        logged = {f"train/{k}": float(v) / max(1, self._train_count) for k, v in self._train_sums.items()}
        self.loss_history.append({t: logged[f"train/loss_{t}"] for t in self.loss_cfg.active_terms()})
        logged |= {f"train/weight_{k}": v for k, v in self.weight_history[-1].items()}
        logged |= {f"train/{k}": v for k, v in self.weighting.logged_params().items()}
        self.log_dict(logged)
        self.weighting.on_train_epoch_end()  # after the epoch's validation pass, once per epoch

    def on_train_end(self) -> None:
        self._step_batch = self._step_rng = self._step = None  # nothing of the last batch is kept

    # The validation loop runs on the stop subjects (TrainConfig.early_stopping = "inner"), never
    # on the fold's validation subjects: hence "stop/…", the metric the early stopping watches.
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out, terms, total, _ = self.model_step(batch)
        self.log("stop/loss", total, on_step=False, on_epoch=True, batch_size=len(batch["y18"]))
        probs = torch.softmax(out["multiclass"].float(), dim=-1)
        self._val_outputs.append((probs, batch["y18"]))  # to the host once, at the epoch's end

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        probs, y = (torch.cat(t).cpu() for t in zip(*self._val_outputs, strict=True))
        self._val_outputs.clear()
        s = score_indices(y.numpy(), probs.argmax(-1).numpy())
        self.log_dict({"stop/score": s.score, "stop/binary_f1": s.binary_f1, "stop/macro_f1": s.macro_f1})
        if self.trainer.sanity_checking:
            return
        if self.best is None or s.score > self.best["score"]:
            self.best = {"score": s.score, "epoch": self.current_epoch}
            # In memory, not a checkpoint file: one model's weights, restored after training.
            self.best_state = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        """(18-class probabilities, sequence indices) of a batch, left on the device (train._predict
        copies the whole pass to the host at once): the one evaluation of a fold."""
        probs = torch.softmax(self(batch)["multiclass"].float(), dim=-1)
        return probs, batch["index"]

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        # The network's gradients only (the Trainer gets no gradient_clip_val). Clipping every
        # parameter together would let the learned weights' gradients eat into the network's
        # norm budget, so a learned arm's network steps would shrink where the fixed arm's don't.
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.train_cfg.grad_clip)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        self.weighting.project()  # learned log-weights back inside auto_weight_clamp
        self.weighting.after_optimizer_step(self.recompute_losses)  # FAMO: its update, on the same batch

    def configure_optimizers(self):
        cfg = self.train_cfg
        groups = [{"params": list(self.network.parameters()), "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
        weighting_params = self.weighting.optimized_parameters()
        if weighting_params:
            # Own group: its own lr (lr × weight_lr_multiplier, searched) and schedule, and no
            # weight decay, which would pull every s_i towards 0 (weight 1) regardless of the data.
            groups.append(
                {
                    "params": weighting_params,
                    "lr": cfg.lr * self.loss_cfg.weight_lr_multiplier,
                    "weight_decay": 0.0,
                }
            )
        # fused: one kernel for all ~40 tensors instead of a Python loop over them (the CPU
        # default): 1.6 → 0.25 ms of the tiny model's ~45 ms step.
        opt = torch.optim.AdamW(groups, fused=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, int(cfg.warmup_epochs * total / max(1, self.trainer.max_epochs)))

        def network_schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        # The learned weights warm up with the network, then keep their learning rate to the
        # end: their stationary point (s_i* = log L_i for uncertainty weighting) moves down as
        # the losses fall, so a cosine decay would freeze them part-way, far from it.
        def weighting_schedule(step: int) -> float:
            return (step + 1) / (warmup + 1) if step < warmup else 1.0

        schedules = [network_schedule, weighting_schedule][: len(groups)]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# The public name that scripts (and the README) import: the same class, not a subclass.
CMISqueezeformer = CMILitModule

"""CMILitModule: the LightningModule = network + per-head losses + a weighting strategy."""

import math

import numpy as np
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
        self.best: dict | None = None  # best validation epoch: score parts, probabilities, indices
        self._val_outputs: list[tuple[Tensor, Tensor, Tensor]] = []  # (probs, y18, index) per batch
        self._train_sums: dict[str, Tensor] = {}
        self._train_count = 0

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.network(batch)

    def model_step(self, batch: dict[str, Tensor]):
        out = self(batch)
        cw = {n: getattr(self, f"class_weight_{n}") for n in self._class_weight_names}
        terms = loss_terms(out, batch, self.loss_cfg, cw)
        total, weights = self.weighting(terms)
        return out, terms, total, weights

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        _, terms, total, weights = self.model_step(batch)
        if not torch.isfinite(total):
            raise TrainingDiverged(
                f"loss became {float(total)} at epoch {self.current_epoch}, batch {batch_idx} "
                f"(terms: {', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())})"
            )
        # Summed here and logged once per epoch: a self.log call per term per step cost
        # more than 10% of a tiny model's step (benchmarks/bench_model.py).
        n = len(batch["y18"])
        for k, v in {"loss": total, **{f"loss_{t}": x for t, x in terms.items()}}.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach() * n
        self._train_count += n
        return total

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_count = {}, 0

    def on_train_epoch_end(self) -> None:
        with torch.no_grad():
            probe = {k: torch.ones((), device=self.device) for k in self.loss_cfg.active_terms()}
            _, weights = self.weighting(probe)  # effective weights now, whatever the losses
        self.weight_history.append({k: float(v) for k, v in weights.items()})
        logged = {f"train/{k}": float(v) / max(1, self._train_count) for k, v in self._train_sums.items()}
        logged |= {f"train/weight_{k}": v for k, v in self.weight_history[-1].items()}
        logged |= {f"train/{k}": v for k, v in self.weighting.logged_params().items()}
        self.log_dict(logged)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out, terms, total, _ = self.model_step(batch)
        self.log("val/loss", total, on_step=False, on_epoch=True, batch_size=len(batch["y18"]))
        probs = torch.softmax(out["multiclass"].float(), dim=-1)
        self._val_outputs.append((probs.cpu(), batch["y18"].cpu(), batch["index"].cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        probs, y, idx = (torch.cat(t) for t in zip(*self._val_outputs, strict=True))
        self._val_outputs.clear()
        s = score_indices(y.numpy(), probs.argmax(-1).numpy())
        self.log_dict({"val/score": s.score, "val/binary_f1": s.binary_f1, "val/macro_f1": s.macro_f1})
        if self.trainer.sanity_checking:
            return
        if self.best is None or s.score > self.best["score"]:
            self.best = {
                "score": s.score,
                "binary_f1": s.binary_f1,
                "macro_f1": s.macro_f1,
                "epoch": self.current_epoch,
                "probs": probs.numpy().astype(np.float32),
                "indices": idx.numpy(),
            }

    def configure_optimizers(self):
        cfg = self.train_cfg
        groups = [{"params": list(self.network.parameters()), "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
        weighting_params = list(self.weighting.parameters())
        if weighting_params:
            # Own group: a smaller lr keeps the weights from racing the network, and weight
            # decay would pull every s_i towards 0 (weight 1) regardless of the data.
            groups.append(
                {
                    "params": weighting_params,
                    "lr": cfg.lr * self.loss_cfg.weight_lr_multiplier,
                    "weight_decay": 0.0,
                }
            )
        opt = torch.optim.AdamW(groups)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, int(cfg.warmup_epochs * total / max(1, self.trainer.max_epochs)))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# The public name that scripts (and the README) import: the same class, not a subclass.
CMISqueezeformer = CMILitModule

"""Model benchmark: training throughput, Lightning overhead, FLOPs.

For each model preset (tiny, public) on the same pre-built batches:
- sequences/s of a plain PyTorch loop (forward, loss terms, weighting, backward, clip,
  AdamW, schedule) and of the same work inside the Lightning step, timed over epochs
  after the first (warm-up) one, in the same run (goal: Lightning overhead <= 10%);
- FLOPs of one training step (torch.utils.flop_counter) and the achieved FLOP/s.
On a CUDA machine the same runs use bf16 autocast (`--device cuda`).
Ends with one JSON line of figures.

    python benchmarks/bench_model.py [--device cpu|cuda] [--threads N]
"""

import argparse
import json
import os
import time

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from cmi_model.config import MODEL_PRESETS, LossConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.train import quiet_lightning

LOSS = LossConfig(auto_weighting="uncertainty")  # the arm with the most work per step


def make_batches(n: int, batch: int, t: int) -> list[dict]:
    return [example_batch(batch, t, seed=i) for i in range(n)]


def to(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def plain_loop(module: CMILitModule, batches, epochs: int, device: str, train: TrainConfig) -> list[float]:
    """The same work as Lightning's step, by hand. Returns seconds per epoch."""
    module.to(device).train()
    opt = torch.optim.AdamW(
        [
            {"params": module.network.parameters(), "lr": train.lr, "weight_decay": train.weight_decay},
            {
                "params": module.weighting.parameters(),
                "lr": train.lr * LOSS.weight_lr_multiplier,
                "weight_decay": 0.0,
            },
        ]
    )
    total = epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / total))))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    times = []
    for _ in range(epochs):
        sync(device)
        t = time.perf_counter()
        for b in batches:
            b = to(b, device)
            with autocast:
                _, _, loss, _ = module.model_step(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), train.grad_clip)
            opt.step()
            sched.step()
        sync(device)
        times.append(time.perf_counter() - t)
    return times


class EpochTimer(pl.Callback):
    def __init__(self, device: str):
        self.device, self.times, self._t = device, [], 0.0

    def on_train_epoch_start(self, trainer, module):
        sync(self.device)
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        sync(self.device)
        self.times.append(time.perf_counter() - self._t)


def lightning_loop(
    module: CMILitModule, batches, epochs: int, device: str, train: TrainConfig
) -> list[float]:
    timer = EpochTimer(device)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if device == "cuda" else "32-true",
        max_epochs=epochs,
        gradient_clip_val=train.grad_clip,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    # batch_size=None: the DataLoader hands over the pre-built batches as they are.
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return timer.times


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_flops(module: CMILitModule, batch: dict, device: str) -> int:
    module.to(device).train()
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        _, _, loss, _ = module.model_step(to(batch, device))
        loss.backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def bench(preset: str, device: str, n_batches: int, epochs: int, batch: int, t: int) -> dict:
    torch.manual_seed(0)
    train = TrainConfig(warmup_epochs=0)
    batches = make_batches(n_batches, batch, t)
    results = {}
    for name, loop in (("plain", plain_loop), ("lightning", lightning_loop), ("plain_again", plain_loop)):
        torch.manual_seed(0)
        module = CMILitModule(CMINetwork(MODEL_PRESETS[preset]), LOSS, train)
        times = loop(module, batches, epochs, device, train)
        results[name] = float(np.median(times[1:]))  # first epoch is warm-up
    plain = min(results["plain"], results["plain_again"])  # runs before and after Lightning: drift shows
    module = CMILitModule(CMINetwork(MODEL_PRESETS[preset]), LOSS, train)
    flops = step_flops(module, batches[0], device)
    seqs = n_batches * batch
    return {
        "preset": preset,
        "params": sum(p.numel() for p in module.parameters()),
        "batch": batch,
        "seq_len": t,
        "plain_seq_per_s": round(seqs / plain, 1),
        "lightning_seq_per_s": round(seqs / results["lightning"], 1),
        "lightning_overhead_pct": round(100 * (results["lightning"] / plain - 1), 1),
        "flops_per_step": flops,
        "achieved_gflop_per_s": round(flops * n_batches / plain / 1e9, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lightning()
    if args.device == "cuda":
        configs = [("tiny", 40, 6, 64, 128), ("public", 40, 4, 64, 128)]
    else:
        configs = [("tiny", 20, 4, 64, 64), ("public", 3, 3, 32, 128)]
    rows = []
    for preset, n_batches, epochs, batch, t in configs:
        r = bench(preset, args.device, n_batches, epochs, batch, t)
        rows.append(r)
        print(
            f"{preset:7s} {r['params']:>10,} params  plain {r['plain_seq_per_s']:>8.1f} seq/s  "
            f"lightning {r['lightning_seq_per_s']:>8.1f} seq/s  overhead {r['lightning_overhead_pct']:+.1f}%  "
            f"{r['flops_per_step'] / 1e9:.2f} GFLOP/step  {r['achieved_gflop_per_s']:.1f} GFLOP/s"
        )
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu x{args.threads} threads"
    print(json.dumps({"device": device, "results": rows}))


if __name__ == "__main__":
    main()

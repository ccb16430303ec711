"""Model benchmark: training throughput, Lightning overhead, FLOPs, and the per-step cost of each arm.

For each model preset (tiny, public) on the same pre-built batches:
- sequences/s of a plain PyTorch loop (forward, loss terms, weighting, backward, clip,
  AdamW, schedule) and of the same work inside the Lightning step, timed over epochs
  after the first (warm-up) one, in the same run (goal: Lightning overhead <= 10%);
- FLOPs of one training step (torch.utils.flop_counter) and the achieved FLOP/s.
Per arm (`--section arms`; tiny and small presets): the Lightning training step of every
weighting arm against fixed, with all its hooks (FAMO's extra forward after each optimizer
step, DWA's roll), interleaved over rounds so that drift hits every arm alike, and the cost of
FAMO's extra forward (`CMILitModule.recompute_losses`) alone.
Precision (`--section precision`): the plain loop's step in fp32 and under bf16 autocast, tiny,
small and public presets, interleaved, each as a share of its dtype's matmul peak measured in the
same run: when `--precision bf16-mixed` pays on this CPU.
Beside the timings: the machine's fp32 and bf16 2048x2048 matmul GFLOP/s, to compare runs across
machines. On a CUDA machine (`--device cuda`) the same runs use the precision `auto` picks for the
card (bf16-mixed with native bf16) and report each step's share of that dtype's matmul peak (MFU)
and the peak GPU memory of one worker (`torch.cuda.max_memory_allocated`), which sizes how many
workers share a GPU. The batches are on the device before timing starts, as a fold's are in
training (cmi_model.dataset.FoldCache), and both loops clip the network's gradients only.
Ends with one JSON line of figures.

    python benchmarks/bench_model.py [--device cpu|cuda] [--threads N] [--section all|throughput|arms|precision]
                                     [--presets tiny,small,public] [--widths 96,128,192]
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

from cmi_model.config import MODEL_PRESETS, LossConfig, ModelConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.train import cpu_bf16_units, quiet_lightning, resolve_accelerator
from cmi_model.weighting import ARMS

LOSS = LossConfig(auto_weighting="uncertainty")  # the arm with the most work per step


def make_batches(n: int, batch: int, t: int, device: str = "cpu") -> list[dict]:
    return [to(example_batch(batch, t, seed=i), device) for i in range(n)]


def uses_bf16(device: str, preset: str) -> bool:
    """Whether `precision = "auto"` trains the preset's model in bf16 on this device."""
    accelerator = "gpu" if device == "cuda" else "cpu"
    return resolve_accelerator(accelerator, "auto", MODEL_PRESETS[preset])[1] == "bf16-mixed"


def to(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def plain_loop(
    module: CMILitModule, batches, epochs: int, device: str, train: TrainConfig, bf16: bool
) -> list[float]:
    """The same work as Lightning's step, by hand, under bf16 autocast if `bf16`. Returns seconds
    per epoch."""
    module.to(device).train()
    opt = torch.optim.AdamW(
        [
            {"params": module.network.parameters(), "lr": train.lr, "weight_decay": train.weight_decay},
            {
                "params": module.weighting.optimized_parameters(),
                "lr": train.lr * LOSS.weight_lr_multiplier,
                "weight_decay": 0.0,
            },
        ],
        fused=True,  # as CMILitModule.configure_optimizers
    )
    total = epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / total))))
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
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
            torch.nn.utils.clip_grad_norm_(module.network.parameters(), train.grad_clip)  # as the module
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
    module: CMILitModule, batches, epochs: int, device: str, train: TrainConfig, bf16: bool
) -> list[float]:
    timer = EpochTimer(device)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if bf16 else "32-true",
        max_epochs=epochs,
        # No gradient_clip_val, as in fit_fold: CMILitModule clips the network only.
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
    """FLOPs of one forward + backward (the same count in either dtype)."""
    module.to(device).train()
    counter = FlopCounterMode(display=False)
    with counter:
        _, _, loss, _ = module.model_step(to(batch, device))
        loss.backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def bench(preset: str, device: str, n_batches: int, epochs: int, batch: int, t: int) -> dict:
    torch.manual_seed(0)
    train = TrainConfig(warmup_epochs=0)
    batches = make_batches(n_batches, batch, t, device)
    results, peak_mib = {}, None
    for name, loop in (("plain", plain_loop), ("lightning", lightning_loop), ("plain_again", plain_loop)):
        torch.manual_seed(0)
        module = CMILitModule(CMINetwork(MODEL_PRESETS[preset]), LOSS, train)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = loop(module, batches, epochs, device, train, uses_bf16(device, preset))
        if device == "cuda" and name == "lightning":  # a worker's training step, batches included
            peak_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1)
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
        "precision": "bf16-mixed" if uses_bf16(device, preset) else "32-true",
        "peak_gpu_mib": peak_mib,
    }


def matmul_gflops(device: str, n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """n x n matmul GFLOP/s in `dtype`: how fast this machine is, printed beside the timings (and
    each dtype's peak, against which a step's FLOP/s is a share)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def extra_forward_ms(preset: str, device: str, batch: dict, reps: int = 20) -> float:
    """One `recompute_losses` (FAMO's forward after the step: no gradient, same dropout masks)."""
    module = CMILitModule(CMINetwork(MODEL_PRESETS[preset]), LossConfig(auto_weighting="famo"), TrainConfig())
    module.to(device).train()
    b = to(batch, device)
    module._step_batch, module._step_rng = b, module._rng_state()  # as a training step leaves them
    # Lightning's precision context around it in training: here by hand, the same autocast.
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=uses_bf16(device, preset))
    with autocast:
        module.recompute_losses()  # warm-up
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        with autocast:
            module.recompute_losses()
        sync(device)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


PRECISION_RUNS = {"tiny": (10, 64, 64), "small": (6, 64, 64), "public": (2, 32, 128)}  # batches, batch, T


def precision_models(presets: list[str], widths: list[int]) -> list[tuple[str, ModelConfig, tuple]]:
    """(label, model, runs) of the precision section: the presets, then the small preset's shape at
    each width (d_ff twice the width), which places CPU_BF16_MIN_WIDTH, where bf16 starts to pay."""
    models = [(p, MODEL_PRESETS[p], PRECISION_RUNS[p]) for p in presets]
    small = MODEL_PRESETS["small"]
    for w in widths:
        models.append(
            (f"w{w}", small.model_copy(update={"d_model": w, "d_ff": 2 * w}), PRECISION_RUNS["small"])
        )
    return models


def precision_costs(device: str, rounds: int, presets: list[str], widths: list[int] = ()) -> dict:
    """fp32 and bf16-autocast steps of the plain loop per model, interleaved, against each dtype's
    matmul peak measured in the same run: the fastest epoch after the first of any round."""
    peaks = {"fp32": matmul_gflops(device), "bf16": matmul_gflops(device, dtype=torch.bfloat16)}
    train = TrainConfig(warmup_epochs=0)
    rows = []
    for preset, model, (n_batches, batch, t) in precision_models(presets, list(widths)):
        batches = make_batches(n_batches, batch, t, device)
        flops = step_flops(CMILitModule(CMINetwork(model), LOSS, train), batches[0], device)
        per_step: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(rounds):
            for dtype in per_step:  # interleaved: a slower stretch of the machine hits both alike
                torch.manual_seed(0)
                module = CMILitModule(CMINetwork(model), LOSS, train)
                times = plain_loop(module, batches, 3, device, train, bf16=dtype == "bf16")
                per_step[dtype] += [x / n_batches for x in times[1:]]
        step = {k: min(v) for k, v in per_step.items()}
        achieved = {k: flops / v / 1e9 for k, v in step.items()}
        rows.append(
            {
                "preset": preset,
                "d_model": model.d_model,
                "batch": batch,
                "seq_len": t,
                "gflop_per_step": round(flops / 1e9, 2),
                "ms_per_step": {k: round(1e3 * v, 1) for k, v in step.items()},
                "gflop_per_s": {k: round(v, 1) for k, v in achieved.items()},
                "pct_of_peak": {k: round(100 * v / peaks[k], 1) for k, v in achieved.items()},
                "bf16_speedup": round(step["fp32"] / step["bf16"], 2),
            }
        )
    # The CPU's vector ISA as torch dispatches it (e.g. AVX2, AVX512): bf16 arithmetic is native
    # only with AVX512-BF16 or AMX units; elsewhere it is converted to fp32 and back.
    capability = torch.backends.cpu.get_cpu_capability() if device == "cpu" else torch.cuda.get_device_name(0)
    return {
        "capability": capability,
        "matmul_peak_gflop_per_s": {k: round(v, 1) for k, v in peaks.items()},
        "presets": rows,
    }


def arm_costs(preset: str, device: str, n_batches: int, epochs: int, batch: int, t: int, rounds: int) -> dict:
    """ms per Lightning training step of every arm: the fastest epoch after the first of any round (the
    one least disturbed by other processes on a shared machine), and the median epoch."""
    train = TrainConfig(warmup_epochs=0)
    batches = make_batches(n_batches, batch, t, device)
    per_step: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(rounds):
        for arm in ARMS:  # interleaved: a slower stretch of the machine hits every arm alike
            torch.manual_seed(0)
            loss = LossConfig(auto_weighting=arm)
            module = CMILitModule(CMINetwork(MODEL_PRESETS[preset]), loss, train)
            times = lightning_loop(module, batches, epochs, device, train, uses_bf16(device, preset))
            per_step[arm] += [x / n_batches for x in times[1:]]  # first epoch is warm-up
    ms = {arm: 1e3 * float(np.min(v)) for arm, v in per_step.items()}
    return {
        "preset": preset,
        "batch": batch,
        "seq_len": t,
        "ms_per_step": {a: round(v, 2) for a, v in ms.items()},
        "median_ms_per_step": {a: round(1e3 * float(np.median(v)), 2) for a, v in per_step.items()},
        "vs_fixed_pct": {a: round(100 * (v / ms["fixed"] - 1), 1) for a, v in ms.items()},
        "famo_extra_forward_ms": round(extra_forward_ms(preset, device, batches[0]), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--section", choices=("all", "throughput", "arms", "precision"), default="all")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the per-arm timings")
    ap.add_argument(
        "--presets",
        default=",".join(PRECISION_RUNS),
        help="presets of the precision section (without bf16 units a public bf16 step takes minutes)",
    )
    ap.add_argument(
        "--widths",
        default="",
        help="also the small preset at these widths in the precision section (e.g. 96,128,192)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lightning()
    gflops = matmul_gflops(args.device)
    # bf16's peak where the device has bf16 units (a GPU, or a CPU with AMX/AVX512-BF16, read from
    # /proc/cpuinfo): a CPU without them runs bf16 in a reference kernel (minutes at 2048²), so its
    # peak is measured only by the precision section, when asked.
    units = cpu_bf16_units() if args.device == "cpu" else ("cuda",)
    bf16_gflops = matmul_gflops(args.device, dtype=torch.bfloat16) if units else float("nan")
    machine = (
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 units: {', '.join(units) or 'none'}"
        if args.device == "cpu"
        else torch.cuda.get_device_name(0)
    )
    print(f"{machine}; 2048x2048 matmul: fp32 {gflops:.1f} GFLOP/s, bf16 {bf16_gflops:.1f} GFLOP/s")
    rows, arms = [], []
    if args.section in ("all", "throughput"):
        if args.device == "cuda":
            configs = [("tiny", 40, 6, 64, 128), ("public", 40, 4, 64, 128)]
        else:
            configs = [("tiny", 20, 4, 64, 64), ("public", 3, 3, 32, 128)]
        for preset, n_batches, epochs, batch, t in configs:
            r = bench(preset, args.device, n_batches, epochs, batch, t)
            rows.append(r)
            peak = bf16_gflops if r["precision"] == "bf16-mixed" else gflops  # the dtype its steps run in
            print(
                f"{preset:7s} {r['params']:>10,} params  plain {r['plain_seq_per_s']:>8.1f} seq/s  "
                f"lightning {r['lightning_seq_per_s']:>8.1f} seq/s  overhead {r['lightning_overhead_pct']:+.1f}%  "
                f"{r['flops_per_step'] / 1e9:.2f} GFLOP/step  {r['achieved_gflop_per_s']:.1f} GFLOP/s "
                f"({100 * r['achieved_gflop_per_s'] / peak:.1f}% of the {r['precision']} matmul peak)"
                + (f"  peak GPU memory {r['peak_gpu_mib']} MiB" if r["peak_gpu_mib"] is not None else "")
            )
            r["mfu_pct"] = round(100 * r["achieved_gflop_per_s"] / peak, 2)
    if args.section in ("all", "arms"):
        for preset, n_batches, epochs, batch, t in [("tiny", 20, 3, 64, 64), ("small", 8, 3, 64, 64)]:
            r = arm_costs(preset, args.device, n_batches, epochs, batch, t, args.rounds)
            arms.append(r)
            print(
                f"{preset}: ms per training step (batch {batch} x {t} steps; fastest epoch, median), vs fixed"
            )
            for arm in ARMS:
                print(
                    f"  {arm:12s} {r['ms_per_step'][arm]:8.2f} ms  {r['median_ms_per_step'][arm]:8.2f} ms  "
                    f"{r['vs_fixed_pct'][arm]:+6.1f}%"
                )
            print(f"  FAMO's extra forward alone: {r['famo_extra_forward_ms']:.2f} ms")
    precision = None
    if args.section in ("all", "precision"):
        precision = precision_costs(
            args.device, args.rounds, args.presets.split(","), [int(w) for w in args.widths.split(",") if w]
        )
        peaks = precision["matmul_peak_gflop_per_s"]
        print(
            f"fp32 vs bf16 autocast, plain loop ({precision['capability']}); "
            f"matmul peak fp32 {peaks['fp32']} / bf16 {peaks['bf16']} GFLOP/s"
        )
        for r in precision["presets"]:
            ms, pct = r["ms_per_step"], r["pct_of_peak"]
            print(
                f"  {r['preset']:7s} width {r['d_model']:4d} {r['gflop_per_step']:8.2f} GFLOP/step  fp32 {ms['fp32']:8.1f} ms "
                f"({pct['fp32']:5.1f}% of peak)  bf16 {ms['bf16']:8.1f} ms ({pct['bf16']:5.1f}% of peak)  "
                f"bf16 {r['bf16_speedup']:.2f}x"
            )
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu x{args.threads} threads"
    figures = {
        "device": device,
        "matmul_gflop_per_s": round(gflops, 1),
        "bf16_matmul_gflop_per_s": round(bf16_gflops, 1),
        "machine": machine,
        "results": rows,
        "arms": arms,
    }
    print(json.dumps(figures | {"precision": precision}))


if __name__ == "__main__":
    main()

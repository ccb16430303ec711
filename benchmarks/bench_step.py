"""The training step's CPU-specific layers against the stock ones they replace, in one run, 1 torch
thread:

- dropout masks alone: ns per element of a (32 · 128 · 256) activation, p = 0.1, the network's
  Dropout (cmi_model.network.Dropout: a 15-bit uniform per element from each int16 half of an int32
  draw) against torch's nn.Dropout (`bernoulli_`, one 32-bit draw per element);
- a training step of the plain loop (bench_model.plain_loop: forward, backward, clipping, fused
  AdamW) of the tiny (64 × 64 batch) and public (32 × 128) presets, in fp32 and under bf16
  autocast, with the network as it is ("network") and with the stock layers it replaced
  ("reference": nn.Dropout, nn.MultiheadAttention, and ConvModule's Conv1d layers applied on
  transposed activations), interleaved round by round, the fastest epoch after the first of each;
- with `--compile`, the network's step under `torch.compile` (inductor, default mode) beside it: the
  first epoch's seconds (the compile) and the fastest step after it;
- the share of the step spent drawing masks (torch.profiler self CPU time of the mask ops:
  `aten::bernoulli_` for torch's, `aten::random_`, `aten::bitwise_and_` and `aten::ge` for the
  network's) over the step's.

Beside them the CPU's capability and the fp32 2048² matmul GFLOP/s before and after. Ends with one
JSON line.

    python benchmarks/bench_step.py [--rounds 3] [--presets tiny,public] [--precisions fp32,bf16] [--compile]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_model import LOSS, make_batches, matmul_gflops, plain_loop
from torch.profiler import ProfilerActivity, profile

from cmi_model.config import MODEL_PRESETS, TrainConfig
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork, ConvModule, Dropout, SelfAttention
from cmi_model.train import quiet_lightning

SHAPES = {"tiny": (6, 64, 64), "public": (2, 32, 128)}  # batches per epoch, batch, T
MASK_OPS = {  # the ops that draw and threshold each kind's masks
    "reference": ("aten::bernoulli_",),
    "network": ("aten::random_", "aten::bitwise_and_", "aten::ge"),
}


def conv1d_forward(self: ConvModule, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """ConvModule's forward as its Conv1d layers compute it, on (B, C, T) transposes."""
    h = self.pointwise_in(self.norm_in(x).transpose(1, 2))
    h = torch.nn.functional.glu(h, dim=1) * valid[:, None, :]
    h = torch.nn.functional.silu(self.norm_mid(self.depthwise(h).transpose(1, 2)))
    return self.dropout(self.pointwise_out(h.transpose(1, 2)).transpose(1, 2))


def with_reference_layers(net: torch.nn.Module) -> torch.nn.Module:
    """The same network with the stock layers: every network Dropout replaced by torch's nn.Dropout,
    every SelfAttention by torch's nn.MultiheadAttention with the same weights, and every
    ConvModule computing with its Conv1d layers."""
    for name, child in net.named_children():
        if isinstance(child, Dropout):
            setattr(net, name, torch.nn.Dropout(child.p))
        elif isinstance(child, SelfAttention):
            mha = torch.nn.MultiheadAttention(
                child.embed_dim, child.num_heads, dropout=child.dropout, batch_first=True
            )
            mha.load_state_dict(child.state_dict())
            setattr(net, name, mha)
        else:
            if isinstance(child, ConvModule):
                child.forward = conv1d_forward.__get__(child)
            with_reference_layers(child)
    return net


def module_for(preset: str, kind: str) -> CMILitModule:
    torch.manual_seed(0)
    net = CMINetwork(MODEL_PRESETS[preset])
    return CMILitModule(with_reference_layers(net) if kind == "reference" else net, LOSS, TrainConfig())


def compiled_step(preset: str, batches: list, bf16: bool) -> tuple[float, float]:
    """(seconds of the first epoch, which compiles; fastest step after it) of the network compiled."""
    module = module_for(preset, "network")
    module.network = torch.compile(module.network)
    epochs = plain_loop(module, batches, 3, "cpu", TrainConfig(), bf16=bf16)
    return epochs[0], min(epochs[1:]) / len(batches)


def mask_ns(kind: str, p: float = 0.1, reps: int = 20) -> float:
    x = torch.randn(32 * 128 * 256)
    layer = (torch.nn.Dropout(p) if kind == "torch" else Dropout(p)).train()
    layer(x)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        layer(x)
        best = min(best, time.perf_counter() - t)
    return best * 1e9 / x.numel()


def mask_share(module: CMILitModule, batch: dict, ops: tuple[str, ...], bf16: bool) -> float:
    """Share of one training step's self CPU time drawing dropout masks."""
    module.train()
    with (
        profile(activities=[ProfilerActivity.CPU]) as prof,
        torch.autocast("cpu", torch.bfloat16, enabled=bf16),
    ):
        _, _, loss, _ = module.model_step(batch)
        loss.backward()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in ops) / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--presets", default="tiny,public")
    ap.add_argument("--precisions", default="fp32,bf16", help="bf16: autocast (slow without bf16 units)")
    ap.add_argument("--compile", action="store_true", help="also the network under torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    quiet_lightning()
    before = matmul_gflops("cpu")
    print(
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; fp32 2048² matmul {before:.1f} GFLOP/s (1 thread)"
    )
    out: dict = {"mask_ns_per_element": {k: round(mask_ns(k), 2) for k in ("torch", "network")}}
    print(
        f"mask, p = 0.1: nn.Dropout {out['mask_ns_per_element']['torch']} ns/element, "
        f"network Dropout {out['mask_ns_per_element']['network']} ns/element"
    )
    for preset in args.presets.split(","):
        n, batch, t = SHAPES[preset]
        batches = make_batches(n, batch, t)
        for precision in args.precisions.split(","):
            bf16 = precision == "bf16"
            modules = {kind: module_for(preset, kind) for kind in MASK_OPS}
            best = dict.fromkeys(modules, float("inf"))
            for _ in range(args.rounds):
                for kind, module in modules.items():  # interleaved: a slower stretch hits both alike
                    epochs = plain_loop(module, batches, 2, "cpu", TrainConfig(), bf16=bf16)
                    best[kind] = min(best[kind], min(epochs[1:]) / n)
            shares = {
                kind: round(mask_share(m, batches[0], MASK_OPS[kind], bf16), 3) for kind, m in modules.items()
            }
            row = {
                "step_ms": {k: round(1000 * v, 1) for k, v in best.items()},
                "speedup": round(best["reference"] / best["network"], 2),
                "mask_share": shares,
            }
            out[f"{preset} {precision}"] = row
            print(
                f"{preset} {precision}: step {row['step_ms']['reference']} ms with the stock layers, "
                f"{row['step_ms']['network']} ms with the network's: {row['speedup']}x; "
                f"masks {shares['reference']:.1%} vs {shares['network']:.1%} of the step"
            )
            if args.compile:
                first, step = compiled_step(preset, batches, bf16)
                row["compiled"] = {"first_epoch_s": round(first, 1), "step_ms": round(1000 * step, 1)}
                print(
                    f"  compiled: first epoch {first:.1f} s, then {1000 * step:.1f} ms a step "
                    f"({best['network'] / step:.2f}x the network's eager step)"
                )
    after = matmul_gflops("cpu")
    out["matmul_gflops"] = round((before + after) / 2, 1)
    print(f"fp32 2048² matmul {after:.1f} GFLOP/s after")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The network's CPU dropout (cmi_model.network.Dropout: two 16-bit uniforms per 32-bit draw; and
SelfAttention, whose attention-weight dropout uses it) against torch's nn.Dropout and
nn.MultiheadAttention (`bernoulli_`, one draw per element), in one run, 1 torch thread:

- the mask alone: ns per element of a (32 · 128 · 256) activation, p = 0.1;
- a training step of the plain loop (bench_model.plain_loop: forward, backward, clipping, fused
  AdamW) of the tiny (64 × 64 batch) and public (32 × 128) presets in fp32, the two dropouts
  interleaved round by round, the fastest epoch after the first of each;
- the share of the step spent drawing masks (torch.profiler self CPU time of `aten::bernoulli_`, or
  of `aten::random_` for the network's Dropout, over the step's).

Beside them the fp32 2048² matmul GFLOP/s before and after. Ends with one JSON line.

    python benchmarks/bench_dropout.py [--rounds 3] [--presets tiny,public]
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
from cmi_model.network import CMINetwork, Dropout, SelfAttention
from cmi_model.train import quiet_lightning

SHAPES = {"tiny": (6, 64, 64), "public": (2, 32, 128)}  # batches per epoch, batch, T
MASK_OPS = ("aten::bernoulli_", "aten::random_")  # torch's dropout masks; the network's Dropout draws


def with_torch_dropout(net: torch.nn.Module) -> torch.nn.Module:
    """The same network with every network Dropout replaced by torch's nn.Dropout and every
    SelfAttention by torch's nn.MultiheadAttention with the same weights."""
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
            with_torch_dropout(child)
    return net


def module_for(preset: str, torch_dropout: bool) -> CMILitModule:
    torch.manual_seed(0)
    net = CMINetwork(MODEL_PRESETS[preset])
    return CMILitModule(with_torch_dropout(net) if torch_dropout else net, LOSS, TrainConfig())


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


def mask_share(module: CMILitModule, batch: dict) -> float:
    """Share of one training step's self CPU time drawing dropout masks."""
    module.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _, _, loss, _ = module.model_step(batch)
        loss.backward()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    masks = sum(e.self_cpu_time_total for e in events if e.key in MASK_OPS)
    return masks / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--presets", default="tiny,public")
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
        modules = {"torch": module_for(preset, True), "network": module_for(preset, False)}
        best = {k: float("inf") for k in modules}
        for _ in range(args.rounds):
            for kind, module in modules.items():
                epochs = plain_loop(module, batches, 2, "cpu", TrainConfig(), bf16=False)
                best[kind] = min(best[kind], min(epochs[1:]) / n)
        shares = {kind: round(mask_share(m, batches[0]), 3) for kind, m in modules.items()}
        out[preset] = {
            "step_ms": {k: round(1000 * v, 1) for k, v in best.items()},
            "speedup": round(best["torch"] / best["network"], 2),
            "mask_share": shares,
        }
        print(
            f"{preset}: step {out[preset]['step_ms']['torch']} ms with nn.Dropout, {out[preset]['step_ms']['network']} ms "
            f"with the network's: {out[preset]['speedup']}x; masks {shares['torch']:.1%} vs {shares['network']:.1%} of the step"
        )
    after = matmul_gflops("cpu")
    out["matmul_gflops"] = round((before + after) / 2, 1)
    print(f"fp32 2048² matmul {after:.1f} GFLOP/s after")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""How far do the learned log-weights s move, per weight_lr_multiplier? (uncertainty arm)

Kendall et al.'s L = Σ exp(−s_i)·L_i + s_i has its stationary point at s_i* = log L_i. The
weights only do what the method says if s gets near it within the training budget.

1. Demo preset, measured: 12 synthetic subjects, the search's first fold (held-out split and
   3 subject folds as `cmi-study run --preset demo`), tiny model, max_len 64, batch 64,
   8 epochs, warm-up 0.5, lr 2e-3: `fit_fold` for each multiplier; max |Δs| and, per term, how
   far the final s is from log(the term's mean training loss in the last epoch).
2. Full preset, simulated: AdamW on the four s alone (40 epochs × 100 steps, warm-up 2
   epochs, lr 1e-3 × multiplier) against falling loss curves with per-batch noise, under the
   network's warm-up + cosine schedule (before) and warm-up + constant (now).

    python benchmarks/bench_weights.py [--multipliers 0.1,1,10,100] [--skip-demo]

Ends with one JSON line of figures.
"""

import argparse
import json
import math
import tempfile
import time

import numpy as np
import torch

from cmi_model.config import MODEL_PRESETS, DataConfig, LossConfig, TrainConfig
from cmi_model.data import load_dir
from cmi_model.folds import split_subjects, subject_folds
from cmi_model.synthetic import generate
from cmi_model.train import fit_fold

TERMS = ("multiclass", "binary", "nine_class", "kl")


def demo(multipliers: list[float]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, n_subjects=12, seed=0)
        data = load_dir(tmp, cache_dir=None)
    split = split_subjects(data, 0.25, 3, seed=0)  # the demo's search pool, as `cmi-study run`
    train_idx, val_idx = subject_folds(data, 3, seed=0, subjects=split.search)[0]
    steps = math.ceil(len(train_idx) / 64)
    print(f"demo: {len(train_idx)} training sequences, {steps} steps/epoch, {8 * steps} steps")
    rows = []
    for m in multipliers:
        t = time.perf_counter()
        r = fit_fold(
            data,
            train_idx,
            val_idx,
            model_cfg=MODEL_PRESETS["tiny"],
            loss_cfg=LossConfig(auto_weighting="uncertainty", weight_lr_multiplier=m),
            data_cfg=DataConfig(max_len=64, batch_size=64),
            train_cfg=TrainConfig(max_epochs=8, warmup_epochs=0.5, lr=2e-3, seed=0),
        )
        target = {k: math.log(v[-1]) for k, v in r.loss_trajectory.items()}  # s* = log L, last epoch
        gap = {k: r.learned_end[f"s_{k}"] - target[k] for k in target}
        row = {
            "multiplier": m,
            "max_abs_delta_s": round(r.max_abs_delta_s, 3),
            "s_end": {k: round(r.learned_end[f"s_{k}"], 2) for k in target},
            "s_star": {k: round(v, 2) for k, v in target.items()},
            "max_abs_gap": round(max(abs(v) for v in gap.values()), 2),
            "score": round(r.score, 4),
            "seconds": round(time.perf_counter() - t, 1),
        }
        rows.append(row)
        print(json.dumps(row))
    return rows


# Full preset, simulated. Loss curves: from the untrained heads' values (log 18, log 2, log 9,
# a small KL) down to plausible end-of-training values, exponentially with a time constant of
# 8 epochs; the KL term ends at 1e-3 (s* ≈ −6.9), the term furthest from s = 0.
START = {"multiclass": math.log(18), "binary": math.log(2), "nine_class": math.log(9), "kl": 0.05}
END = {"multiclass": 0.4, "binary": 0.15, "nine_class": 0.35, "kl": 1e-3}


def simulate(m: float, schedule: str, epochs=40, steps=100, warmup_epochs=2.0, lr=1e-3, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    s = torch.zeros(len(TERMS), requires_grad=True)
    opt = torch.optim.AdamW([s], lr=lr * m, weight_decay=0.0)
    total, warmup = epochs * steps, int(warmup_epochs * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    mean_loss = np.array(
        [END[k] + (START[k] - END[k]) * np.exp(-np.arange(total) / (8 * steps)) for k in TERMS]
    )
    last_epoch = []
    for step in range(total):
        batch = mean_loss[:, step] * rng.lognormal(-(noise**2) / 2, noise, len(TERMS))
        loss = (torch.exp(-s) * torch.as_tensor(batch, dtype=torch.float32) + s).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            s.clamp_(-10.0, 10.0)  # the module's projection onto auto_weight_clamp
        if step >= total - steps:
            last_epoch.append(s.detach().numpy().copy())
    end = s.detach().numpy()
    target = np.log(mean_loss[:, -1])
    return {
        "multiplier": m,
        "schedule": schedule,
        "max_abs_delta_s": round(float(np.abs(end).max()), 3),
        "s_end_kl": round(float(end[TERMS.index("kl")]), 2),
        "max_abs_gap": round(float(np.abs(end - target).max()), 2),
        "last_epoch_std": round(float(np.std(last_epoch, axis=0).max()), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--multipliers", default="0.1,1,3,10,30,100,300")
    p.add_argument("--skip-demo", action="store_true")
    a = p.parse_args()
    multipliers = [float(x) for x in a.multipliers.split(",")]
    out: dict = {"full_simulated": [], "s_star_full": {k: round(math.log(v), 2) for k, v in END.items()}}
    for schedule in ("cosine", "constant"):
        for m in multipliers:
            row = simulate(m, schedule)
            out["full_simulated"].append(row)
            print(json.dumps(row))
    if not a.skip_demo:
        out["demo"] = demo(multipliers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

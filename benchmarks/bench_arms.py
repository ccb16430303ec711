"""One fold of every arm, same data, fold and seed: its score, its final weights, its time.

The demo preset's data and first search fold (`cmi-study run --preset demo`: 18 synthetic
subjects, 6 held out, 2 folds of the 12 others; tiny model, 4 epochs), each arm at its enqueued
baseline (the plan's or its paper's values), seed 0. Beside them, FAMO as it was before the KL
term left its balanced tasks (`famo_kl_balanced`), to show what that changed: the share of the
weight on KL and the score. One fold and one seed say how big an effect is, not whether it is
real; the study's confirmation says that.

    python benchmarks/bench_arms.py [--arms fixed,famo,...] [--seed 0] [--epochs 4]

Ends with one JSON line of figures; the fp32 matmul figure is printed beside the timings.
"""

import argparse
import json
import time

import torch
from bench_study import matmul_gflops  # this folder is on sys.path when run as a script
from torchjd import scalarization as tjd

import cmi_model.module as module_mod
from cmi_model.folds import split_subjects, subject_folds
from cmi_model.train import fit_fold
from cmi_model.weighting import ARMS, build_weighting
from cmi_model.weighting.famo import FAMO_WEIGHT_DECAY, FAMOWeighting
from study import space
from study.runner import load_study_data
from study.settings import build_settings

BALANCED_KL = "famo_kl_balanced"


class FAMOBalancingKL(FAMOWeighting):
    """The earlier FAMO arm: the KL term one of the balanced tasks (weight ∝ 1/KL)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        k = len(self.terms)
        self.scalarizer = tjd.FAMO(k, lr=cfg.famo_lr, weight_decay=FAMO_WEIGHT_DECAY)
        self.tasks, self.kl_weight = k, 0.0
        self.last_weights.fill_(1.0 / k)


def run(arm: str, seed: int, epochs: int, settings, data, fold) -> dict:
    famo_before = arm == BALANCED_KL
    name = "famo" if famo_before else arm
    params = space.baseline(name, settings.train, settings.model)
    model, loss, train = space.apply(name, params, settings.model, settings.loss, settings.train)
    train = train.model_copy(update={"seed": seed, "max_epochs": epochs})

    def build(cfg):
        return FAMOBalancingKL(cfg) if famo_before else build_weighting(cfg)

    original, module_mod.build_weighting = module_mod.build_weighting, build
    try:
        t = time.perf_counter()
        r = fit_fold(data, *fold, model_cfg=model, loss_cfg=loss, data_cfg=settings.data, train_cfg=train)
        seconds = time.perf_counter() - t
    finally:
        module_mod.build_weighting = original
    last = {k: v[-1] for k, v in r.weight_trajectory.items()}
    total = sum(abs(v) for v in last.values())
    return {
        "arm": arm,
        "score": round(r.score, 4),
        "binary_f1": round(r.binary_f1, 4),
        "macro_f1": round(r.macro_f1, 4),
        "kl_share": round(abs(last.get("kl", 0.0)) / total, 3) if total else None,
        "final_weights": {k: round(v, 4) for k, v in last.items()},
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", default=",".join([*ARMS, BALANCED_KL]))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=4, help="the demo preset's 4, or more")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as a study worker
    gflops = matmul_gflops(1)
    print(f"fp32 2048x2048 matmul: {gflops:.1f} GFLOP/s (1 thread)")
    settings = build_settings("demo")
    data, _ = load_study_data(settings, None)
    st = settings.study
    split = split_subjects(data, st.holdout, st.folds, st.seed)
    fold = subject_folds(data, st.folds, st.seed, split.search)[0]
    print(f"demo data, first search fold: {len(fold[0])} training / {len(fold[1])} validation sequences")
    print(f"{'arm':18s} {'score':>6s} {'bin F1':>6s} {'9 F1':>6s} {'KL share':>8s} {'s':>6s}")
    rows = []
    for arm in args.arms.split(","):
        r = run(arm, args.seed, args.epochs, settings, data, fold)
        rows.append(r)
        share = "-" if r["kl_share"] is None else f"{r['kl_share']:.0%}"
        print(
            f"{arm:18s} {r['score']:6.4f} {r['binary_f1']:6.4f} {r['macro_f1']:6.4f} {share:>8s} "
            f"{r['seconds']:6.1f}"
        )
    figures = {"matmul_gflop_per_s": round(gflops, 1), "seed": args.seed, "epochs": args.epochs}
    print(json.dumps(figures | {"arms": rows}))


if __name__ == "__main__":
    main()

"""Study benchmark: where a fold's and the demo's seconds go.

- fold profile: one search fold of the demo preset (tiny model, 12 synthetic subjects), trained
  like a study worker trains it (1 torch thread, a FoldCache shared by the trials): the first
  trial prepares the fold's tensors, later trials reuse them. A callback times each training
  step (on_train_batch_start → on_train_batch_end: training_step, backward, optimizer step) and
  each prediction batch (the validation fold's forward); `fold_overhead_share` is the share of
  the fold's wall time outside those, over a worker's trials (the first prepares the tensors).
- the demo: `cmi-study demo` from a fresh folder and a fresh data cache, split into search /
  confirm / report by the storage's trial timestamps; `pruner_saving` is the share of the
  search's fold-trainings (trials × folds) the default pruner saved.
- `--quick` (< 3 min): the fold profile and the demo's search phase only (`cmi-study run
  --preset demo --workers 2`), the "demo-like" study.
- also: the same fold profile on the tiny (test) preset's fold (1 epoch of 4 steps: fixed costs
  weigh most there), and one tiny-model step at 1 and 2 torch threads.

Timings move with whatever else runs on the machine: every figure is printed beside the fp32
2048×2048 matmul GFLOP/s measured in the same run (1 torch thread, a worker's; and 2 threads),
so that runs on different or busier machines can be scaled. Ends with one JSON line.

    python benchmarks/bench_study.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads

import optuna  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

WORKER_THREADS = 1  # the CLI's default --threads


def matmul_gflops(threads: int, size: int = 2048, reps: int = 5) -> float:
    """Best of `reps` fp32 size×size matmuls at this many torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        return 2 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def machine() -> dict:
    return {
        "matmul_gflops": round(matmul_gflops(WORKER_THREADS), 1),
        "matmul_gflops_2t": round(matmul_gflops(2), 1),
    }


class StepTimer(pl.Callback):
    """Wall seconds inside the training steps (training_step + backward + optimizer step) and
    inside the prediction batches (the validation fold's forward passes)."""

    def __init__(self):
        self.seconds, self.steps, self.predict_seconds, self._t = 0.0, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._t
        self.steps += 1

    def on_predict_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self._t = time.perf_counter()

    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.predict_seconds += time.perf_counter() - self._t


def fold_profile(preset: str = "demo", n_trials: int = 3) -> dict:
    """One search fold of the preset trained n_trials times (the baseline configuration of the
    fixed arm) through one FoldCache, as a worker trains it trial after trial."""
    from cmi_model.dataset import FoldCache
    from cmi_model.folds import subject_folds
    from cmi_model.train import fit_fold
    from study import space
    from study.arm_studies import study_split
    from study.runner import load_study_data
    from study.settings import build_settings

    torch.set_num_threads(WORKER_THREADS)
    s = build_settings(preset)
    data, _ = load_study_data(s, None)
    st = s.study
    split = study_split(data, st, 1 if st.outer_folds > 1 else None)  # the first outer fold's pool
    train_idx, val_idx = subject_folds(data, st.folds, st.seed, split.search)[0]
    model, loss, train = space.apply(
        "fixed", space.baseline("fixed", s.train, s.model), s.model, s.loss, s.train
    )
    cache = FoldCache()
    runs = []
    for trial in range(n_trials):
        timer = StepTimer()
        start = time.perf_counter()
        r = fit_fold(
            data,
            train_idx,
            val_idx,
            model_cfg=model,
            loss_cfg=loss,
            data_cfg=s.data,
            train_cfg=train.model_copy(update={"seed": st.seed * 1000}),
            callbacks=[timer],
            fold_cache=cache,
        )
        wall = time.perf_counter() - start
        p = r.phase_seconds
        runs.append(
            {
                "trial": trial,
                "cache": "prepared" if trial == 0 else "reused",
                "wall_s": round(wall, 3),
                "prepare_s": round(p["prepare"], 3),
                "setup_s": round(p["setup"], 3),
                "train_s": round(p["train"], 3),
                "steps_s": round(timer.seconds, 3),
                "lightning_loop_s": round(p["train"] - timer.seconds, 3),  # fit() outside the steps
                "predict_s": round(p["predict"], 3),
                "predict_forward_s": round(timer.predict_seconds, 3),
                "other_s": round(wall - sum(p.values()), 3),  # result assembly
                "steps": timer.steps,
                "ms_per_step": round(1000 * timer.seconds / max(1, timer.steps), 1),
                # Outside forward/backward/optimizer step: the training steps and the prediction's forwards.
                "overhead_share": round(1 - (timer.seconds + timer.predict_seconds) / wall, 3),
                "score": round(r.score, 4),
            }
        )
    reused = [x for x in runs if x["cache"] == "reused"] or runs
    # A worker trains each fold once per trial and prepares it on the first: n_trials of the preset.
    per_trial = [runs[0]] + reused * (st.n_trials - 1)
    inside = sum(x["steps_s"] + x["predict_forward_s"] for x in per_trial)
    share = 1 - inside / sum(x["wall_s"] for x in per_trial)
    return {
        "runs": runs,
        "train_sequences": len(train_idx),
        "fold_overhead_share": round(share, 3),
        "fold_overhead_share_first": runs[0]["overhead_share"],
        "fold_overhead_share_reused": round(sum(x["overhead_share"] for x in reused) / len(reused), 3),
    }


def step_ms(threads: int, cfg=None, steps: int = 20) -> float:
    """One demo-sized batch (64 × 64) through a network (default: the tiny preset): ms per
    forward + backward + fused AdamW step, as the module takes it."""
    from cmi_model.config import MODEL_PRESETS
    from cmi_model.dataset import example_batch
    from cmi_model.network import CMINetwork

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch, net = example_batch(64, 64), CMINetwork(cfg or MODEL_PRESETS["tiny"])
        opt = torch.optim.AdamW(net.parameters(), fused=True)

        def run(n: int) -> float:
            t = time.perf_counter()
            for _ in range(n):
                net(batch)["multiclass"].sum().backward()
                opt.step()
                opt.zero_grad()
            return (time.perf_counter() - t) / n

        run(3)
        return round(1000 * min(run(steps // 2), run(steps // 2)), 1)
    finally:
        torch.set_num_threads(before)


def st_trials(preset: str) -> int:
    from study.settings import build_settings

    return build_settings(preset).study.n_trials


def cli(args: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "study", *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def search_figures(url: str, name: str) -> dict:
    """Per arm and together: fold-trainings run vs trials × folds, pruned trials, best value."""
    out, run, full = {}, 0, 0
    for study_name in optuna.get_all_study_names(url):
        arm = study_name.removeprefix(f"{name}-")  # "fixed", or "outer1-fixed" with outer folds
        if arm.endswith("confirm"):
            continue
        study = optuna.load_study(study_name=study_name, storage=url)
        trials = [
            t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ]
        folds = int(study.user_attrs.get("n_folds") or 0)
        n = sum(len(t.intermediate_values) for t in trials)
        run, full = run + n, full + folds * len(trials)
        out[arm] = {
            "trials": len(trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "fold_trainings": n,
            "of": folds * len(trials),
            "best": round(study.best_value, 4),
        }
    out["pruner_saving"] = round(1 - run / full, 3) if full else None
    return out


def phases(url: str, name: str, started: datetime, ended: datetime) -> dict:
    """Search: start → last search trial done (startup, data, both arms); confirm: → last
    confirmation trial done; report: → exit."""
    done = {}
    for study_name in optuna.get_all_study_names(url):
        trials = optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False)
        key = "confirm" if study_name.endswith("-confirm") else "search"  # every outer fold's
        last = max(t.datetime_complete for t in trials if t.datetime_complete)
        done[key] = max(done.get(key, last), last)
    return {
        "search_s": round((done["search"] - started).total_seconds(), 1),
        "confirm_s": round((done["confirm"] - done["search"]).total_seconds(), 1),
        "report_s": round((ended - done["confirm"]).total_seconds(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--quick", action="store_true", help="fold profile + the demo's search phase only (< 3 min)"
    )
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="cmi-bench-study-"))
    env = os.environ | {"CMI_CACHE_DIR": str(work / "cache"), "TQDM_DISABLE": "1"}
    os.environ["CMI_CACHE_DIR"] = env["CMI_CACHE_DIR"]  # the fold profile's data: the same fresh cache
    before = machine()
    figures: dict = {"cpus": os.cpu_count(), "date": datetime.now().strftime("%Y-%m-%d")}
    print(
        f"matmul fp32 2048²: {before['matmul_gflops']} GFLOP/s (1 thread), {before['matmul_gflops_2t']} (2 threads)"
    )

    # The CLI's default storage, relative to the fresh folder: sqlite:///reports/NAME.db.
    url = f"sqlite:///{work}/reports/{'q' if args.quick else 'cmi'}.db"
    started = datetime.now()
    if args.quick:
        wall = cli(["run", "--preset", "demo", "--workers", "2", "--study-name", "q"], work, env)
        figures["demo_like_wall_s"] = round(wall, 1)
        print(f"demo-like study (cmi-study run --preset demo --workers 2): {wall:.1f}s wall")
    else:
        wall = cli(["demo"], work, env)  # as the README runs it: no options
        figures["demo_wall_s"] = round(wall, 1)
        figures |= phases(url, "cmi", started, datetime.now())
        print(
            f"cmi-study demo: {wall:.1f}s wall (goal <= 180 s): search {figures['search_s']}s, "
            f"confirm {figures['confirm_s']}s, report {figures['report_s']}s"
        )
    search = search_figures(url, "q" if args.quick else "cmi")
    figures["pruner_saving"] = search.pop("pruner_saving")
    figures["search"] = search
    for arm, f in search.items():
        print(
            f"  {arm:12s} {f['fold_trainings']}/{f['of']} fold-trainings, {f['pruned']} pruned, best {f['best']}"
        )
    print(f"  default pruner saved {figures['pruner_saving']:.0%} of the search's fold-trainings")

    for preset in ("demo", "tiny"):
        profile = fold_profile(preset, n_trials=2 if args.quick else 3)
        suffix = "" if preset == "demo" else "_tiny_preset"
        figures[f"fold_profile{suffix}"] = profile["runs"]
        for key in ("fold_overhead_share", "fold_overhead_share_first", "fold_overhead_share_reused"):
            figures[key + suffix] = profile[key]
        print(
            f"fold profile ({preset} preset, fold 0, {profile['train_sequences']} training sequences, 1 thread):"
        )
        for r in profile["runs"]:
            print(
                f"  trial {r['trial']} ({r['cache']}): wall {r['wall_s']:.2f}s = prepare {r['prepare_s']:.2f} + "
                f"setup {r['setup_s']:.2f} + steps {r['steps_s']:.2f} ({r['steps']} × {r['ms_per_step']} ms) + "
                f"Lightning loop {r['lightning_loop_s']:.2f} + predict {r['predict_s']:.2f} "
                f"(forward {r['predict_forward_s']:.2f}) + other {r['other_s']:.2f}; "
                f"outside forward/backward/step {r['overhead_share']:.1%}"
            )
        print(
            f"  outside forward/backward/step over a worker's {st_trials(preset)} trials: "
            f"{profile['fold_overhead_share']:.1%} (goal < 30%)"
        )
    from cmi_model.config import MODEL_PRESETS

    # The tiny preset as it was before the speed work (4 heads, dropout on the attention weights).
    earlier = MODEL_PRESETS["tiny"].model_copy(update={"n_heads": 4, "attn_dropout": None})
    figures["step_ms_1_thread"], figures["step_ms_2_threads"] = step_ms(1), step_ms(2)
    figures["step_ms_1_thread_earlier_tiny"] = step_ms(1, earlier)
    print(
        f"tiny model step (64 × 64 batch): {figures['step_ms_1_thread']} ms on 1 thread "
        f"(the earlier tiny, 4 heads + attention dropout: {figures['step_ms_1_thread_earlier_tiny']} ms), "
        f"{figures['step_ms_2_threads']} ms on 2 threads (a worker per core needs 1 thread each)"
    )

    after = machine()
    # The figure a reader scales by: the mean of the measurements before and after.
    figures["matmul_gflops"] = round((before["matmul_gflops"] + after["matmul_gflops"]) / 2, 1)
    figures["matmul_gflops_2t"] = round((before["matmul_gflops_2t"] + after["matmul_gflops_2t"]) / 2, 1)
    figures["matmul_threads"] = WORKER_THREADS
    print(
        f"matmul fp32 2048²: {after['matmul_gflops']} GFLOP/s (1 thread), {after['matmul_gflops_2t']} (2 threads) "
        f"after; mean {figures['matmul_gflops']} / {figures['matmul_gflops_2t']}"
    )
    head = ["demo_like_wall_s"] if args.quick else ["demo_wall_s", "search_s", "confirm_s", "report_s"]
    head += ["fold_overhead_share", "pruner_saving", "matmul_gflops"]
    print(json.dumps({k: figures[k] for k in head} | {k: v for k, v in figures.items() if k not in head}))


if __name__ == "__main__":
    main()

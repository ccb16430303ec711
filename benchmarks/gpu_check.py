"""The first run on a GPU, with no edits: the model benchmark and a small study, in one JSON line.

1. bench_model's throughput section on the tiny and public presets (in the precision `auto` picks
   for the card): sequences/s, MFU (the step's FLOP/s as a share of that dtype's matmul peak,
   measured in the same run), peak GPU memory of one worker.
2. A small study (`cmi-study run`, tiny preset, 4 arms, 8 trials each) with 1, 2 and 4 workers on
   one GPU (`--gpu 0`), each in its own storage: wall seconds, trials per minute, the GPU's mean and
   peak utilisation and peak memory over the run (`nvidia-smi`, sampled every 0.5 s).

    python benchmarks/gpu_check.py [--device cuda|cpu] [--quick]

`--device cpu --quick` runs the same code on a CPU (1 and 2 workers, 2 trials; no utilisation):
what the tests run, so that the GPU run does not fail on a typo.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_model  # noqa: E402  (a sibling script)

ARMS = "fixed,uncertainty,famo,upgrad"


class GpuSampler:
    """Utilisation (%) and memory (MiB) of GPU 0 every 0.5 s while the block runs (nvidia-smi)."""

    def __init__(self):
        self.util: list[float] = []
        self.mem: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = [
            "nvidia-smi",
            "--id=0",
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.is_set():
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
            if out:
                util, mem = (float(x) for x in out.split(","))
                self.util.append(util)
                self.mem.append(mem)
            self._stop.wait(0.5)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict:
        if not self.util:
            return {"gpu_util_mean_pct": None, "gpu_util_peak_pct": None, "gpu_mem_peak_mib": None}
        return {
            "gpu_util_mean_pct": round(sum(self.util) / len(self.util), 1),
            "gpu_util_peak_pct": max(self.util),
            "gpu_mem_peak_mib": max(self.mem),
        }


def study_run(workers: int, trials: int, device: str, folder: Path) -> dict:
    """One `cmi-study run` with `workers` workers on one GPU (or the CPU), timed."""
    url = f"sqlite:///{folder / f'w{workers}.db'}"
    cmd = [sys.executable, "-m", "study", "run", "--preset", "tiny", "--storage", url, "--arms", ARMS]
    cmd += ["--n-trials", str(trials), "--workers", str(workers), "--study-name", f"w{workers}"]
    if device == "cuda":
        cmd += ["--gpu", "0"]
    env = os.environ | {"TQDM_DISABLE": "1", "CMI_CACHE_DIR": str(folder / "cache")}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path even where a GPU is present
    started = time.perf_counter()
    with GpuSampler() as sampler:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"gpu_check: {workers}-worker study failed ({proc.returncode}): {proc.stderr.strip()[-400:]}"
        )
    n = trials * len(ARMS.split(","))
    return {
        "workers": workers,
        "seconds": round(seconds, 1),
        "trials_per_min": round(60 * n / seconds, 1),
    } | (sampler.summary())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="fewer batches, trials and workers (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(1 if args.device == "cuda" else max(1, (os.cpu_count() or 2) // 2))
    bench_model.quiet_lightning()
    n = 512 if args.quick else 2048  # bf16 without bf16 units (a CPU) is a slow reference kernel
    fp32, bf16 = (bench_model.matmul_gflops(args.device, n, dtype=d) for d in (torch.float32, torch.bfloat16))
    configs = (
        [("tiny", 2, 2, 8, 16)] if args.quick else [("tiny", 40, 6, 64, 128), ("public", 40, 4, 64, 128)]
    )
    model = []
    for preset, n_batches, epochs, batch, t in configs:
        r = bench_model.bench(preset, args.device, n_batches, epochs, batch, t)
        model.append(
            {
                "preset": preset,
                "precision": r["precision"],
                "seq_per_s": r["lightning_seq_per_s"],
                "mfu_pct": round(
                    100 * r["achieved_gflop_per_s"] / (bf16 if r["precision"] == "bf16-mixed" else fp32), 2
                ),
                "lightning_overhead_pct": r["lightning_overhead_pct"],
                "peak_gpu_mib": r["peak_gpu_mib"],
            }
        )
    with tempfile.TemporaryDirectory(prefix="gpu_check") as tmp:
        counts, trials = ((1, 2), 2) if args.quick else ((1, 2, 4), 8)
        studies = [study_run(w, trials, args.device, Path(tmp)) for w in counts]
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    figures = {"device": device, f"matmul_{n}_gflop_per_s": {"fp32": round(fp32, 1), "bf16": round(bf16, 1)}}
    print(json.dumps(figures | {"model": model, "study": studies}))


if __name__ == "__main__":
    main()

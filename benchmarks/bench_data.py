"""Data layer benchmark on the --full-size synthetic train.csv (the real competition's size).

Measures, in one run so the ratios are fair on a shared machine:
- load + validate + preprocess (`cmi_model.data.build`) vs a bare `pyarrow.csv.read_csv`
  of the same file (goal: at most 1.5x);
- reload from the on-disk cache (goal: under 1 s);
- peak memory of load + preprocess in a fresh process, vs the float32 size of the
  sensor matrix (goal: at most 3x).
Ends with one JSON line of figures.

    python benchmarks/bench_data.py [--data DIR] [--repeat 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv

from cmi_model import data as D
from cmi_model.schema import SENSOR_COLUMNS
from cmi_model.synthetic import generate


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def peak_memory_child(train: Path, demo: Path) -> dict:
    """Run build() in a fresh interpreter and report its peak RSS above the post-import baseline.

    VmHWM, not ru_maxrss: the latter survives exec and would report this parent's peak.
    """
    code = f"""
import json
from pathlib import Path
from cmi_model import data as D
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
d = D.build(Path({str(train)!r}), Path({str(demo)!r}))
print(json.dumps({{"baseline_kib": base, "peak_kib": hwm(), "rows": int(d.offsets[-1])}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, help="folder with train.csv (default: generate the full-size synthetic set)"
    )
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cmi-bench-"))
    folder = args.data
    gen_s = None
    if folder is None:
        folder = tmp / "full"
        gen_s, _ = timed(lambda: generate(folder, full_size=True, seed=0))
        print(f"generated full-size synthetic data in {gen_s:.1f}s")
    train, demo = folder / "train.csv", folder / "train_demographics.csv"
    size_mb = train.stat().st_size / 1e6
    pacsv.read_csv(train)  # warm the page cache so both sides read from memory

    bare, build = [], []
    for _ in range(args.repeat):  # alternate so drift in machine load hits both alike
        bare.append(timed(lambda: pacsv.read_csv(train))[0])
        t, data = timed(lambda: D.build(train, demo))
        build.append(t)
    rows = int(data.offsets[-1])
    del data
    fp_s, _ = timed(lambda: D.fingerprint(train))
    cache = tmp / "cache"
    first_s, _ = timed(lambda: D.load(train, demo, cache_dir=cache))
    reload_s, again = timed(lambda: D.load(train, demo, cache_dir=cache))
    assert int(again.offsets[-1]) == rows

    mem = peak_memory_child(train, demo)
    sensor_bytes = rows * len(SENSOR_COLUMNS) * 4
    peak_bytes = (mem["peak_kib"] - mem["baseline_kib"]) * 1024
    figures = {
        "file_mb": round(size_mb, 1),
        "rows": rows,
        "generate_s": round(gen_s, 2) if gen_s else None,
        "bare_pyarrow_read_s": round(min(bare), 3),
        "load_validate_preprocess_s": round(min(build), 3),
        "ratio_vs_bare_read": round(min(build) / min(bare), 3),
        "fingerprint_s": round(fp_s, 3),
        "first_load_with_cache_write_s": round(first_s, 3),
        "reload_from_cache_s": round(reload_s, 3),
        "sensor_matrix_float32_mb": round(sensor_bytes / 1e6, 1),
        "peak_rss_above_baseline_mb": round(peak_bytes / 1e6, 1),
        "peak_vs_sensor_matrix": round(peak_bytes / sensor_bytes, 3),
        "cpus": os.cpu_count(),
    }
    print(
        f"bare pyarrow read        {figures['bare_pyarrow_read_s']:.2f}s  ({size_mb:.0f} MB, {rows:,} rows)"
    )
    print(
        f"load+validate+preprocess {figures['load_validate_preprocess_s']:.2f}s  = {figures['ratio_vs_bare_read']:.2f}x (goal <= 1.5x)"
    )
    print(
        f"reload from cache        {figures['reload_from_cache_s']:.2f}s  (goal < 1 s; content hash {fp_s:.2f}s of it)"
    )
    print(
        f"peak memory              {figures['peak_rss_above_baseline_mb']:.0f} MB = {figures['peak_vs_sensor_matrix']:.2f}x the float32 sensor matrix (goal <= 3x)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Workers at scale: one tiny study on a PostgreSQL server with 1, 8, 16 and 32 workers.

Each worker is the plain `cmi-study run` (through benchmarks/scale_worker.py, which only counts
its storage time and memory), a process group of its own with its own cache folder and the URL in
CMI_STORAGE, as separate machines would run it; each worker count gets a new database. Per
count it prints: wall time (first start to last exit), trials per minute, the share of the
workers' time spent in storage calls (their own thread's; the heartbeat thread's run beside
it), the server's peak connection count (polled every 0.1 s), each worker's peak resident
memory and what part of it the libraries are (after importing torch and Lightning, before any
data), and whether the totals are exact: every arm's budget met exactly, no trial run twice or
lost, no false "worker lost".

The machine's fp32 2048×2048 matmul GFLOP/s is printed beside the timings. Ends with one JSON line.

    python benchmarks/bench_scale.py [--url postgresql://...] [--workers 1,8,16,32] [--trials-per-worker 1]

The URL's role must be allowed to CREATEDB (the default: CMI_TEST_POSTGRES_URL, as .ci/run sets it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
from bench_study import matmul_gflops  # this folder is on sys.path when run as a script
from optuna.trial import TrialState

from study import records

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("fixed", "uncertainty")


def _engine(url: str, database: str | None = None, **kw) -> sqlalchemy.Engine:
    u = sqlalchemy.engine.make_url(url).set(drivername="postgresql+psycopg2")
    return sqlalchemy.create_engine(
        u.set(database=database) if database else u, poolclass=sqlalchemy.pool.NullPool, **kw
    )


class Peak(threading.Thread):
    """The most connections to one database the server held at once while the workers ran."""

    def __init__(self, url: str, database: str):
        super().__init__(daemon=True)
        self.engine, self.database, self.peak, self.stop = _engine(url), database, 0, threading.Event()

    def run(self) -> None:
        query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as c:
            while not self.stop.is_set():
                self.peak = max(self.peak, c.execute(query, {"d": self.database}).scalar())
                c.commit()
                self.stop.wait(0.1)


def exact(url: str, n_trials: int) -> tuple[bool, str]:
    """Whether every arm has exactly n_trials finished, none run twice, lost or failed."""
    problems = []
    for arm in ARMS:
        trials = optuna.load_study(study_name=f"scale-{arm}", storage=url).get_trials(deepcopy=False)
        counts = collections.Counter(t.state for t in trials)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        drawn = [json.dumps(t.params, sort_keys=True) for t in finished]
        # A budget skip is a designed step-aside; any other failure ("worker lost" included) is not.
        real = [
            t.user_attrs.get("fail_reason")
            for t in trials
            if t.state == TrialState.FAIL and not records.is_budget_skip(t)
        ]
        if len(finished) != n_trials:
            problems.append(f"{arm}: {len(finished)} of {n_trials} finished")
        if counts[TrialState.RUNNING] or counts[TrialState.WAITING]:
            problems.append(
                f"{arm}: {counts[TrialState.RUNNING]} running, {counts[TrialState.WAITING]} waiting"
            )
        if len(set(drawn)) != len(drawn):
            problems.append(f"{arm}: {len(drawn) - len(set(drawn))} trials drawn twice")
        if real:
            problems.append(f"{arm}: failed: {real[0]}")
    return not problems, "; ".join(problems)


def _top(stats: list[dict], n: int = 4) -> dict[str, float]:
    """The storage methods that took most of the workers' storage time, with their shares."""
    total = collections.Counter()
    for s in stats:
        total.update(s["by_call"])
    whole = sum(total.values()) or 1.0
    return {name: round(sec / whole, 3) for name, sec in total.most_common(n)}


def one_count(url: str, workers: int, n_trials: int, work: Path) -> dict:
    database = f"cmi_scale_{uuid.uuid4().hex[:8]}"
    admin = _engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {database}")
    db_url = sqlalchemy.engine.make_url(url).set(database=database).render_as_string(hide_password=False)
    try:
        peak = Peak(url, database)
        peak.start()
        procs, outs = [], []
        started = time.perf_counter()
        for i in range(workers):
            out = work / f"w{workers}-{i}.json"
            env = os.environ | {
                "CMI_STORAGE": db_url,
                "CMI_CACHE_DIR": str(work / f"cache-{workers}-{i}"),
                "SCALE_OUT": str(out),
                "TQDM_DISABLE": "1",
                "PYTHONWARNINGS": "ignore",
                "PYTHONPATH": str(ROOT),
            }
            argv = [sys.executable, str(ROOT / "benchmarks" / "scale_worker.py"), "run", "--preset", "tiny"]
            argv += ["--study-name", "scale", "--n-trials", str(n_trials)]
            log = open(work / f"w{workers}-{i}.log", "w")  # noqa: SIM115  closed below
            procs.append(
                (
                    subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=log, start_new_session=True),
                    log,
                )
            )
            outs.append(out)
        codes = []
        for p, log in procs:
            codes.append(p.wait())
            log.close()
        wall = time.perf_counter() - started
        peak.stop.set()
        peak.join()
        stats = [json.loads(o.read_text()) for o in outs if o.exists()]
        ok, why = exact(db_url, n_trials)
        return {
            "workers": workers,
            "trials_per_arm": n_trials,
            "wall_s": round(wall, 1),
            "trials_per_min": round(len(ARMS) * n_trials / wall * 60, 1),
            "storage_share": round(sum(s["storage_s"] for s in stats) / sum(s["wall_s"] for s in stats), 4),
            "storage_calls_per_worker": round(sum(s["storage_calls"] for s in stats) / len(stats)),
            "storage_top": _top(stats),
            "peak_connections": peak.peak,
            "connections_per_worker": round(peak.peak / workers, 2),
            "rss_peak_mib_max": round(max(s["peak_rss_mib"] for s in stats)),
            "rss_libraries_mib": round(sum(s["libraries_mib"] for s in stats) / len(stats)),
            "exit_codes_nonzero": sum(c != 0 for c in codes),
            "exact": ok and not any(codes),
            "problems": why,
        }
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--url",
        default=os.environ.get(
            "CMI_TEST_POSTGRES_URL", "postgresql://cmi:cmi-test-pw@127.0.0.1:5432/cmi_test"
        ),
    )
    ap.add_argument("--workers", default="1,8,16,32", help="worker counts, comma-separated")
    ap.add_argument(
        "--trials-per-worker", type=int, default=1, help="trials per arm = max(4, this × workers)"
    )
    args = ap.parse_args()
    gflops = matmul_gflops(1)
    print(f"fp32 2048x2048 matmul: {gflops:.1f} GFLOP/s (1 thread); {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for w in map(int, args.workers.split(",")):
            row = one_count(args.url, w, max(4, args.trials_per_worker * w), Path(tmp))
            rows.append(row)
            print(
                f"{w:3d} workers: {row['trials_per_arm']} trials/arm, wall {row['wall_s']:.0f} s, "
                f"{row['trials_per_min']:.1f} trials/min, storage {row['storage_share']:.1%} of worker time, "
                f"peak {row['peak_connections']} connections ({row['connections_per_worker']:.2f}/worker), "
                f"RSS ≤ {row['rss_peak_mib_max']} MiB ({row['rss_libraries_mib']} MiB libraries), "
                f"exact: {'yes' if row['exact'] else 'NO: ' + row['problems']}",
                flush=True,
            )
    print(json.dumps({"matmul_gflops": round(gflops, 1), "rows": rows}))


if __name__ == "__main__":
    main()

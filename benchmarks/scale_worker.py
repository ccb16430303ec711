"""One worker of benchmarks/bench_scale.py: the plain `cmi-study run` (study.cli.main, the
arguments as given), with the time its own thread spends in storage calls counted and its
resident memory read after the libraries are imported and at the end. Writes them as JSON to
the file named by SCALE_OUT. Only measures: the run is the CLI's, unchanged.

    SCALE_OUT=w0.json python benchmarks/scale_worker.py run --preset tiny ...
"""

import json
import os
import resource
import sys
import threading
import time

started = time.perf_counter()
import pytorch_lightning  # noqa: E402, F401
import torch  # noqa: E402, F401  the libraries a worker holds, before any data

from study.cli import main  # noqa: E402
from study.workers import retrying  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


libraries_mib = _rss_mib()
in_storage = [0.0, 0]  # seconds and calls of this worker's own thread (the heartbeat thread's run beside it)
by_call: dict[str, float] = {}  # seconds per storage method
_call = retrying.RetryingStorage._call


def _timed(self, fn, *args, **kwargs):
    if threading.current_thread() is not threading.main_thread():
        return _call(self, fn, *args, **kwargs)
    t = time.perf_counter()
    try:
        return _call(self, fn, *args, **kwargs)
    finally:
        took = time.perf_counter() - t
        in_storage[0] += took
        in_storage[1] += 1
        name = getattr(fn, "__name__", "?")
        by_call[name] = by_call.get(name, 0.0) + took


retrying.RetryingStorage._call = _timed
code = main(sys.argv[1:])
with open(os.environ["SCALE_OUT"], "w") as f:
    json.dump(
        {
            "code": code,
            "wall_s": time.perf_counter() - started,
            "storage_s": in_storage[0],
            "storage_calls": in_storage[1],
            "by_call": by_call,
            "libraries_mib": libraries_mib,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        f,
    )
sys.exit(code)

"""The study driver. On import, before numpy, scipy or torch load: an address-space cap."""

import os
import sys

from study.workers.limits import soft_limit

_CAP = soft_limit("AS")
if _CAP is not None:
    # OpenBLAS (scipy's bundled copy) reserves a buffer per thread at import and retries a failed
    # allocation forever: under `ulimit -v` every command hung. One thread's buffer fits or fails;
    # and a MemoryError anywhere, even while importing, is one line, not a traceback.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _previous_hook = sys.excepthook

    def _memory_line(kind, value, tb) -> None:
        if issubclass(kind, MemoryError):
            print(
                f"cmi-study: error: out of memory under the address-space limit of {_CAP // 2**20} MiB "
                "(`ulimit -v`): raise or remove the limit",
                file=sys.stderr,
            )
            return
        _previous_hook(kind, value, tb)

    sys.excepthook = _memory_line

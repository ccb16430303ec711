"""Helper workers of `run`/`confirm`/`demo --workers W`: processes started before they have work.

It imports the heavy modules at once (torch, Lightning, scikit-learn, SQLAlchemy: ~6 s on a
2-core machine), so that this start-up overlaps the driver's own, then runs the `cmi-study`
command lines the driver sends on stdin (one JSON list per line), one after another, and answers
each with its exit code on the pipe that was its stdout. The demo sends one helper `run`, then
`confirm`: it starts once. Closing stdin ends it.

Helpers die with their driver: a stopping signal to the driver (Ctrl-C, SIGTERM) is forwarded to
them, and on Linux the kernel sends them SIGTERM when the driver dies, SIGKILL included
(`PR_SET_PDEATHSIG`); either way their running trial is queued again like the driver's.
"""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from cmi_model.stopping import raise_if_stopping

SERVE = "--serve-helper"  # `python -m study --serve-helper`: how a helper process starts (study/__main__.py)
DRIVER_PID = "CMI_STUDY_DRIVER_PID"  # the driver's pid, in the helper's environment
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIVE: list[subprocess.Popen] = []  # every helper this process started and has not reaped


def die_with_driver() -> None:
    """Ask the kernel for SIGTERM when the driver dies (Linux; elsewhere a no-op). Called first
    thing in a helper: a driver that died before the request was made is noticed by its pid."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(os.environ.get(DRIVER_PID, os.getppid())):
        os.kill(os.getpid(), signal.SIGTERM)  # orphaned already


def forward_to_helpers(signum: int) -> None:
    """Pass a stopping signal on to every live helper of this process (the driver's handler calls it)."""
    for proc in _LIVE:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)


def serve(main: Callable[..., int]) -> int:
    """The helper's loop: each command line read from stdin run by `main` (the CLI's, handed in by
    the entry point so that this module imports nothing back from it), its exit code answered."""
    # Replies go on the original stdout; anything a command prints goes nowhere (the driver
    # prints for every worker). Error lines still reach stderr, which is the driver's.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    try:
        for line in sys.stdin:
            print(main(json.loads(line), helper=True), file=reply, flush=True)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group, idle helpers included
        return 130
    except BrokenPipeError:  # the driver is gone: nobody to answer (its trial is queued again already)
        return 1
    return 0


class HelperFailed(RuntimeError):
    """A helper worker's command failed (it printed its own error line) while this one's did not."""


class Helpers:
    """The driver's side: n helper processes (`serve` above), started before they have work, so
    that their imports overlap the driver's start-up; they take one command line after another
    (the demo's run `run`, then `confirm`)."""

    def __init__(self, n: int, envs: list[dict[str, str]] | None = None):
        """envs: each helper's own additions to the environment (its GPU: study.workers.gpus)."""
        # One progress bar: this process's, which counts every worker's trials.
        env = os.environ | {"TQDM_DISABLE": "1", DRIVER_PID: str(os.getpid())}
        cmd = [sys.executable, "-m", "study", SERVE]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
        own = envs or [{} for _ in range(n)]
        self.procs = [subprocess.Popen(cmd, env=env | own[i], **pipes) for i in range(n)]
        _LIVE.extend(self.procs)
        self.busy: list[subprocess.Popen] = []
        self.used: set[int] = set()  # pids of the helpers that were sent a command

    def send(self, argv: list[str], extra: list[list[str]]) -> None:
        """The command line `argv` to the first len(extra) helpers, each with its own arguments
        added (the driver is a worker too)."""
        for proc, more in zip(self.procs, extra, strict=False):
            self.busy.append(proc)
            self.used.add(proc.pid)
            with contextlib.suppress(BrokenPipeError):  # it died starting: wait() reports its code
                proc.stdin.write(json.dumps(argv + more) + "\n")
                proc.stdin.flush()

    def wait(self) -> list[int]:
        """Until every helper that was sent a command has finished it; their exit codes."""
        codes = []
        for proc in self.busy:
            line = proc.stdout.readline()  # empty: the helper died
            codes.append(int(line) if line.strip() else proc.wait())
        self.busy = []
        return codes

    @contextlib.contextmanager
    def waited(self):
        """This process's share of the work, then the helpers'. A helper that failed is an error
        unless this process failed first (Ctrl-C reaches every worker: its error is the one)."""
        try:
            yield
        except BaseException:
            self.wait()
            raise
        codes = self.wait()
        raise_if_stopping()  # stopped while waiting for them (they were told too): that, not their codes
        if any(codes):
            raise HelperFailed(f"{sum(c != 0 for c in codes)} helper worker(s) failed (exit codes {codes})")

    def close(self) -> None:
        for proc in self.procs:
            if proc.pid not in self.used:
                proc.kill()  # never had work (this command failed first): nothing to finish
            elif proc.poll() is None:
                proc.stdin.close()  # done with its commands: it ends
        for proc in self.procs:
            proc.wait()
            with contextlib.suppress(ValueError):
                _LIVE.remove(proc)

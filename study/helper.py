"""Helper workers of `run`/`confirm`/`demo --workers W`: processes started before they have work.

It imports the heavy modules at once (torch, Lightning, scikit-learn, SQLAlchemy: ~6 s on a
2-core machine), so that this start-up overlaps the driver's own, then runs the `cmi-study`
command lines the driver sends on stdin (one JSON list per line), one after another, and answers
each with its exit code on the pipe that was its stdout. The demo sends one helper `run`, then
`confirm`: it starts once. Closing stdin ends it.
"""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable

SERVE = (
    "--serve-helper"  # `python -m study --serve-helper`: how a helper process is started (study/__main__.py)
)


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
    return 0


class HelperFailed(RuntimeError):
    """A helper worker's command failed (it printed its own error line) while this one's did not."""


class Helpers:
    """The driver's side: n helper processes (`serve` above), started before they have work, so
    that their imports overlap the driver's start-up; they take one command line after another
    (the demo's run `run`, then `confirm`)."""

    def __init__(self, n: int):
        # One progress bar: this process's, which counts every worker's trials.
        env = os.environ | {"TQDM_DISABLE": "1"}
        cmd = [sys.executable, "-m", "study", SERVE]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
        self.procs = [subprocess.Popen(cmd, env=env, **pipes) for _ in range(n)]
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

"""The stop a signal asked for, kept where the work checks it.

A signal handler that raises can have its exception swallowed (Python drops an exception raised
while a __del__ or weakref callback runs), so the request is also kept here and checked where work
goes on: before every training batch (cmi_model.train: why this lives in cmi_model), before every
trial and while waiting for helper workers or a storage (study).
"""

import contextlib
import time

from cmi_model.errors import Interrupted

# The stopping signal this process received, if any.
_stop: list[int] = []


_stopped_at: list[float] = []  # time.monotonic() of the recorded stop


def request_stop(signum: int) -> bool:
    """Record a stopping signal; False if one was recorded already (a repeat)."""
    if _stop:
        return False
    _stop.append(signum)
    _stopped_at.append(time.monotonic())
    return True


def stop_signal() -> int | None:
    return _stop[0] if _stop else None


# How long a stopping worker still waits for a storage that is locked or unreachable, so that it
# can fail and re-queue its trial: a live peer's transaction lasts milliseconds, and systemd and
# Kubernetes send SIGKILL 30 s after SIGTERM. Past it, what the stop would still write is given
# up: the trial is found lost by the next worker.
STOP_PATIENCE = 3.0


def raise_if_stopped_waiting() -> None:
    """Raise the recorded stop once it is STOP_PATIENCE old: for loops that wait for a storage."""
    if _stop and time.monotonic() - _stopped_at[0] >= STOP_PATIENCE:
        raise Interrupted(_stop[0])


def clear_stop() -> None:
    """For in-process callers: a new command starts with no stop requested."""
    _stop.clear()
    _stopped_at.clear()


def raise_if_stopping() -> None:
    if _stop:
        raise Interrupted(_stop[0])


# While a trial is being taken from or handed back to the storage (Optuna's ask and tell), a
# stopping signal is recorded but not raised: raised there, it would leave the trial RUNNING with
# no heartbeat yet, which no worker ever finds lost. study.runner.run_one defers around them and
# raises the recorded stop once its objective starts (the trial is then failed and re-queued).
_deferred: list[bool] = [False]


@contextlib.contextmanager
def stops_deferred(deferred: bool = True):
    before = _deferred[0]
    _deferred[0] = deferred
    try:
        yield
    finally:
        _deferred[0] = before


def stop_deferred() -> bool:
    return _deferred[0]

"""Error types the command line maps to exit codes (bad input → 2)."""

import contextlib
import signal
import time


def causes(e: BaseException | None, depth: int = 10):
    """e, then what raised it (its __cause__, else its __context__), at most depth deep: the
    error a library wrapped (RDBStorage wraps SQLAlchemy's, which wraps the driver's)."""
    while e is not None and depth > 0:
        yield e
        e, depth = e.__cause__ or e.__context__, depth - 1


class InputError(ValueError):
    """Bad user input (file, column, value, option or config): one clear line, exit code 2."""


class NothingDone(RuntimeError):
    """Every trial of an arm, or every confirmation pair of one, failed: the command exits 1 with one
    line naming the arm and the last reason, so `confirm && report` stops there."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf during training; the study records the trial as failed."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Raised by the CLI's signal handler instead of KeyboardInterrupt, which
    Lightning's Trainer.fit catches and turns into sys.exit(1) (and SIGTERM, left to Lightning,
    into a silent exit 0 with the trial left RUNNING); not an Exception, so `except Exception`
    lets it by."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def reason(self) -> str:
        """How the trial it stopped is recorded (fail_reason)."""
        if self.signum == signal.SIGINT:
            return "KeyboardInterrupt: interrupted by the user"
        return f"KeyboardInterrupt: stopped by {signal.Signals(self.signum).name}"


# The stopping signal this process received, if any. A signal handler that raises can have its
# exception swallowed (Python drops an exception raised while a __del__ or weakref callback runs),
# so the request is also kept here and checked where work goes on: before every training batch
# (cmi_model.train), before every trial and while waiting for helper workers (study).
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

"""Error types the command line maps to exit codes (bad input → 2)."""

import signal


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

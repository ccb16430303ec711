"""Error types the command line maps to exit codes (bad input → 2)."""


class InputError(ValueError):
    """Bad user input (file, column, value, option or config): one clear line, exit code 2."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf during training; the study records the trial as failed."""


class Interrupted(BaseException):
    """Ctrl-C. Raised by the CLI's SIGINT handler instead of KeyboardInterrupt, which Lightning's
    Trainer.fit catches and turns into sys.exit(1); not an Exception, so `except Exception` lets it by."""

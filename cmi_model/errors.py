"""Error types the command line maps to exit codes (bad input → 2)."""


class InputError(ValueError):
    """Bad user input (file, column, value, option or config): one clear line, exit code 2."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf during training; the study records the trial as failed."""

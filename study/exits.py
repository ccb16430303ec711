"""How a command ends: its exit code and the one line on stderr for each way it fails (the README's
table), a stop by signal, a reader or stream gone away, and warnings as lines of the same form.

Exit codes (the README's table): 0 success; 2 bad input or configuration, and a storage that is
locked, read-only, damaged or replaced; 1 a machine out of room (full disk, file-size or memory limit),
a database server that stayed down or is full, a helper worker that failed, an arm whose every trial
failed, and any error that is not one of these (a bug: its traceback is the report); 128 + the
signal for a stop (130 Ctrl-C, 143 SIGTERM, 141 a reader of stdout gone away).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import sys
from collections.abc import Callable

from pydantic import ValidationError

from cmi_model.errors import InputError, Interrupted, NothingDone
from cmi_model.stopping import request_stop, stop_deferred, stop_signal
from study.workers.helper import forward_to_helpers

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what kill, systemd, Kubernetes and Slurm send


def on_stop_signal(signum, frame):
    """Ctrl-C and SIGTERM alike: the running trial is queued again, one line, exit 128 + signal.

    The first signal counts and reaches this process's helper workers too (a signal sent to the
    driver alone must not leave them training); repeats while stopping are ignored, so that the
    trial's re-queueing is not cut short."""
    if not request_stop(signum):
        return
    forward_to_helpers(signum)
    if not stop_deferred():  # else raised where it cannot strand a trial (cmi_model.stopping)
        raise Interrupted(signum)


TRAINING_COMMANDS = ("run", "confirm", "demo")  # the commands whose finished trials a stop keeps


def stopped_line(command: str) -> str:
    signum = stop_signal() or signal.SIGINT
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    kept = "; finished trials are kept in the storage" if command in TRAINING_COMMANDS else ""
    return f"cmi-study {command}: {how}{kept}"


def warning_lines(command: str) -> logging.Handler:
    """The tool's own logged warnings (study.*) as `cmi-study COMMAND: warning: ...` lines on stderr,
    like every other line it prints; the caller removes the handler again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"cmi-study {command}: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("study")
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def quiet_stdout() -> None:
    """The reader of our stdout went away (`cmi-study inspect | head`): nothing more to say, and
    nothing either when Python flushes stdout at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def storage_failure(e: Exception) -> tuple[str, int]:
    """(one line, exit code) of a storage error: its cause, password masked; 1 where the machine
    ran out of room (the README's row), 2 for the rest."""
    from study.workers.retrying import reason_of

    return room_line(reason_of(e))


def room_line(reason: str) -> tuple[str, int]:
    from study.workers.storage import out_of_room

    line, room = out_of_room(reason)
    return line, 2 if room is None else 1


def quiet_stops(previous, command: str):
    """A thread that a stop or a broken storage ended (Optuna's heartbeat): no traceback. The main
    thread says the error; a storage failure only the thread met yet is a warning line."""
    from study.workers.retrying import StorageBroken, broken

    def hook(args) -> None:
        if args.exc_type is None or issubclass(args.exc_type, (Interrupted, StorageBroken)):
            return
        if (stop := broken(args.exc_value)) is not None:  # the main thread meets it at its next write
            print(f"cmi-study {command}: warning: heartbeats stopped: {stop.reason}", file=sys.stderr)
            return
        previous(args)

    return hook


def reopen_closed_streams() -> None:
    """A stdout or stderr the caller closed (`cmi-study run … >&-`) is a place to write nothing, not a
    failure: os.devnull on its descriptor, so that no file the command opens later takes fd 1 or 2
    and receives its output."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115 — lives as long as the process


def exit_code(
    e: BaseException, command: str, storage: Callable[[], str], say_stopped: bool = True
) -> int | None:
    """Print the one line of a command that raised `e` and return its exit code; None: not a way a
    command fails (a bug: its traceback is the report). `storage()` names the storage for a line
    about it; `say_stopped`: False in a helper worker, whose driver says it once for every worker."""
    import optuna
    import sqlalchemy

    from study.workers.helper import HelperFailed
    from study.workers.retrying import StorageBroken, StorageLost

    # In this order: a BrokenPipeError is an OSError, and InputError, ValidationError and
    # JSONDecodeError are ValueErrors. Matched, not re-raised: a bug's traceback stays its own.
    if isinstance(e, BrokenPipeError):  # a closed pipe is not bad input: stop writing, say nothing
        quiet_stdout()
        return 128 + signal.SIGPIPE
    if isinstance(e, InputError):
        print(f"cmi-study {command}: error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        print(
            f"cmi-study {command}: error: {'.'.join(map(str, err['loc']))}: {err['msg']}",
            file=sys.stderr,
        )
        return 2
    if isinstance(e, StorageLost):  # the database server stayed down (study.workers.retrying.RETRY_PATIENCE)
        print(f"cmi-study {command}: error: {e}", file=sys.stderr)
        return 1
    if isinstance(e, HelperFailed):  # the helper said why on stderr (its own line) or was killed
        print(f"cmi-study {command}: error: {e}", file=sys.stderr)
        return 1
    if isinstance(e, NothingDone):  # every trial or pair of an arm failed: say which and why, exit 1
        print(f"cmi-study {command}: error: {e}", file=sys.stderr)
        return 1
    if isinstance(
        e, StorageBroken
    ):  # inside a trial (study.workers.retrying.broken): the cause, already one line
        line, code = room_line(e.reason)
        print(f"cmi-study {command}: error: {storage()}: {line}", file=sys.stderr)
        return code
    if isinstance(e, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)):
        # A storage that broke under us: locked, read-only, damaged, deleted, its disk full. Optuna
        # wraps a failed write in StorageInternalError (its hint blames the data): the cause says why.
        line, code = storage_failure(e)
        print(f"cmi-study {command}: error: {storage()}: {line}", file=sys.stderr)
        return code
    if isinstance(e, json.JSONDecodeError):  # Optuna decodes every stored attribute; one was edited by hand
        print(
            f"cmi-study {command}: error: storage: a stored attribute is not JSON ({e.msg}, character "
            f"{e.pos}): the database was edited or damaged outside Optuna",
            file=sys.stderr,
        )
        return 2
    if isinstance(e, OSError):  # a disk that is full or a folder we may not write: one line, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        line, code = room_line(e.strerror or str(e))
        print(f"cmi-study {command}: error: {where}{line}", file=sys.stderr)
        return 1 if e.errno in (errno.ENOSPC, errno.EFBIG) else code
    if isinstance(e, (KeyboardInterrupt, Interrupted)):
        if say_stopped:
            print(f"\n{stopped_line(command)}", file=sys.stderr)
        return 128 + (stop_signal() or signal.SIGINT)
    return None

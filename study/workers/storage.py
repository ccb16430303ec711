"""Optuna storage: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines)."""

import contextlib
import errno
import os
import sqlite3
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

# Private: the schema's tables (trials and their heartbeats, read in one query to find lost trials;
# the table names, to tell an Optuna database from another file). No public API reads either.
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from cmi_model.errors import InputError
from cmi_model.stopping import raise_if_stopped_waiting, raise_if_stopping
from study import records
from study.workers import postgres, retrying, trial_notes
from study.workers.limits import soft_limit
from study.workers.retrying import RetryingStorage, ServerFull, connection_lost
from study.workers.urls import origin, safe_url


class _RetryStale(RetryHeartbeatStaleTrialCallback):
    """Re-queue a dead worker's trial with the same parameters but none of its partial results
    (a confirmation pair keeps what it was queued with: its source trial and parameters)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in records.QUEUED}
        super().__call__(study, trial)


# How a full disk reads in a storage error: SQLite's, the OS's and PostgreSQL's words for it.
DISK_FULL = ("disk is full", "no space left on device", "could not extend file")


def disk_full(reason: str) -> bool:
    return any(words in reason.lower() for words in DISK_FULL)


def out_of_room(reason: str) -> tuple[str, int | None]:
    """(reason, errno) of a failed write: ENOSPC for a full disk, EFBIG where a file-size limit is
    set and the write failed as writes past it do (SQLite says only "disk I/O error"; the limit is
    then named), None for anything else. The README's exit code 1 for the first two, not 2: the
    machine ran out of room, the input was not bad."""
    if disk_full(reason):
        return reason, errno.ENOSPC
    limit = soft_limit("FSIZE")
    if limit is not None and any(words in reason.lower() for words in ("disk i/o error", "file too large")):
        named = f"(the file-size limit, `ulimit -f`, is {limit // 1024} KiB)"
        return reason if named in reason else f"{reason} {named}", errno.EFBIG
    return reason, None


# RUNNING trials without a heartbeat, as this process first saw them: ((storage URL, study id),
# trial id) → time.monotonic() then. A clock of this process only: workers' clocks and time zones may differ.
_heartless_since: dict[tuple[tuple[str, int], int], float] = {}


def _never_beat(storage, study_id: int, grace_period: int) -> list[int]:
    """RUNNING trials that have recorded no heartbeat for grace_period seconds of this process's
    watching: their worker died between taking the trial and its first heartbeat (a SIGKILL, or a
    stop while another process held the database locked). Optuna's stale check skips trials without
    a heartbeat, so they stayed RUNNING forever and held their share of the budget."""
    retrying_call = storage._call if isinstance(storage, RetryingStorage) else (lambda fn, *a: fn(*a))
    rdb = storage
    while not isinstance(rdb, RDBStorage):  # under Optuna's cache and/or RetryingStorage
        rdb = getattr(rdb, "_rdb", None) or rdb._backend
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    query = (
        sqlalchemy.select(trials.trial_id)
        .outerjoin(beats, beats.trial_id == trials.trial_id)
        .where(trials.study_id == study_id, trials.state == TrialState.RUNNING, beats.trial_id.is_(None))
    )

    def heartless() -> set[int]:
        with rdb.engine.connect() as connection:
            return {row[0] for row in connection.execute(query)}

    now, found, study = time.monotonic(), retrying_call(heartless), (rdb.url, study_id)
    for key in [k for k in _heartless_since if k[0] == study and k[1] not in found]:
        del _heartless_since[key]  # it beat, or it ended
    return [t for t in found if now - _heartless_since.setdefault((study, t), now) > grace_period]


def fail_lost_trials(study: optuna.Study, grace_period: int) -> None:
    """Fail the trials of workers that stopped sending heartbeats (or never sent one), saying so
    in their record, and re-queue them. Optuna's fail_stale_trials does the same but can only fail
    them: a finished trial's attributes can no longer be written, so the reason goes in first."""
    storage = study._storage  # as in optuna.storages.fail_stale_trials: no public handle exists
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is None:
        return  # no heartbeats: nothing can be known to be lost
    reason = f"worker lost: no heartbeat for {grace_period} s"
    stale = storage._get_stale_trial_ids(study._study_id)
    for trial_id in [*stale, *_never_beat(storage, study._study_id, grace_period)]:
        try:
            for key, value in records.trial_attrs(fail_reason=reason).items():
                storage.set_trial_user_attr(trial_id, key, value)
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        trial_notes.save_finished(study, trial_id, trial_notes.fail_note(reason))
        storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(trial_id))


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial again like a lost worker's (same parameters, same retry limit)."""
    callback = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if callback is not None:
        callback(study, trial)


_OPTUNA_TABLES = {*models.BaseModel.metadata.tables, "alembic_version"}


def _check_sqlite_file(path: Path, must_exist: bool, where: str) -> None:
    """Refuse, before SQLAlchemy creates Optuna's tables in it, a file that is not an Optuna
    database: a command that reads a run must never turn a wrong file into one."""
    if not path.exists():
        if must_exist:
            raise InputError(f"{where}: no SQLite database at {path}")
        return
    if not path.is_file():
        raise InputError(f"{where}: {path} is not a file")
    if path.stat().st_size == 0:
        if must_exist:
            raise InputError(f"{where}: {path} is an empty file, not an Optuna database")
        return
    try:
        with open(path, "rb") as f:
            magic = f.read(16)
        if magic != b"SQLite format 3\x00":
            raise InputError(f"{where}: {path} is not a SQLite database")
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=LOCK_STEP)) as db:
            tables = _patiently(
                lambda: {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            )
            problems = _patiently(lambda: [r[0] for r in db.execute("PRAGMA quick_check")])
    except (OSError, sqlite3.DatabaseError) as e:
        raise InputError(f"{where}: cannot read {path}: {e}") from None
    if problems != ["ok"]:
        raise InputError(f"{where}: {path} is damaged: {' '.join(problems[0].split())[:200]}")
    # A worker started beside another may look while that one is still creating the tables: a
    # database holding only Optuna's own tables is a storage being made, not a foreign file.
    if not {"studies", "trials", "alembic_version"} <= tables and not tables <= _OPTUNA_TABLES:
        raise InputError(f"{where}: {path} is a SQLite database but not an Optuna storage")
    if not must_exist and not os.access(path, os.W_OK):
        raise InputError(f"{where}: {path} is read-only")


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 2,
    must_exist: bool = False,
) -> BaseStorage:
    """An RDBStorage with heartbeats (so a killed worker's trial is failed and retried); on a
    database server, wrapped in a RetryingStorage so that an outage of up to RETRY_PATIENCE is
    survived. SQLite stays bare: there is no server to come back, and its errors (locked,
    read-only, damaged) are not outages: retrying them would only delay their one-line error.

    must_exist: for commands that only read an earlier run's studies (confirm, report): a
    SQLite file that is not there is an input error, not a new empty database.
    """
    where = origin(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        # Masked: an unparseable URL can still hold a password.
        raise InputError(
            f"{where}: {safe_url(url)!r} is not a SQLAlchemy database URL (e.g. sqlite:///study.db)"
        ) from None
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed;
        # psycopg2 (psycopg2-binary) is the driver this project depends on.
        url = parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        if (
            not parsed.database
            or parsed.database == ":memory:"
            or parsed.database.startswith("file::memory:")
        ):
            # Nothing in it would survive the process, and helper workers would each get their own.
            raise InputError(
                f"{where} {safe_url(url)}: an in-memory SQLite database vanishes with this process and "
                "no other worker can see it; give a file, e.g. sqlite:///reports/study.db"
            )
        if parsed.database:
            _check_sqlite_file(Path(parsed.database), must_exist, where)
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Parallel workers on one SQLite file wait for the lock instead of failing: a step at a
        # time where the file is written (see _take_the_write_lock_first), else all at once.
        writable = not Path(parsed.database).exists() or os.access(parsed.database, os.W_OK)
        engine_kwargs["connect_args"] = {"timeout": LOCK_STEP if writable else LOCK_PATIENCE}
    elif parsed.get_backend_name() == "postgresql":
        engine_kwargs = postgres.engine_kwargs(parsed.query)
    else:
        # A pooled connection the server dropped (restart, failover) is replaced before use.
        engine_kwargs["pool_pre_ping"] = True
    heartbeat = {}
    if heartbeat_interval:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": _RetryStale(max_retry=max_retry),
        }
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            if parsed.get_backend_name() == "postgresql":
                # Tables made under the lock (study.workers.postgres.schema_lock); Optuna's own version
                # check nests two connections, so it runs only when the quick one finds an old
                # schema, to raise its message.
                with postgres.schema_lock(url, parsed.query):
                    rdb = RDBStorage(
                        url, engine_kwargs=engine_kwargs, skip_compatibility_check=True, **heartbeat
                    )
                    versions = rdb._version_manager
                    if versions.get_current_version() != versions.get_head_version():
                        versions.check_table_schema_compatibility()
            else:
                rdb = RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
            if parsed.get_backend_name() != "sqlite":
                return RetryingStorage(rdb)
            if os.access(parsed.database, os.W_OK):  # a read-only file is only read: no lock to take
                _take_the_write_lock_first(rdb.engine, Path(parsed.database))
            return rdb
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ModuleNotFoundError) as e:
            if (said := postgres.server_full(e)) is not None:
                raise ServerFull(safe_url(url), said) from None
            if _locked(e) and time.monotonic() - started < LOCK_PATIENCE:
                raise_if_stopping()  # another process holds the file: wait for it, a step at a time
                time.sleep(LOCK_STEP)
                continue
            if attempt < SCHEMA_RACE_ATTEMPTS and _lost_schema_race(e):
                time.sleep(0.2 * attempt)
                continue
            waited = time.monotonic() - started
            if parsed.get_backend_name() != "sqlite" and connection_lost(e) and waited < OPEN_PATIENCE:
                # A worker that starts (or a helper that joins) while the server restarts waits for it.
                pause = retrying.RETRY_FIRST_DELAY * 2**attempt
                time.sleep(min(retrying.RETRY_MAX_DELAY, pause, OPEN_PATIENCE - waited))
                continue
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            reason, room = out_of_room(reason)
            if room is not None:  # not bad input: the README's exit code 1, one line naming the storage
                raise OSError(room, f"cannot open the storage: {reason}", safe_url(url)) from None
            raise InputError(f"{where} {safe_url(url)}: cannot open the storage: {reason}") from None
        except RuntimeError as e:  # Optuna's "no longer compatible with the table schema (set up by ...)"
            if "compatible with the table schema" not in str(e):
                raise
            raise InputError(f"{where} {safe_url(url)}: {' '.join(str(e).split())}") from None


def close(storage: BaseStorage) -> None:
    """Give back the storage's pooled connections now, not when the process ends: a worker that
    opened a storage only to read (confirm's checks) must not hold its connections while it trains."""
    rdb = storage._rdb if isinstance(storage, RetryingStorage) else storage
    if isinstance(rdb, RDBStorage):
        with contextlib.suppress(Exception):  # closing connections to a server that is gone
            rdb.scoped_session.remove()
            rdb.engine.dispose()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _take_the_write_lock_first(engine: sqlalchemy.Engine, path: Path) -> None:
    """Every transaction on this SQLite engine begins with BEGIN IMMEDIATE (SQLAlchemy's pysqlite
    recipe). Python's sqlite3 begins a transaction only at the first write, so Optuna's
    read-then-update of a queued trial (Study._pop_waiting_trial_id: WAITING → RUNNING, guarded by
    SELECT ... FOR UPDATE, which SQLite ignores) let two workers both read WAITING and both take
    the same trial: one finished it, the other failed with "Cannot tell a COMPLETE trial"."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below opens them instead

    opened = _identity(path)

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        if _identity(path) != opened:
            # SQLite goes on writing into an open file that was deleted or replaced, and the
            # command would end with exit 0 and its results nowhere.
            raise retrying.StorageBroken(retrying.REPLACED)
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            # Left open by a call that a stop signal cut short between SQLite's BEGIN and
            # SQLAlchemy's record of it: no one's work (a connection serves one thread at a
            # time), and BEGIN would fail with "cannot start a transaction within a transaction"
            # (seen in Optuna's heartbeat thread after a SIGTERM).
            dbapi_connection.rollback()
        # Waiting for another process's write lock happens here, in SQLite's C code, where no
        # signal handler runs: a step at a time, so that a stop is honoured between steps (systemd
        # and Kubernetes send SIGKILL 30 s after SIGTERM). Once begun, the commit may wait for
        # readers as long as it takes.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(LOCK_STEP * 1000)}")
        _patiently(lambda: connection.exec_driver_sql("BEGIN IMMEDIATE"))
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(LOCK_PATIENCE * 1000)}")

    engine.dispose()  # the connections RDBStorage opened before the listeners were there


# How long a worker waits for another process's lock on a SQLite file before it gives up, and in
# steps of how long (between them a stopping signal is honoured).
LOCK_PATIENCE = 120.0
LOCK_STEP = 0.25


def _locked(e: BaseException) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY), bare or wrapped by SQLAlchemy."""
    cause = getattr(e, "orig", None) or e
    return getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "database is locked" in str(
        cause
    )


def _patiently(attempt):
    """attempt(), again while another process holds the SQLite file's lock (each attempt waits
    LOCK_STEP in SQLite), LOCK_PATIENCE in all; a stopping signal is raised between attempts once
    it is STOP_PATIENCE old, in any thread (the heartbeat's too: the worker joins it on stopping)."""
    started = time.monotonic()
    while True:
        tried = time.monotonic()
        try:
            return attempt()
        except (sqlite3.OperationalError, sqlalchemy.exc.OperationalError) as e:
            if not _locked(e) or time.monotonic() - started >= LOCK_PATIENCE:
                raise
            raise_if_stopped_waiting()
            # SQLite answers "locked" at once, without waiting, where waiting could deadlock.
            time.sleep(max(0.0, LOCK_STEP - (time.monotonic() - tried)))


SCHEMA_RACE_ATTEMPTS = 5
# How long opening a server storage waits for a server that does not answer: long enough for a
# restart, short enough that a mistyped host or port is said within seconds (a storage
# already open waits RETRY_PATIENCE).
OPEN_PATIENCE = 15.0


def _lost_schema_race(e: Exception) -> bool:
    """Workers started together on a new database race to create its tables and version row
    (e.g. "UNIQUE constraint failed: alembic_version.version_num"); the loser finds them made
    on a second look."""
    return isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)

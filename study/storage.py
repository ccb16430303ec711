"""Optuna storage: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines)."""

import contextlib
import copy
import datetime
import os
import random
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from cmi_model.errors import InputError
from study import postgres, records, trial_notes

REPORTS_DIR = Path("reports")


# The storage URL when --storage is not given: from the environment, so that a password never
# sits in a command line (readable by anyone with `ps` on a shared node).
STORAGE_ENV = "CMI_STORAGE"


def default_url(study_name: str) -> str:
    return f"sqlite:///{REPORTS_DIR / study_name}.db"


def resolve_url(given: str | None, study_name: str) -> str:
    """--storage, else $CMI_STORAGE, else the study's own SQLite file under reports/."""
    return given or os.environ.get(STORAGE_ENV) or default_url(study_name)


def origin(url: str) -> str:
    """Where the user gave url, for error lines: the option or the environment variable."""
    return STORAGE_ENV if url == os.environ.get(STORAGE_ENV) else "--storage"


# The one place secrets are masked: the driver (printed URLs, the stored command line) and the
# report share it. A URL carries them as user info (user:password@) or as query parameters
# (libpq's password, sslpassword, passfile, ...).
SECRET_PARAMS = re.compile(r"pass|secret|token|sslkey", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s@]*@")
_QUERY_SECRET = re.compile(
    r"([?&][^=&\s'\"]*(?:pass|secret|token|sslkey)[^=&\s'\"]*=)[^&\s'\"]*", re.IGNORECASE
)


def redact(text: str) -> str:
    """Hide the secrets of any URL inside a string (e.g. a command line): the password of
    ``scheme://user:password@host`` and the values of secret query parameters."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def safe_url(url: str) -> str:
    """The URL with its secrets masked: the only form that is printed or stored."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError):
        return redact(url)  # unparseable, but may still carry a password
    query = {k: ("***" if SECRET_PARAMS.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


class _RetryStale(RetryHeartbeatStaleTrialCallback):
    """Re-queue a dead worker's trial with the same parameters but none of its partial results
    (a confirmation pair keeps what it was queued with: its source trial and parameters)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in records.QUEUED}
        super().__call__(study, trial)


def fail_lost_trials(study: optuna.Study, grace_period: int) -> None:
    """Fail the trials of workers that stopped sending heartbeats, saying so in their record,
    and re-queue them. Optuna's fail_stale_trials does the same but can only fail them: a
    finished trial's attributes can no longer be written, so the reason goes in first."""
    storage = study._storage  # as in optuna.storages.fail_stale_trials: no public handle exists
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is None:
        return  # no heartbeats: nothing can be known to be lost
    reason = f"worker lost: no heartbeat for {grace_period} s"
    for trial_id in storage._get_stale_trial_ids(study._study_id):
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
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=120)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            problems = [r[0] for r in db.execute("PRAGMA quick_check")]
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
        # Parallel workers on one SQLite file wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
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
                # Tables made under the lock (study.postgres.schema_lock); Optuna's own version
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
                _take_the_write_lock_first(rdb.engine)
            return rdb
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ModuleNotFoundError) as e:
            if (said := postgres.server_full(e)) is not None:
                raise ServerFull(safe_url(url), said) from None
            if attempt < SCHEMA_RACE_ATTEMPTS and _lost_schema_race(e):
                time.sleep(0.2 * attempt)
                continue
            waited = time.monotonic() - started
            if parsed.get_backend_name() != "sqlite" and connection_lost(e) and waited < OPEN_PATIENCE:
                # A worker that starts (or a helper that joins) while the server restarts waits for it.
                time.sleep(min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * 2**attempt, OPEN_PATIENCE - waited))
                continue
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
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


def _take_the_write_lock_first(engine: sqlalchemy.Engine) -> None:
    """Every transaction on this SQLite engine begins with BEGIN IMMEDIATE (SQLAlchemy's pysqlite
    recipe). Python's sqlite3 begins a transaction only at the first write, so Optuna's
    read-then-update of a queued trial (Study._pop_waiting_trial_id: WAITING → RUNNING, guarded by
    SELECT ... FOR UPDATE, which SQLite ignores) let two workers both read WAITING and both take
    the same trial: one finished it, the other failed with "Cannot tell a COMPLETE trial"."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below opens them instead

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            # Left open by a call that a stop signal cut short between SQLite's BEGIN and
            # SQLAlchemy's record of it: no one's work (a connection serves one thread at a
            # time), and BEGIN would fail with "cannot start a transaction within a transaction"
            # (seen in Optuna's heartbeat thread after a SIGTERM).
            dbapi_connection.rollback()
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections RDBStorage opened before the listeners were there


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


# ----------------------------------------------------------------------------- server outages

# A PostgreSQL restart, a failover or a network blip takes seconds to a minute; a server down
# for longer needs a person, and a worker waiting on it would only hide that. So a storage call
# retries a lost connection for RETRY_PATIENCE seconds in all, backing off exponentially from
# RETRY_FIRST_DELAY to RETRY_MAX_DELAY: a server that is back is noticed within a few seconds,
# and a down one is asked about a dozen times a minute per worker, not hammered.
RETRY_PATIENCE = 60.0
RETRY_FIRST_DELAY = 0.25
RETRY_MAX_DELAY = 4.0
# The system attribute that lets a retried create_new_trial find the trial an attempt whose
# answer was lost did create (see RetryingStorage.create_new_trial).
CREATE_TOKEN = "cmi_create_token"
# SQLSTATEs of a server that is going away or not there yet: class 08 (connection exception),
# admin_shutdown (pg_ctl stop -m fast), crash_shutdown, cannot_connect_now (starting up or
# shutting down). Never integrity, data or syntax errors: bad input fails at once.
_CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")


class StorageLost(BaseException):
    """The storage stopped answering for RETRY_PATIENCE seconds: the worker stops (one line,
    exit 1). Not an Exception, like KeyboardInterrupt: Optuna's `catch` and our `except
    Exception` must not record it on the trial (nothing can be written) and go on to the next
    trial; the trial in flight stays RUNNING and is failed and re-queued by heartbeats."""

    def __init__(self, url: str, seconds: float, reason: str):
        super().__init__(f"the storage {url} stopped answering for {seconds:.0f} s: {reason}")


class ServerFull(StorageLost):
    """The server refused a connection because it has none left (study.postgres). Not retried:
    waiting would only hold the workers that did connect, and only fewer workers or a larger
    limit help. Stops the worker like StorageLost (one line, exit 1)."""

    def __init__(self, url: str, said: str):
        BaseException.__init__(self, postgres.full_line(url, said))


def connection_lost(e: BaseException) -> bool:
    """Whether e (or what caused it: RDBStorage wraps SQLAlchemy's errors in
    StorageInternalError) is a lost or refused connection to the database server."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, sqlalchemy.exc.DisconnectionError):
            return True
        if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            if e.connection_invalidated:  # the dialect recognised a disconnect
                return True
            if hasattr(e.orig, "pgcode"):  # psycopg2
                code = e.orig.pgcode
                # No SQLSTATE: libpq's own error, no server answered (refused, reset, timed out).
                return code is None or code.startswith("08") or code in _CONNECTION_SQLSTATES
            return False
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _reason(e: BaseException) -> str:
    while getattr(e, "__cause__", None) is not None and not isinstance(e, sqlalchemy.exc.DBAPIError):
        e = e.__cause__
    text = str(getattr(e, "orig", None) or e).strip()
    return redact(text.splitlines()[0][:200] if text else type(e).__name__)


def _with_token(template: FrozenTrial | None, token: str) -> FrozenTrial:
    """The trial to create, marked with token (a plain ask creates the same RUNNING trial)."""
    if template is None:
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
    else:
        template = copy.deepcopy(template)
    template.system_attrs = {**template.system_attrs, CREATE_TOKEN: token}
    return template


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """An RDBStorage (behind Optuna's usual cache) whose every call survives a server outage of
    up to RETRY_PATIENCE seconds: a call that loses its connection is retried with exponential
    backoff; pool_pre_ping (open_storage) replaces the pooled connections the server dropped.
    Only connection-level errors are retried (connection_lost); the rest raise at once.

    After RETRY_PATIENCE without an answer the storage is lost for this process: the call, any
    call waiting in another thread (the heartbeat) and every later call raise StorageLost at
    once, so the worker stops within a second instead of waiting once more per call.

    A BaseHeartbeat, like RDBStorage: Optuna only runs heartbeats for such storages.

    Retried writes are idempotent (attributes, params, intermediate values and heartbeats are
    upserts; a repeated param insert is an ignored IntegrityError) except two, handled below:
    create_new_trial and set_trial_state_values, whose first attempt may have committed before
    the connection went (the answer was lost). create_new_study after a lost answer raises
    DuplicatedStudyError: the worker then joins the study as if another had made it, and writes
    its record when no creator's record appears (runner._creators_record), so nothing is lost.
    """

    def __init__(self, backend: RDBStorage):
        self._rdb = backend
        self._backend = _CachedStorage(backend)  # what optuna.get_storage would make of it
        self.url = backend.url  # for the report's storage line (masked there)
        self._lost = threading.Event()  # set once the storage is given up: wakes waiting retries
        self._lost_error: StorageLost | None = None
        self._gathered = threading.local()  # this thread's user attributes held for one_transaction

    def _call(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried while the server is unreachable, at most RETRY_PATIENCE."""
        started, delay = None, RETRY_FIRST_DELAY
        while True:
            if self._lost_error is not None:
                raise self._lost_error
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if (said := postgres.server_full(e)) is not None:
                    raise ServerFull(safe_url(self.url), said) from None
                if not connection_lost(e):
                    raise
                now = time.monotonic()
                started = now if started is None else started
                waited = now - started
                if waited >= RETRY_PATIENCE:
                    if self._lost_error is None:
                        self._lost_error = StorageLost(safe_url(self.url), RETRY_PATIENCE, _reason(e))
                        self._lost.set()
                    raise self._lost_error from None
                # Jitter: workers that lost the server together do not come back in lockstep.
                pause = min(delay, RETRY_PATIENCE - waited) * random.uniform(0.5, 1.0)
                self._lost.wait(pause)
                delay = min(2 * delay, RETRY_MAX_DELAY)

    # ------------------------------------------------------------------ the two non-idempotent calls

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """The trial is created with a token of its own: a retry first looks for a trial with
        that token (made by an attempt whose answer was lost), and any second one (RDBStorage
        itself retries a failed create up to five times) is failed as a duplicate at once,
        never left RUNNING without a heartbeat (never found stale: it would hold the budget)
        or WAITING (its parameters would be trained twice)."""
        token = uuid.uuid4().hex
        template = _with_token(template_trial, token)
        attempted = False

        def attempt() -> int:
            nonlocal attempted
            if attempted:
                mine = self._with_token(study_id, token)
                if mine:
                    return mine[0]._trial_id
            attempted = True
            return self._backend.create_new_trial(study_id, template)

        trial_id = self._call(attempt)
        for dup in self._call(self._with_token, study_id, token):
            if dup._trial_id != trial_id and not dup.state.is_finished():
                self._call(self._fail_duplicate, dup._trial_id, trial_id)
        return trial_id

    def _with_token(self, study_id: int, token: str) -> list[FrozenTrial]:
        trials = self._backend.get_all_trials(study_id, deepcopy=False)
        return sorted(
            (t for t in trials if t.system_attrs.get(CREATE_TOKEN) == token), key=lambda t: t.number
        )

    def _fail_duplicate(self, trial_id: int, kept: int) -> None:
        # A budget skip: a designed step-aside, not a failure of the arm.
        reason = f"{records.BUDGET_TAKEN}: duplicate of trial id {kept}, made by a retried storage call"
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            for key, value in records.trial_attrs(fail_reason=reason).items():
                self._backend.set_trial_user_attr(trial_id, key, value)
            self._backend.set_trial_state_values(trial_id, TrialState.FAIL)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        """A retry first reads the trial: if an attempt whose answer was lost already finished it
        as asked, that was this call (True), not a finished trial to refuse. A trial taken from
        the queue (WAITING → RUNNING) that is RUNNING on the retry may be ours or another
        worker's: False (Optuna takes another), and one heartbeat for it, so that if it was ours
        it is found stale after the grace period, failed and re-queued like a dead worker's.

        Ambiguous only if another worker failed the same stale trial at the same moment: then
        both re-queue it (a duplicate WAITING trial); budget_counts still counts exactly."""
        attempted = False

        def attempt() -> bool:
            nonlocal attempted
            if attempted:
                now = self._backend.get_trial(trial_id)
                same = values is None or list(now.values or ()) == list(values)
                if state.is_finished() and now.state == state and same:
                    return True
                if state == TrialState.RUNNING and now.state == TrialState.RUNNING:
                    if self.get_heartbeat_interval() is not None:
                        self._backend.record_heartbeat(trial_id)
                    return False
            attempted = True
            return self._backend.set_trial_state_values(trial_id, state=state, values=values)

        return self._call(attempt)

    # ------------------------------------------------------------------ a record in one transaction

    @contextlib.contextmanager
    def one_transaction(self):
        """Inside, this thread's set_trial_user_attr calls are gathered and written on leaving,
        in one transaction: a fold's record (~20 attributes) is one commit, not ~20, which was
        the largest share of a worker's storage time, and it is never half-written. If the body
        raises, nothing gathered is written. The heartbeat thread's calls go through as usual."""
        if getattr(self._gathered, "attrs", None) is not None:  # nested: the outer one writes
            yield
            return
        self._gathered.attrs = {}
        try:
            yield
            gathered = self._gathered.attrs
        finally:
            self._gathered.attrs = None
        if gathered:
            self._call(self._write_user_attrs, gathered)

    def _write_user_attrs(self, gathered: dict) -> None:
        # RDBStorage.set_trial_user_attr's own steps, in one session (it opens one per attribute).
        # Private names of Optuna's: the floor-version CI imports and runs them at both ends.
        with _create_scoped_session(self._rdb.scoped_session, True) as session:
            for (trial_id, key), value in gathered.items():
                self._rdb._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial_id, key, value
                )

    # ------------------------------------------------------------------ heartbeats

    def record_heartbeat(self, trial_id: int) -> None:
        """Called by Optuna's heartbeat thread: a StorageLost there would only print a thread's
        traceback. The worker's own next call raises it."""
        with contextlib.suppress(StorageLost):
            self._call(self._backend.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._call(self._backend._get_stale_trial_ids, study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self._rdb.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self):
        return self._rdb.get_heartbeat_stale_trial_callback()

    # ------------------------------------------------------------------ the rest: retried as they are

    def create_new_study(self, directions, study_name=None) -> int:
        return self._call(self._backend.create_new_study, directions, study_name)

    def delete_study(self, study_id):
        return self._call(self._backend.delete_study, study_id)

    def set_study_user_attr(self, study_id, key, value):
        return self._call(self._backend.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id, key, value):
        return self._call(self._backend.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name):
        return self._call(self._backend.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id):
        return self._call(self._backend.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id):
        return self._call(self._backend.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id):
        return self._call(self._backend.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id):
        return self._call(self._backend.get_study_system_attrs, study_id)

    def get_all_studies(self):
        return self._call(self._backend.get_all_studies)

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution):
        return self._call(
            self._backend.set_trial_param, trial_id, param_name, param_value_internal, distribution
        )

    def get_trial_id_from_study_id_trial_number(self, study_id, trial_number):
        return self._call(self._backend.get_trial_id_from_study_id_trial_number, study_id, trial_number)

    def get_trial_number_from_id(self, trial_id):
        return self._call(self._backend.get_trial_number_from_id, trial_id)

    def get_trial_param(self, trial_id, param_name):
        return self._call(self._backend.get_trial_param, trial_id, param_name)

    def set_trial_intermediate_value(self, trial_id, step, intermediate_value):
        return self._call(self._backend.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id, key, value):
        if (gathered := getattr(self._gathered, "attrs", None)) is not None:
            gathered[trial_id, key] = value  # written by one_transaction
            return None
        return self._call(self._backend.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id, key, value):
        return self._call(self._backend.set_trial_system_attr, trial_id, key, value)

    def get_trial(self, trial_id):
        return self._call(self._backend.get_trial, trial_id)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        return self._call(self._backend.get_all_trials, study_id, deepcopy, states)

    def get_n_trials(self, study_id, state=None):
        return self._call(self._backend.get_n_trials, study_id, state)

    def get_best_trial(self, study_id):
        return self._call(self._backend.get_best_trial, study_id)

    def remove_session(self) -> None:
        with contextlib.suppress(Exception):  # closing a session on a dead connection
            self._backend.remove_session()

"""Optuna storage: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines)."""

import contextlib
import os
import re
import sqlite3
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from cmi_model.errors import InputError
from study import records

REPORTS_DIR = Path("reports")


def default_url(study_name: str) -> str:
    return f"sqlite:///{REPORTS_DIR / study_name}.db"


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
        storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(trial_id))


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial again like a lost worker's (same parameters, same retry limit)."""
    callback = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if callback is not None:
        callback(study, trial)


_OPTUNA_TABLES = {*models.BaseModel.metadata.tables, "alembic_version"}


def _check_sqlite_file(path: Path, must_exist: bool) -> None:
    """Refuse, before SQLAlchemy creates Optuna's tables in it, a file that is not an Optuna
    database: a command that reads a run must never turn a wrong file into one."""
    if not path.exists():
        if must_exist:
            raise InputError(f"--storage: no SQLite database at {path}")
        return
    if not path.is_file():
        raise InputError(f"--storage: {path} is not a file")
    if path.stat().st_size == 0:
        if must_exist:
            raise InputError(f"--storage: {path} is an empty file, not an Optuna database")
        return
    try:
        with open(path, "rb") as f:
            magic = f.read(16)
        if magic != b"SQLite format 3\x00":
            raise InputError(f"--storage: {path} is not a SQLite database")
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=120)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            problems = [r[0] for r in db.execute("PRAGMA quick_check")]
    except (OSError, sqlite3.DatabaseError) as e:
        raise InputError(f"--storage: cannot read {path}: {e}") from None
    if problems != ["ok"]:
        raise InputError(f"--storage: {path} is damaged: {' '.join(problems[0].split())[:200]}")
    # A worker started beside another may look while that one is still creating the tables: a
    # database holding only Optuna's own tables is a storage being made, not a foreign file.
    if not {"studies", "trials", "alembic_version"} <= tables and not tables <= _OPTUNA_TABLES:
        raise InputError(f"--storage: {path} is a SQLite database but not an Optuna storage")
    if not must_exist and not os.access(path, os.W_OK):
        raise InputError(f"--storage: {path} is read-only")


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 2,
    must_exist: bool = False,
) -> RDBStorage:
    """An RDBStorage with heartbeats (so a killed worker's trial is failed and retried).

    must_exist: for commands that only read an earlier run's studies (confirm, report): a
    SQLite file that is not there is an input error, not a new empty database.
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        # Masked: an unparseable URL can still hold a password.
        raise InputError(
            f"--storage: {safe_url(url)!r} is not a SQLAlchemy database URL (e.g. sqlite:///study.db)"
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
                f"--storage {safe_url(url)}: an in-memory SQLite database vanishes with this process and "
                "no other worker can see it; give a file, e.g. sqlite:///reports/study.db"
            )
        if parsed.database:
            _check_sqlite_file(Path(parsed.database), must_exist)
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Parallel workers on one SQLite file wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    heartbeat = {}
    if heartbeat_interval:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": _RetryStale(max_retry=max_retry),
        }
    for attempt in range(SCHEMA_RACE_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ModuleNotFoundError) as e:
            if attempt + 1 < SCHEMA_RACE_ATTEMPTS and _lost_schema_race(e):
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise InputError(f"--storage {safe_url(url)}: cannot open the storage: {reason}") from None
        except RuntimeError as e:  # Optuna's "no longer compatible with the table schema (set up by ...)"
            if "compatible with the table schema" not in str(e):
                raise
            raise InputError(f"--storage {safe_url(url)}: {' '.join(str(e).split())}") from None
    raise AssertionError("unreachable")


SCHEMA_RACE_ATTEMPTS = 5


def _lost_schema_race(e: Exception) -> bool:
    """Workers started together on a new database race to create its tables and version row
    (e.g. "UNIQUE constraint failed: alembic_version.version_num"); the loser finds them made
    on a second look."""
    return isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)

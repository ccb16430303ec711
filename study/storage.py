"""Optuna storage: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines)."""

import re
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from cmi_model.errors import InputError

REPORTS_DIR = Path("reports")


def default_url(study_name: str) -> str:
    return f"sqlite:///{REPORTS_DIR / study_name}.db"


# The one place passwords are masked: the driver (printed URLs, the stored command line)
# and the report (study.report imports these) share it.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s@]*@")


def redact(text: str) -> str:
    """Hide passwords of any ``scheme://user:password@host`` URL inside a string (e.g. a command line)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def safe_url(url: str) -> str:
    """The URL with any password masked: the only form that is printed or stored."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError):
        return redact(url)  # unparseable, but may still carry a password


class _RetryStale(RetryHeartbeatStaleTrialCallback):
    """Re-queue a dead worker's trial with the same parameters but none of its partial results."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.user_attrs = {}
        super().__call__(study, trial)


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
        if parsed.database and parsed.database != ":memory:":
            if must_exist and not Path(parsed.database).is_file():
                # Opening it would create an empty database as a side effect of a mistyped path.
                raise InputError(f"--storage {safe_url(url)}: no SQLite database at {parsed.database}")
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
    raise AssertionError("unreachable")


SCHEMA_RACE_ATTEMPTS = 5


def _lost_schema_race(e: Exception) -> bool:
    """Workers started together on a new database race to create its tables and version row
    (e.g. "UNIQUE constraint failed: alembic_version.version_num"); the loser finds them made
    on a second look."""
    return isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)

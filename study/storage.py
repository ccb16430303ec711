"""Optuna storage: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines)."""

from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from cmi_model.errors import InputError

REPORTS_DIR = Path("reports")


def default_url(study_name: str) -> str:
    return f"sqlite:///{REPORTS_DIR / study_name}.db"


def safe_url(url: str) -> str:
    """The URL with any password masked: the only form that is printed or stored."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return "<unparseable storage URL>"


class _RetryStale(RetryHeartbeatStaleTrialCallback):
    """Re-queue a dead worker's trial with the same parameters but none of its partial results."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.user_attrs = {}
        super().__call__(study, trial)


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None, max_retry: int = 2
) -> RDBStorage:
    """An RDBStorage with heartbeats (so a killed worker's trial is failed and retried)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise InputError(
            f"--storage: {url!r} is not a SQLAlchemy database URL (e.g. sqlite:///study.db)"
        ) from None
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
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
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ModuleNotFoundError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise InputError(f"--storage {safe_url(url)}: cannot open the storage: {reason}") from None

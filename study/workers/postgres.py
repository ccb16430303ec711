"""PostgreSQL as the storage of many workers: a small, stated number of connections per worker,
one line when the server has no connection left, and one schema for workers started together."""

import contextlib
import os
import sys
import zlib

import sqlalchemy

from study.workers.causes import causes

# Connections one worker holds. Optuna's storage is used from two threads of a worker, its own
# and the heartbeat thread (a scoped session each, holding a connection only during a call), so
# two pooled connections serve it without ever opening a new one between calls (a reconnect costs
# a TCP and often a TLS handshake, more than the call). No overflow: the bound is hard, so W
# workers hold at most 2·W connections, and 48 workers fit under PostgreSQL's default
# max_connections = 100 (minus superuser_reserved_connections = 3). A third caller would wait
# POOL_TIMEOUT for one of the two, not open more. Opening the storage takes one more connection
# for a moment, for the schema lock (schema_lock): workers take it one at a time, so W workers
# hold at most 2·W + 1 connections.
POOL_SIZE = 2
MAX_OVERFLOW = 0
# Seconds a third caller waits: a heartbeat or a storage call is milliseconds, so only a hung
# server makes anyone wait this long.
POOL_TIMEOUT = 120
PER_WORKER = POOL_SIZE + MAX_OVERFLOW

# What the server says when it has no connection left for us: max_connections reached ("sorry,
# too many clients already"), only superuser slots left ("remaining connection slots are
# reserved ..."), a database's or role's CONNECTION LIMIT ("too many connections for database
# ..."). libpq reports them before a session exists, so there is no SQLSTATE (53300) to read.
_FULL = ("too many clients", "too many connections", "remaining connection slots are reserved")

# The advisory lock that makes schema creation one worker's job at a time (any constant: it names
# the lock inside this database; crc32 of a readable name so that it is recognisable in pg_locks).
SCHEMA_LOCK = zlib.crc32(b"cmi-study: optuna schema")


def engine_kwargs(query: dict) -> dict:
    """SQLAlchemy engine arguments for a PostgreSQL storage (query: the URL's own parameters,
    which win over these)."""
    connect_args = {}
    if "connect_timeout" not in query:
        # libpq waits forever for an unreachable host: a retry must come back (retrying.RetryingStorage).
        connect_args["connect_timeout"] = 10
    if "application_name" not in query:
        # pg_stat_activity then says which connections are whose (benchmarks/bench_scale.py counts them).
        command = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "worker"
        connect_args["application_name"] = f"cmi-study {command} {os.getpid()}"
    return {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_timeout": POOL_TIMEOUT,
        # A pooled connection the server dropped (restart, failover) is replaced before use.
        "pool_pre_ping": True,
        "connect_args": connect_args,
    }


def full_line(url: str, said: str) -> str:
    """What a worker says when the server refused it for want of connections."""
    return (
        f"the PostgreSQL server of {url} has no connection left ({said}); each worker holds at most "
        f"{PER_WORKER}: run fewer workers, raise the server's max_connections (or the database's or "
        "role's CONNECTION LIMIT), or put a pooler such as PgBouncer in front of it"
    )


def server_full(e: BaseException) -> str | None:
    """The server's own words if e (or what caused it) is a refusal for want of connections."""
    for cause in causes(e):
        text = str(getattr(cause, "orig", None) or cause)
        if any(phrase in text for phrase in _FULL):
            line = next(ln for ln in text.splitlines() if any(p in ln for p in _FULL))
            return line.split("FATAL:", 1)[-1].strip()
    return None


@contextlib.contextmanager
def schema_lock(url: str, query: dict):
    """Hold the schema lock while Optuna creates (or checks) its tables: workers started at the
    same instant on a new database would otherwise all create them, and all but one fail on
    the server's catalog ("duplicate key value violates unique constraint pg_type_...")."""
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args=engine_kwargs(query)["connect_args"]
    )
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            try:
                yield
            finally:
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # a lost connection frees it too
                    connection.execute(
                        sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK}
                    )
    finally:
        engine.dispose()

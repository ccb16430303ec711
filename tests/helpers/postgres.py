"""Throw-away PostgreSQL databases on the test server (its role may CREATEDB: .ci/run grants it)."""

from __future__ import annotations

import contextlib
import uuid

import sqlalchemy


def _admin(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(
        sqlalchemy.engine.make_url(url).set(drivername="postgresql+psycopg2"),
        isolation_level="AUTOCOMMIT",  # CREATE and DROP DATABASE run outside a transaction
        poolclass=sqlalchemy.pool.NullPool,
    )


@contextlib.contextmanager
def scratch_database(url: str, connection_limit: int = -1):
    """A new, empty database beside url's (CONNECTION LIMIT connection_limit; -1: none); yields
    its URL and drops it afterwards, whoever is still connected."""
    name = f"cmi_scratch_{uuid.uuid4().hex[:10]}"
    admin = _admin(url)
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name} CONNECTION LIMIT {connection_limit}")
    try:
        yield sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def connections_by_worker(url: str) -> dict[str, tuple[int, int]]:
    """The open connections to url's database of each cmi-study process (its application_name,
    which study.workers.postgres sets to the command and pid): (all of them, those of its storage's pool,
    i.e. not the schema lock's, whose last query took the lock)."""
    engine = sqlalchemy.create_engine(
        sqlalchemy.engine.make_url(url).set(drivername="postgresql+psycopg2"),
        poolclass=sqlalchemy.pool.NullPool,
        connect_args={"application_name": "cmi-test-observer"},
    )
    query = sqlalchemy.text(
        "SELECT application_name, count(*), count(*) FILTER (WHERE query NOT LIKE '%pg_advisory%') "
        "FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'cmi-study %' "
        "GROUP BY application_name"
    )
    try:
        with engine.connect() as c:
            return {app: (n, pooled) for app, n, pooled in c.execute(query).all()}
    finally:
        engine.dispose()

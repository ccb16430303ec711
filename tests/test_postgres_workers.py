"""Many workers on one PostgreSQL server: few connections each, one line when the server has
none left, one schema for workers started together, separately started workers that share a budget
without drawing the same trials, and a password that never shows in output, records or report."""

import json
import shlex
import threading
import time
import uuid

import optuna
import psycopg2
import pytest
import sqlalchemy
from helpers import race
from helpers.postgres import connections_by_worker, scratch_database
from helpers.workers import check_exact_totals, command_lines, finish, load, start_worker, worker_argv

from study import records
from study.cli import main
from study.workers import postgres
from study.workers.storage import close, open_storage
from study.workers.urls import safe_url


class Watch(threading.Thread):
    """While workers run: the most pooled connections any one of them held, the most
    connections of all of them together, and any of their command lines showing the password."""

    def __init__(self, url: str, password: str, procs: list):
        super().__init__(daemon=True)
        self.url, self.password, self.roots = url, password, [p.pid for p in procs]
        self.per_worker, self.total, self.leaked = 0, 0, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            held = connections_by_worker(self.url).values()
            self.per_worker = max([self.per_worker, *(pooled for _, pooled in held)])
            self.total = max(self.total, sum(n for n, _ in held))
            self.leaked += [c for c in command_lines(self.roots) if self.password in c]
            self.stop.wait(0.1)


@pytest.mark.slow
def test_separate_workers_hold_two_connections_each_and_draw_different_trials(postgres_url, tmp_path):
    """Four `run` processes started alone, as on four machines, with the URL in CMI_STORAGE."""
    password = sqlalchemy.engine.make_url(postgres_url).password
    with scratch_database(postgres_url) as url:
        env = {"CMI_STORAGE": url}
        argv = [a for a in worker_argv(url, "sep") if a not in ("--storage", url)]
        procs = [start_worker(argv, tmp_path, "--n-trials", "5", env=env) for _ in range(4)]
        watch = Watch(url, password, procs)
        watch.start()
        results = [finish(p) for p in procs]
        watch.stop.set()
        watch.join()
        for code, out, err in results:
            assert code == 0, err.replace(password, "***")
            assert password not in out + err
        check_exact_totals(url, "sep", 5)
        # Two pooled connections each; one worker at a time (the one opening the storage under
        # the schema lock) holds the lock's connection beside them.
        assert 1 <= watch.per_worker <= postgres.PER_WORKER == 2
        assert watch.total <= 4 * postgres.PER_WORKER + 1
        assert watch.leaked == []


def test_a_server_without_connections_left_says_so_in_one_line(postgres_url, tmp_path):
    with scratch_database(postgres_url, connection_limit=1) as url:
        holder = psycopg2.connect(sqlalchemy.engine.make_url(url).render_as_string(hide_password=False))
        try:
            code, out, err = finish(start_worker(worker_argv(url, "full"), tmp_path, "--n-trials", "1"))
        finally:
            holder.close()
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cmi-study run: error: the PostgreSQL server of postgresql")
    assert "too many connections for database" in lines[0]
    for advice in ("fewer workers", "max_connections", "PgBouncer", "at most 2"):
        assert advice in lines[0]
    assert sqlalchemy.engine.make_url(postgres_url).password not in err


def test_workers_opening_a_new_database_together_create_one_schema(postgres_url):
    """Without the schema lock, PostgreSQL fails all but one of them on its catalog
    (duplicate key in pg_type) and they rely on retries."""
    attempts = []
    real = postgres.schema_lock

    def counted(*args):
        attempts.append(time.monotonic())
        return real(*args)

    for _ in range(2):
        with scratch_database(postgres_url) as url, pytest.MonkeyPatch.context() as mp:
            mp.setattr(postgres, "schema_lock", counted)
            attempts.clear()
            assert race(lambda url=url: close(open_storage(url)), n=8) == []
            assert len(attempts) == 8  # each opened at its first attempt: no race lost and retried
            engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
            with engine.connect() as c:
                assert c.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
            engine.dispose()


def test_a_worker_holds_no_more_than_its_pool(postgres_url):
    """A third caller waits for one of the two pooled connections instead of opening a third."""
    storage = open_storage(postgres_url)
    try:
        engine = storage._rdb.engine
        assert (engine.pool.size(), engine.pool._max_overflow) == (2, 0)
        first, second = engine.connect(), engine.connect()
        engine.pool._timeout = 0.5
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        first.close()
        second.close()
    finally:
        close(storage)


@pytest.mark.slow
def test_two_workers_on_postgresql_never_show_the_password(postgres_url, tmp_path, capsys):
    password = sqlalchemy.engine.make_url(postgres_url).password
    assert password, "the test URL should carry a password"
    masked = safe_url(postgres_url)
    assert password not in masked and "***" in masked
    name = f"pg-{uuid.uuid4().hex[:8]}"
    procs = [start_worker(worker_argv(postgres_url, name), tmp_path, "--n-trials", "3") for _ in range(2)]
    results = [finish(p) for p in procs]
    pg = open_storage(postgres_url)
    try:
        for code, out, err in results:
            assert code == 0, err.replace(password, "***")
            assert password not in out and password not in err
            assert f"storage {masked}" in out  # the storage line, masked
        check_exact_totals(pg, name, 3)
        report_argv = ["report", "--storage", postgres_url, "--study-name", name]
        assert main([*report_argv, "--out", str(tmp_path / "r.html")]) == 0
        captured = capsys.readouterr()
        assert password not in captured.out + captured.err
        assert password not in (tmp_path / "r.html").read_text()
        for study_name in optuna.get_all_study_names(pg):
            if not study_name.startswith(f"{name}-"):
                continue
            study = load(pg, study_name)
            assert password not in json.dumps(study.user_attrs, default=str)
            for t in study.trials:
                assert password not in json.dumps([t.user_attrs, t.system_attrs], default=str)
        for arm in ("fixed", "uncertainty"):
            # Masked, and quoted so that the stored command can be pasted into a shell.
            assert (
                f"--storage {shlex.quote(masked)}"
                in records.read_arm_study(load(pg, f"{name}-{arm}")).command
            )
    finally:
        for study_name in optuna.get_all_study_names(pg):
            if study_name.startswith(f"{name}-"):
                optuna.delete_study(study_name=study_name, storage=pg)

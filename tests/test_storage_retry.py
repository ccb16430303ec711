"""study.workers.retrying.RetryingStorage without a server: a backend whose calls lose their connection
(the way psycopg2 and RDBStorage report it) a given number of times, or for good."""

from __future__ import annotations

import collections
import itertools
import threading

import optuna
import psycopg2
import pytest
import sqlalchemy
from optuna.trial import TrialState

from study import records
from study.cli import main
from study.workers import retrying as storage_mod
from study.workers.retrying import RetryingStorage, StorageLost, connection_lost

pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning"
)
URL = "postgresql+psycopg2://bob:s3cret-pw@db.example:5432/optuna"


def lost_connection() -> Exception:
    """A dropped connection as RDBStorage raises it: StorageInternalError from SQLAlchemy's
    OperationalError from psycopg2's (libpq's own error: no SQLSTATE)."""
    orig = psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means ...")
    cause = sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from cause
    except optuna.exceptions.StorageInternalError as e:
        return e


class Flaky:
    """The wrapped backend; plan[name] says, call by call, what `name` does: "fail" (raise a lost
    connection), "lost_ack" (do it, then raise as if the answer was lost), "twice" (create the
    trial twice, as RDBStorage's own retry does after a lost answer), "ok" (afterwards: "ok")."""

    def __init__(self, backend, plan: dict):
        self.backend = backend
        self.plan = {name: iter(steps) for name, steps in plan.items()}
        self.calls: collections.Counter = collections.Counter()

    def __getattr__(self, name: str):
        real = getattr(self.backend, name)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            self.calls[name] += 1
            step = next(self.plan.get(name, iter(())), "ok")
            if step == "fail":
                raise lost_connection()
            if step == "twice":
                real(*args, **kwargs)
            result = real(*args, **kwargs)
            if step == "lost_ack":
                raise lost_connection()
            return result

        return call


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(storage_mod, "RETRY_PATIENCE", 0.5)
    monkeypatch.setattr(storage_mod, "RETRY_FIRST_DELAY", 0.01)
    monkeypatch.setattr(storage_mod, "RETRY_MAX_DELAY", 0.05)


def retrying(tmp_path, plan: dict) -> tuple[RetryingStorage, Flaky]:
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat_interval=1, grace_period=2)
    storage = RetryingStorage(rdb)
    storage.url = URL  # as if on a server: the message must mask its password
    storage._backend = flaky = Flaky(storage._backend, plan)
    return storage, flaky


def test_a_call_that_loses_its_connection_a_few_times_succeeds(tmp_path, fast_retries):
    storage, flaky = retrying(tmp_path, {"set_trial_user_attr": ["fail"] * 3, "get_all_trials": ["fail"]})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr("k", 1)
    assert flaky.calls["set_trial_user_attr"] == 4
    assert study.trials[0].user_attrs == {"k": 1}


def test_a_storage_down_for_good_is_given_up_after_the_patience_in_one_line(
    tmp_path, fast_retries, monkeypatch, capsys
):
    storage, flaky = retrying(tmp_path, {"set_trial_user_attr": itertools.repeat("fail")})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(StorageLost) as lost:
        trial.set_user_attr("k", 1)
    message = str(lost.value)
    assert message.startswith(
        "the storage postgresql+psycopg2://bob:***@db.example:5432/optuna stopped answering"
    )
    assert message.endswith(": server closed the connection unexpectedly")
    assert "s3cret" not in message
    assert 4 <= flaky.calls["set_trial_user_attr"] <= 60  # backed off, not hammered
    # Lost for this process: every later call (the heartbeat thread's included) gives up at once.
    calls = sum(flaky.calls.values())
    with pytest.raises(StorageLost):
        study.trials  # noqa: B018
    storage.record_heartbeat(trial._trial_id)  # swallowed there: no thread traceback
    assert sum(flaky.calls.values()) == calls

    def run(args):
        trial.set_user_attr("k", 2)

    monkeypatch.setitem(main.__globals__["COMMANDS"], "report", run)
    assert main(["report"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"cmi-study report: error: {message}"]


def test_a_retry_waiting_in_another_thread_gives_up_with_it(tmp_path, fast_retries, monkeypatch):
    monkeypatch.setattr(storage_mod, "RETRY_MAX_DELAY", 10.0)  # without the wake-up, a long sleep
    storage, _ = retrying(tmp_path, {"record_heartbeat": itertools.repeat("fail")})
    study = optuna.create_study(storage=storage, study_name="s")
    trial_id = study.ask()._trial_id
    beat = threading.Thread(target=storage.record_heartbeat, args=(trial_id,))
    beat.start()
    storage._lost_error = StorageLost(URL, 60, "down")
    storage._lost.set()
    beat.join(timeout=2)
    assert not beat.is_alive()


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg2.IntegrityError("duplicate key")),
        sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked")),  # SQLite's
        ValueError("bad input"),
    ],
)
def test_other_errors_are_not_retried(tmp_path, fast_retries, error):
    storage, flaky = retrying(tmp_path, {})
    study = optuna.create_study(storage=storage, study_name="s")
    calls = []

    def broken(*args):
        calls.append(args)
        raise error

    flaky.backend.set_trial_user_attr = broken
    with pytest.raises(type(error)):
        study.ask().set_user_attr("k", 1)
    assert len(calls) == 1


def test_connection_lost_reads_the_sqlstate():
    for code, lost in [(None, True), ("08006", True), ("57P01", True), ("57P03", True), ("40P01", False)]:
        # psycopg2's pgcode is read-only: a subclass carries the code under test
        orig = type("PgError", (psycopg2.OperationalError,), {"pgcode": code})("msg")
        assert connection_lost(sqlalchemy.exc.OperationalError("SELECT", {}, orig)) is lost, code
    invalidated = sqlalchemy.exc.OperationalError("SELECT", {}, Exception("x"), connection_invalidated=True)
    assert connection_lost(invalidated)
    assert connection_lost(sqlalchemy.exc.DisconnectionError("gone"))
    assert not connection_lost(optuna.exceptions.UpdateFinishedTrialError("finished"))


def test_a_trial_created_before_its_answer_was_lost_is_not_created_twice(tmp_path, fast_retries):
    storage, flaky = retrying(tmp_path, {"create_new_trial": ["lost_ack"]})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    assert flaky.calls["create_new_trial"] == 1  # the retry found it by its token
    assert [(t.number, t.state) for t in study.trials] == [(trial.number, TrialState.RUNNING)]


def test_a_trial_rdbstorage_created_twice_is_failed_as_a_duplicate(tmp_path, fast_retries):
    storage, _ = retrying(tmp_path, {"create_new_trial": ["twice"]})
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 1.0})  # a queued trial must not be queued twice
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert records.is_budget_skip(trials[0])  # a designed step-aside, not the arm failing
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_trial_finished_before_its_answer_was_lost_is_finished_once(tmp_path, fast_retries):
    storage, flaky = retrying(tmp_path, {"set_trial_state_values": ["lost_ack"]})
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)  # no UpdateFinishedTrialError
    assert flaky.calls["set_trial_state_values"] == 1
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_a_queued_trial_taken_before_its_answer_was_lost_gets_a_heartbeat(tmp_path, fast_retries):
    """Ours or another worker's: Optuna takes another trial, and if it was ours, the heartbeat
    makes it stale after the grace period (failed and re-queued), not RUNNING for ever."""
    storage, flaky = retrying(tmp_path, {"set_trial_state_values": ["lost_ack"]})
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 1.0})
    waiting = study.trials[0]._trial_id
    assert storage.set_trial_state_values(waiting, TrialState.RUNNING) is False
    assert flaky.calls["record_heartbeat"] == 1
    assert study.trials[0].state == TrialState.RUNNING


def commits(storage: RetryingStorage) -> list[int]:
    """A list that grows by one at every commit on the storage's engine."""
    seen: list[int] = []
    sqlalchemy.event.listen(storage._rdb.engine, "commit", lambda conn: seen.append(1))
    return seen


def test_a_record_is_one_transaction_retried_whole_after_a_lost_connection(tmp_path, fast_retries):
    storage, _ = retrying(tmp_path, {})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    write_one = storage._rdb._set_trial_attr_without_commit
    plan = iter(["ok", "fail"])  # the second attribute's write loses the connection, once

    def flaky_write(*args):
        if next(plan, "ok") == "fail":
            raise lost_connection()
        write_one(*args)

    storage._rdb._set_trial_attr_without_commit = flaky_write
    seen = commits(storage)
    folds = [records.FoldRecord(score=0.5, epochs=3), records.FoldRecord(score=0.7, epochs=4)]
    records.write(trial, folds=folds, device="cpu", threads=2)
    assert len(seen) == 1  # ~20 attributes, one commit: the first attempt's first write was rolled back
    stored = records.read_trial(study.trials[0])
    assert (stored.scores, stored.fold_values("epochs"), stored.device) == ([0.5, 0.7], [3, 4], "cpu")
    assert trial.user_attrs.keys() == study.trials[0].user_attrs.keys()  # the running trial's own copy
    assert records.read_trial(trial).scores == [0.5, 0.7]


def test_a_record_whose_writing_raises_leaves_nothing_and_other_threads_write_at_once(tmp_path):
    storage, _ = retrying(tmp_path, {})
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(RuntimeError), storage.one_transaction():
        trial.set_user_attr("a", 1)
        with storage.one_transaction():  # nested: written by the outer one, or not at all
            trial.set_user_attr("b", 2)
        other = threading.Thread(target=storage.set_trial_user_attr, args=(trial._trial_id, "beat", 3))
        other.start()
        other.join()  # the heartbeat thread's calls are not held for this thread's transaction
        assert study.trials[0].user_attrs == {"beat": 3}
        raise RuntimeError("the record could not be made")
    assert study.trials[0].user_attrs == {"beat": 3}

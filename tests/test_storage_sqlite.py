"""One SQLite file shared by workers on one machine: what Optuna's RDBStorage alone gets wrong there."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import optuna
import pytest
from helpers import sqlite_url
from helpers.workers import finish, load, long_trial_options, start_worker, wait_for_running, worker_argv

from study.workers.storage import open_storage


def test_workers_that_start_at_once_never_take_the_same_queued_trial(tmp_path):
    # Each round: three queued trials, three workers (own storage, own connection) asking at
    # once. Without BEGIN IMMEDIATE two of them read the same WAITING trial in about one round
    # in five, and both trained it (study.workers.storage._take_the_write_lock_first).
    url, workers, rounds = sqlite_url(tmp_path / "queue.db"), 3, 10
    optuna.create_study(study_name="q", storage=open_storage(url))
    studies = [optuna.load_study(study_name="q", storage=open_storage(url)) for _ in range(workers)]
    for _ in range(rounds):
        for _ in range(workers):
            studies[0].enqueue_trial({"x": 1.0})
        queued = [t.number for t in studies[0].get_trials(states=(optuna.trial.TrialState.WAITING,))]
        barrier, taken = threading.Barrier(workers), []
        threads = [threading.Thread(target=_ask, args=(s, barrier, taken)) for s in studies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(taken) == queued, f"queued {queued}, taken {sorted(taken)}"
        for number in taken:
            studies[0].tell(number, 0.0)


def _ask(study: optuna.Study, barrier: threading.Barrier, taken: list[int]) -> None:
    barrier.wait()  # released together, as workers started at once would be
    taken.append(study.ask().number)


@pytest.mark.parametrize(
    "when", ["before its next write", "after its last write", "just before Optuna's tell"]
)
def test_a_paused_worker_whose_trial_was_failed_elsewhere_steps_aside(tmp_path, monkeypatch, when):
    """Another worker failed (and re-queued) this worker's trial while it was paused past the grace
    period: on resuming it neither crashes (`Cannot tell a FAIL trial`) nor writes into that trial."""
    import optuna
    from optuna.trial import TrialState

    from study import records, runner
    from study.runner import run_one

    if when == "just before Optuna's tell":  # paused after the runner's last look at the trial
        monkeypatch.setattr(runner, "_finished_elsewhere", lambda trial: False)

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", study_name="p")

    def paused(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        # what the other worker's heartbeat check does to a stale trial
        trial.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if when == "before its next write":
            records.write(trial, fail_reason="this must not be written")
        return 0.5

    t = run_one(study, paused)
    assert t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs
    assert run_one(study, lambda trial: trial.suggest_float("x", 0, 1)).state == TrialState.COMPLETE


def _delete(db: Path) -> None:
    db.unlink()


def _replace(db: Path) -> None:
    other = db.with_name("other.db")
    shutil.copyfile(db, other)
    os.replace(other, db)  # a copy moved over it: a new file of the same name and content


def _truncate(db: Path) -> None:
    os.truncate(db, 0)


def _delete_folder(db: Path) -> None:
    shutil.rmtree(db.parent)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_delete, _replace, _truncate, _delete_folder])
def test_a_database_file_damaged_under_a_run_stops_it_with_one_line(tmp_path, damage):
    """SQLite goes on writing into an open file that was deleted or replaced: the run ended with exit
    0 and its results nowhere. Now it stops at its next write: exit 2, one line naming the storage."""
    work = tmp_path / "work"
    work.mkdir()
    db = work / "d.db"
    url = sqlite_url(db)
    proc = start_worker(
        [*worker_argv(url, "d"), "--arms", "fixed", *long_trial_options(tmp_path), "--n-trials", "4"], work
    )
    wait_for_running(url, "d-fixed", proc)
    damage(db)
    code, _out, err = finish(proc, timeout=120)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines[-1].startswith(f"cmi-study run: error: storage {url}: "), err
    if damage is not _truncate:
        assert lines[-1].endswith(
            "the file was deleted or replaced while in use; nothing more can be written to it"
        )
    assert all(line.startswith("cmi-study run: warning: heartbeats stopped: ") for line in lines[:-1]), err
    assert damage is not _replace or len(load(url, "d-fixed").trials) == 1  # the copy untouched since


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_found_lost(tmp_path):
    """Optuna's stale check skips a RUNNING trial without a heartbeat: one whose worker died between
    taking it and its first heartbeat stayed RUNNING forever and held its share of the budget. Seen
    without one for the grace period (by this process's clock), it is failed and queued again; each
    study keeps its own watch."""
    from optuna.trial import TrialState

    from study import records
    from study.workers.storage import fail_lost_trials

    storage = open_storage(sqlite_url(tmp_path / "h.db"), heartbeat_interval=1, grace_period=1)
    studies = [optuna.create_study(storage=storage, study_name=name) for name in ("a", "b")]
    stranded = [study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for study in studies]
    for study in studies:  # first seen: not yet lost
        fail_lost_trials(study, grace_period=1)
        assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]
    time.sleep(1.2)
    for study, trial in zip(studies, stranded, strict=True):
        fail_lost_trials(study, grace_period=1)
        first, queued = study.get_trials()
        assert first.state == TrialState.FAIL
        assert records.read_trial(first).fail_reason == "worker lost: no heartbeat for 1 s"
        assert queued.state == TrialState.WAITING and queued.params == {"x": trial.params["x"]}

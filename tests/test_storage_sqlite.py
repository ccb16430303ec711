"""One SQLite file shared by workers on one machine: what Optuna's RDBStorage alone gets wrong there."""

from __future__ import annotations

import threading

import optuna
from helpers import sqlite_url

from study.storage import open_storage


def test_workers_that_start_at_once_never_take_the_same_queued_trial(tmp_path):
    # Each round: three queued trials, three workers (own storage, own connection) asking at
    # once. Without BEGIN IMMEDIATE two of them read the same WAITING trial in about one round
    # in five, and both trained it (study.storage._take_the_write_lock_first).
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

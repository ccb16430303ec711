"""One SQLite file shared by workers on one machine: what Optuna's RDBStorage alone gets wrong there."""

from __future__ import annotations

import threading

import optuna
import pytest
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


@pytest.mark.parametrize("when", ["before its next write", "after its last write"])
def test_a_paused_worker_whose_trial_was_failed_elsewhere_steps_aside(tmp_path, when):
    """Another worker failed (and re-queued) this worker's trial while it was paused past the grace
    period: on resuming it neither crashes (`Cannot tell a FAIL trial`) nor writes into that trial."""
    import optuna
    from optuna.trial import TrialState

    from study import records
    from study.runner import run_one

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

"""`confirm`: pairs of each arm's current best trial, re-trained when the best moves, refused while
the search is unfinished (unless forced), and a killed worker's pair done once."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import sqlite_url
from helpers.dashboard import Dashboard
from helpers.workers import (
    confirm_pairs,
    finish,
    load,
    start_long_worker,
    start_worker,
    wait_for_running,
)
from optuna.trial import TrialState

from study import records
from study.cli import main
from study.workers.trial_notes import fail_note

SHARED = ("lr", "weight_decay", "dropout")


@pytest.mark.slow
def test_killed_confirm_worker_pair_is_retried_and_every_pair_done_once(tmp_path):
    url = sqlite_url(tmp_path / "kc.db")
    proc, _victim, extra = start_long_worker(tmp_path, url, "kc")
    assert finish(proc)[0] == 0  # the search, with fast heartbeats and trials of a few seconds
    confirm_argv = [sys.executable, "-m", "study", "confirm", "--storage", url, "--study-name", "kc"]
    worker = start_worker(confirm_argv, tmp_path, "--seeds", "2")
    victim = wait_for_running(url, "kc-confirm", worker)
    time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=60)
    assert main(["confirm", "--storage", url, "--study-name", "kc", "--seeds", "2"]) == 0
    trials = load(url, "kc-confirm").trials
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert records.read_trial(killed).fail_reason == "worker lost: no heartbeat for 3 s"
    done = [(records.read_trial(t).arm, t.params["seed"]) for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(done) == [("fixed", 1), ("fixed", 2)]  # each pair exactly once, the killed one retried
    seed = killed.system_attrs["fixed_params"][
        "seed"
    ]  # queued with its pair, whether or not it got to suggest it
    assert (killed.user_attrs["arm"], seed) in done
    # The retried pair kept what it was queued with: the source trial and its parameters.
    best = load(url, "kc-fixed").best_trial
    for t in trials:
        if t.state == TrialState.COMPLETE:
            r = records.read_trial(t)
            assert (r.source_trial, r.params) == (best.number, best.params)
            assert t.user_attrs["source_trial"] == best.number


def _one_trial_run(tmp_path: Path, arms: str = "fixed,uncertainty") -> tuple[str, list[str]]:
    url = sqlite_url(tmp_path / "s.db")
    common = ["--storage", url, "--study-name", "s"]
    assert main(["run", "--preset", "tiny", "--arms", arms, "--n-trials", "1", *common]) == 0
    return url, common


def _add_better_trial(url: str, study_name: str) -> int:
    """A complete trial that beats every earlier one (real scores are at most 1): the arm's new best."""
    study = load(url, study_name)
    best = records.best_trial(study.trials)
    # Another lr inside its range (a joining run draws with its own seed: any lr may be the best).
    lr = best.distributions["lr"]
    params = best.params | {"lr": lr.low if best.params["lr"] > (lr.low * lr.high) ** 0.5 else lr.high}
    value = max(1.0, best.value) + 1
    study.add_trial(optuna.trial.create_trial(value=value, params=params, distributions=best.distributions))
    number = records.best_trial(load(url, study_name).trials).number
    assert number == len(study.trials) - 1 != best.number
    return number


def test_confirm_retrains_when_the_best_moves_and_keeps_the_old_pairs(tmp_path, capsys):
    """run; confirm; run more; confirm: the second confirm trains the new best (if it moved) and
    says nothing to do otherwise; superseded pairs stay as history; a queued pair whose source
    stopped being the best is failed, never trained."""
    from study.confirm import prepare_confirm

    url, common = _one_trial_run(tmp_path)
    assert main(["confirm", "--seeds", "1", *common]) == 0
    first = confirm_pairs(url, "s")
    assert sorted(first) == [("fixed", 1, 0), ("uncertainty", 1, 0)]
    # A real second run: whether the best moves depends on the sampled trial.
    assert main(["run", "--preset", "tiny", "--n-trials", "2", *common]) == 0
    bests = {arm: records.best_trial(load(url, f"s-{arm}").trials).number for arm in ("fixed", "uncertainty")}
    capsys.readouterr()
    assert main(["confirm", "--seeds", "1", *common]) == 0
    out = capsys.readouterr().out
    moved = {arm for arm, n in bests.items() if n != 0}
    assert ("nothing to do" in out) == (not moved)
    assert set(confirm_pairs(url, "s")) == set(first) | {(arm, 1, bests[arm]) for arm in moved}
    # Forced to move: the fixed arm's best changes, uncertainty's does not.
    new_best = _add_better_trial(url, "s-fixed")
    bests["fixed"] = new_best
    capsys.readouterr()
    assert main(["confirm", "--seeds", "1", *common]) == 0
    assert "nothing to do" not in capsys.readouterr().out
    pairs = confirm_pairs(url, "s")
    assert ("fixed", 1, new_best) in pairs and first.keys() <= pairs.keys()  # the old pairs are kept
    confirmed = [
        records.read_trial(t) for t in load(url, "s-confirm").get_trials(states=(TrialState.COMPLETE,))
    ]
    current, superseded = records.current_pairs(confirmed, bests)
    assert sorted((r.arm, r.source_trial) for r in current) == [
        ("fixed", new_best),
        ("uncertainty", bests["uncertainty"]),
    ]
    assert {(r.arm, r.seed, r.source_trial) for r in superseded} == set(pairs) - {
        (r.arm, r.seed, r.source_trial) for r in current
    }
    new = next(r for r in current if r.arm == "fixed")
    assert new.params == load(url, "s-fixed").trials[new_best].params and new.forced is False
    capsys.readouterr()
    assert main(["confirm", "--seeds", "1", *common]) == 0
    assert "nothing to do: 2 of 2 confirmation pairs finished" in capsys.readouterr().out
    # A pair queued for a best that moves before any worker takes it is failed as superseded.
    prepare_confirm(url, "s", 2, None, "test")  # queues seed 2 of the current bests
    newer = _add_better_trial(url, "s-fixed")
    assert main(["confirm", "--seeds", "2", *common]) == 0
    trials = load(url, "s-confirm").trials
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 1 and stale[0].user_attrs["fail_reason"].startswith(records.SUPERSEDED)
    assert records.read_trial(stale[0]).folds == []  # never trained
    # The dashboard says why on the pair itself.
    assert Dashboard(url).notes("s-confirm")[stale[0].number] == fail_note(stale[0].user_attrs["fail_reason"])
    assert ("fixed", 2, newer) in confirm_pairs(url, "s") and ("fixed", 2, new_best) not in confirm_pairs(
        url, "s"
    )


def test_confirm_refuses_an_unfinished_search_unless_forced(tmp_path, capsys):
    url, common = _one_trial_run(tmp_path, "fixed")
    db = tmp_path / "s.db"
    study = load(url, "s-fixed")
    running = study.ask()  # a search trial still running
    before = db.read_bytes()
    capsys.readouterr()
    assert main(["confirm", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "arm fixed" in err[0] and "1 of 1 search trials finished, 1 running" in err[0]
    assert "--unfinished" in err[0]
    assert db.read_bytes() == before and "s-confirm" not in optuna.get_all_study_names(url)
    study.tell(running, state=TrialState.FAIL)
    rec = records.read_arm_study(study)
    records.write_study(study, rec.model_copy(update={"n_trials": 3}))  # a budget not reached yet
    before = db.read_bytes()
    assert main(["confirm", *common]) == 2
    assert "arm fixed: 1 of 3 search trials finished, 0 running" in capsys.readouterr().err
    assert db.read_bytes() == before
    assert main(["confirm", "--unfinished", "--seeds", "1", *common]) == 0
    (pair,) = [records.read_trial(t) for t in load(url, "s-confirm").trials]
    assert pair.forced is True and pair.source_trial == 0 and len(pair.scores) == 2
    assert pair.params == load(url, "s-fixed").trials[0].params

"""A PostgreSQL server that goes away while workers train (study.workers.retrying.RetryingStorage):
stopped, then started again, under a real two-worker study. Needs a server this test may stop:
.ci/run sets CMI_TEST_POSTGRES_URL and CMI_TEST_POSTGRES_CLUSTER."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from helpers.workers import wait_for_running
from optuna.trial import TrialState

from study import records
from study.workers.storage import open_storage

pytestmark = pytest.mark.slow
EPOCHS = "8"  # ~0.2 s per epoch and fold: trials of a few seconds, long enough to be caught training
# Heartbeats every 2 s with a 40 s grace: a trial whose worker waits out the outage is not found
# stale (failed and re-run) meanwhile.
OUTAGE_TRIALS = "[study]\nheartbeat_interval = 2\ngrace_period = 40\n\n[train]\npatience = 50\n"
OUTAGE_S = 9


@pytest.fixture
def postgres_cluster():
    """The test server's "VERSION CLUSTER" for pg_ctlcluster; skips without it, fails under CI."""
    cluster = os.environ.get("CMI_TEST_POSTGRES_CLUSTER", "").split()
    if len(cluster) != 2:
        if os.environ.get("CI"):
            pytest.fail("CMI_TEST_POSTGRES_CLUSTER (e.g. '15 main') is unset: .ci/run sets it")
        pytest.skip("CMI_TEST_POSTGRES_CLUSTER unset: no server this test may stop")
    return cluster


def pg_ctl(cluster: list[str], *action: str) -> None:
    subprocess.run(["pg_ctlcluster", *cluster, *action], check=True, capture_output=True, timeout=60)


def _run_command(url: str, name: str, tmp_path: Path, config: str, *options: str) -> tuple[list[str], dict]:
    """(argv, environment) of a quiet `run` of tiny trials of a few seconds under `config`."""
    (tmp_path / "hb.toml").write_text(config)
    argv = [sys.executable, "-m", "study", "run", "--preset", "tiny", "--storage", url, "--study-name", name]
    argv += ["--epochs", EPOCHS, "--config", str(tmp_path / "hb.toml"), *options]
    return argv, os.environ | {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}


def _clean_up(proc: subprocess.Popen, pg, name: str) -> None:
    """The worker gone and the test's studies deleted from the shared server."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    for study_name in optuna.get_all_study_names(pg):
        if study_name.startswith(f"{name}-"):
            optuna.delete_study(study_name=study_name, storage=pg)


def test_two_workers_on_postgresql_survive_a_server_restart(postgres_url, postgres_cluster, tmp_path: Path):
    """The server stops (fast: every connection is cut) while a trial trains and is back 9 s
    later: the workers retry, the study finishes with exit 0, every arm's budget met exactly,
    no trial lost or run twice, no traceback."""
    name = f"pg-out-{uuid.uuid4().hex[:8]}"
    argv, env = _run_command(postgres_url, name, tmp_path, OUTAGE_TRIALS, "--n-trials", "3", "--workers", "2")
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pg = open_storage(postgres_url)
    try:
        victim = wait_for_running(pg, f"{name}-fixed", proc, timeout=180)
        time.sleep(0.5)  # inside the trial's first fold
        try:
            pg_ctl(postgres_cluster, "stop", "-m", "fast")
            time.sleep(OUTAGE_S)
            assert proc.poll() is None, "the run ended during the outage"
        finally:
            pg_ctl(postgres_cluster, "start")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "error" not in err, err
        for arm in ("fixed", "uncertainty"):
            trials = optuna.load_study(study_name=f"{name}-{arm}", storage=pg).trials
            states = [t.state for t in trials]
            counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            assert len(counted) == 3, states  # the budget exactly
            # Nothing failed (no lost trial re-queued, no duplicate stepped aside), none left over.
            assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, [t.user_attrs for t in trials]
            assert len({json.dumps(t.params, sort_keys=True) for t in counted}) == 3  # none run twice
            assert sum("fixed_params" in t.system_attrs for t in trials) == 1  # one baseline
            assert all(records.read_trial(t).scores for t in counted)
        trial = optuna.load_study(study_name=f"{name}-fixed", storage=pg).trials[victim.number]
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)  # the one in flight finished
    finally:
        _clean_up(proc, pg, name)


def test_sigterm_while_the_server_is_down_stops_the_worker_within_seconds(
    postgres_url, postgres_cluster, tmp_path: Path
):
    """A worker that waits for a stopped server (RETRY_PATIENCE, 60 s) still honours SIGTERM within
    seconds: Kubernetes and systemd send SIGKILL 30 s after it. Its trial, unwritable meanwhile, is
    found lost by the next worker and done again."""
    name = f"pg-term-{uuid.uuid4().hex[:8]}"
    trials = OUTAGE_TRIALS.replace("grace_period = 40", "grace_period = 4")
    argv, env = _run_command(postgres_url, name, tmp_path, trials, "--n-trials", "2", "--arms", "fixed")
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pg = open_storage(postgres_url)
    try:
        wait_for_running(pg, f"{name}-fixed", proc, timeout=180)
        try:
            pg_ctl(postgres_cluster, "stop", "-m", "fast")
            time.sleep(3.0)  # its heartbeat has found the server gone and waits for it
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            _out, err = proc.communicate(timeout=120)
            took = time.monotonic() - started
        finally:
            pg_ctl(postgres_cluster, "start")
        assert proc.returncode == 143, err
        assert err.strip().splitlines() == [
            "cmi-study run: stopped by SIGTERM; finished trials are kept in the storage"
        ], err
        assert took < 10, f"stopped {took:.0f} s after SIGTERM"
        subprocess.run(argv, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
        states = [t.state for t in optuna.load_study(study_name=f"{name}-fixed", storage=pg).trials]
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 2, states
        assert TrialState.RUNNING not in states, states
    finally:
        _clean_up(proc, pg, name)

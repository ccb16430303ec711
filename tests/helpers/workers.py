"""Worker processes for the multi-process tests: start, wait for a running trial, finish."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study import records
from study.workers.storage import open_storage

# Trials long enough (several seconds) to be caught mid-training, and heartbeats fast enough
# that a dead worker's trial is found stale within seconds.
LONG_TRIALS = "[study]\nheartbeat_interval = 1\ngrace_period = 3\n\n[train]\npatience = 50\n"
LONG_EPOCHS = "8"  # ~0.2 s per epoch and fold here: trials of a few seconds


def states(study: optuna.Study) -> collections.Counter:
    return collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))


def budget_skips(study: optuna.Study) -> list:
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if records.is_budget_skip(t)
    ]


def real_failures(study: optuna.Study) -> list:
    skipped = {t.number for t in budget_skips(study)}
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number not in skipped]


def check_exact_totals(url, name: str, n_trials: int, arms=("fixed", "uncertainty")) -> None:
    """What workers sharing a budget must leave, however they raced: exactly n_trials finished
    per arm, nothing running, queued or failed for real, one baseline, and no trial drawn twice
    (workers started separately that replayed one sampler seed would draw the same trials)."""
    for arm in arms:
        study = load(url, f"{name}-{arm}")
        counts = states(study)
        # A BudgetTaken trial is a designed step-aside; anything else failing is a bug.
        assert counts["COMPLETE"] + counts["PRUNED"] == n_trials, counts
        assert real_failures(study) == [], [t.user_attrs for t in real_failures(study)]
        assert counts["RUNNING"] == counts["WAITING"] == 0
        # The baseline was queued once, not once per worker.
        baseline = [t for t in study.trials if "fixed_params" in t.system_attrs]
        assert len(baseline) == 1, [t.number for t in baseline]
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        drawn = [json.dumps(t.params, sort_keys=True) for t in finished]
        assert len(set(drawn)) == len(drawn), drawn


def load(url, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def start_worker(
    argv: list[str], cwd: Path, *extra: str, new_session: bool = False, env: dict | None = None
) -> subprocess.Popen:
    """new_session: in a process group of its own (as a terminal starts it), for Ctrl-C to it all."""
    # Quiet workers: no progress bars and no library warnings, so stderr holds only our own lines.
    env = os.environ | {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"} | (env or {})
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen([*argv, *extra], cwd=cwd, env=env, start_new_session=new_session, **pipes)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for_running(url, study_name: str, proc: subprocess.Popen, timeout: float = 120):
    """Poll the storage (a URL or an open storage) until the study has a RUNNING trial; return it."""
    storage = open_storage(url) if isinstance(url, str) else url  # one connection pool for all the polling
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker ended early: {proc.communicate()}"
        try:
            running = load(storage, study_name).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # the study does not exist yet
            running = []
        if running:
            return running[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no trial of {study_name} started running within {timeout}s")


def long_trial_options(tmp_path: Path) -> list[str]:
    """Run options for 2 trials of a few seconds each, with fast heartbeats."""
    (tmp_path / "hb.toml").write_text(LONG_TRIALS)
    return ["--n-trials", "2", "--epochs", LONG_EPOCHS, "--config", str(tmp_path / "hb.toml")]


def worker_argv(url: str, name: str) -> list[str]:
    return [sys.executable, "-m", "study", "run", "--preset", "tiny", "--storage", url, "--study-name", name]


def start_long_worker(tmp_path: Path, url: str, name: str):
    """A worker on arm fixed with trials of a few seconds and fast heartbeats, once a trial runs.

    Returns (process, its RUNNING trial, the extra run options to rerun the same study)."""
    extra = ["--arms", "fixed", *long_trial_options(tmp_path)]
    proc = start_worker(worker_argv(url, name), tmp_path, *extra)
    return proc, wait_for_running(url, f"{name}-fixed", proc), extra


def confirm_pairs(url: str, name: str) -> dict:
    """(arm, seed, source trial) → (fold scores, out-of-fold predictions, per-subject scores)
    of every complete confirmation trial."""
    out = {}
    for t in load(url, f"{name}-confirm").get_trials(states=(TrialState.COMPLETE,)):
        r = records.read_trial(t)
        out[(r.arm, r.seed, r.source_trial)] = (r.scores, r.oof.y_pred, r.fold_values("subject_scores"))
    return out


def command_lines(roots: list[int]) -> list[str]:
    """The command lines, as `ps` shows them, of the processes roots and all their descendants
    (not every process on the machine: another test's workers may hold the password)."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parents[int(stat.rsplit(")", 1)[1].split()[1])].append(int(pid))  # field 4: the parent's pid
    lines, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        try:
            lines.append(
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
    return lines

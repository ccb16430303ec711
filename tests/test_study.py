"""The study driver end to end: real tiny studies on SQLite and PostgreSQL, parallel
workers, a killed worker, Ctrl-C, a diverging trial, confirm, report and the dashboard.

Every run uses `--preset tiny` (4 synthetic subjects, 2 folds, 1 epoch) on the CPU.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import optuna
import pytest
import sqlalchemy
from helpers import race, sqlite_url
from helpers.dashboard import Dashboard
from helpers.workers import (
    check_exact_totals,
    confirm_pairs,
    finish,
    load,
    long_trial_options,
    start_long_worker,
    start_worker,
    states,
    wait_for_running,
    worker_argv,
)
from optuna.trial import TrialState

import cmi_model.module
from cmi_model.folds import SubjectSplit
from study import records
from study.arm_studies import open_arm_study
from study.cli import main
from study.report import analyse, read
from study.settings import build_settings
from study.workers.storage import open_storage

SHARED = ("lr", "weight_decay", "dropout")


# ----------------------------------------------------------------------------- one tiny study


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Both arms, 2 trials each, 2 folds, 1 epoch, in-process through the CLI."""
    folder = tmp_path_factory.mktemp("tiny-run")
    url = sqlite_url(folder / "study.db")
    argv = ["run", "--preset", "tiny", "--storage", url, "--study-name", "t", "--arms", "fixed,uncertainty"]
    argv += ["--n-trials", "2", "--folds", "2", "--epochs", "1"]
    assert main(argv) == 0
    return url, "t", folder


def test_run_writes_both_arm_studies_with_every_attribute(tiny_run):
    url, name, _ = tiny_run
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert {f"{name}-fixed", f"{name}-uncertainty"} <= names
    for arm in ("fixed", "uncertainty"):
        study = load(url, f"{name}-{arm}")
        # 2 folds never let the Wilcoxon pruner prune: both trials complete.
        assert states(study) == {"COMPLETE": 2}
        attrs = records.read_arm_study(study)
        assert attrs.arm == arm
        assert set(SHARED) < set(attrs.search_space)
        assert attrs.n_folds == 2 and attrs.seed == 0
        assert len(attrs.data.fingerprint) >= 8
        assert attrs.data.source == "synthetic" and attrs.data.n_subjects == 6
        assert attrs.versions["optuna"] == optuna.__version__ and "torch" in attrs.versions
        # The command of this run (the argv given to main), not pytest's own command line.
        assert attrs.command.startswith("cmi-study run --preset tiny")
        assert "--study-name t" in attrs.command
        for t in study.trials:
            r = records.read_trial(t)
            # One intermediate value per fold, equal to that fold's score; value = their mean.
            assert sorted(t.intermediate_values) == [0, 1]
            assert [t.intermediate_values[k] for k in (0, 1)] == pytest.approx(r.scores)
            assert t.value == pytest.approx(np.mean(r.scores))
            # Every per-fold field of the storage format is stored for every fold.
            for f in records.FoldRecord.model_fields:
                assert len(t.user_attrs[f"fold_{f}"]) == 2, f
            assert r.fold_values("epochs") == [1, 1]
            assert all(0 <= s <= 1 for s in r.fold_values("binary_f1") + r.fold_values("macro_f1"))
            for fold in r.folds:
                assert set(fold.weights) == set(fold.weight_trajectory) >= {"multiclass", "binary"}
                assert all(len(v) == 1 for v in fold.weight_trajectory.values())  # one value per epoch
                assert fold.seconds > 0
            assert r.device == "cpu"
            # Out-of-fold predictions cover the search pool's sequences: not the held-out ones.
            assert len(r.oof.y_true) == len(r.oof.y_pred)
            assert 0.5 * attrs.data.n_sequences < len(r.oof.y_true) < attrs.data.n_sequences


def test_rerunning_a_complete_study_says_nothing_to_do(tiny_run, tmp_path, capsys):
    _, name, folder = tiny_run
    shutil.copy(folder / "study.db", tmp_path / "study.db")
    url = sqlite_url(tmp_path / "study.db")
    argv = ["run", "--preset", "tiny", "--storage", url, "--study-name", name, "--arms", "fixed,uncertainty"]
    capsys.readouterr()
    assert main([*argv, "--n-trials", "2", "--folds", "2", "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    assert "nothing to do: 2 of 2 trials finished in every arm" in captured.out
    assert "trials:" not in captured.err  # no progress bars
    assert states(load(url, f"{name}-fixed")) == {"COMPLETE": 2}


def test_search_folds_never_touch_held_out_subjects(tiny_run):
    url, name, _ = tiny_run
    fixed, unc = (records.read_arm_study(load(url, f"{name}-{a}")) for a in ("fixed", "uncertainty"))
    # One split for every arm, recorded, disjoint, covering every subject.
    assert (fixed.search_subjects, fixed.holdout_subjects) == (unc.search_subjects, unc.holdout_subjects)
    search, holdout = set(fixed.search_subjects), set(fixed.holdout_subjects)
    assert len(holdout) == 2 and not search & holdout and len(search | holdout) == fixed.data.n_subjects
    for arm in ("fixed", "uncertainty"):
        for t in load(url, f"{name}-{arm}").trials:
            folds = records.read_trial(t).folds
            assert set().union(*(f.val_subjects for f in folds)) == search
            assert all(f.rule == "last_epoch" and f.stop_subjects == [] for f in folds)


def test_first_trial_of_each_arm_is_the_plans_baseline(tiny_run):
    url, name, _ = tiny_run
    fixed = load(url, f"{name}-fixed").trials[0].params
    assert (fixed["alpha"], fixed["nine_class_loss_weight"], fixed["kl_weight"]) == (0.5, 0.2, 0.1)
    unc = load(url, f"{name}-uncertainty").trials[0].params
    assert (unc["uncertainty_init_value"], unc["weight_lr_multiplier"]) == (0.0, 0.1)
    # The shared knobs of the baseline are the configured ones, the same in both arms.
    assert {k: fixed[k] for k in SHARED} == {k: unc[k] for k in SHARED}
    # The second trial was sampled, not another copy of the baseline.
    assert load(url, f"{name}-fixed").trials[1].params != fixed


def test_arms_search_the_same_shared_space_on_the_same_folds(tiny_run):
    url, name, _ = tiny_run
    fixed, unc = load(url, f"{name}-fixed"), load(url, f"{name}-uncertainty")
    for p in SHARED:
        dists = {repr(t.distributions[p]) for s in (fixed, unc) for t in s.trials}
        assert len(dists) == 1, (p, dists)
        assert records.read_arm_study(fixed).search_space[p] == records.read_arm_study(unc).search_space[p]
    assert "alpha" in fixed.trials[0].params and "alpha" not in unc.trials[0].params
    # Same folds: every trial of both arms lists the out-of-fold labels in the same order.
    orders = {tuple(records.read_trial(t).oof.y_true) for s in (fixed, unc) for t in s.trials}
    assert len(orders) == 1
    assert records.read_arm_study(fixed).data == records.read_arm_study(unc).data


def test_confirm_and_report(tiny_run, tmp_path, capsys):
    _, name, folder = tiny_run
    shutil.copy(folder / "study.db", tmp_path / "study.db")  # leave the shared run untouched
    url = sqlite_url(tmp_path / "study.db")
    assert main(["confirm", "--storage", url, "--study-name", name, "--seeds", "1"]) == 0
    confirm = load(url, f"{name}-confirm")
    trials = confirm.get_trials(states=(TrialState.COMPLETE,))
    confirmed = [records.read_trial(t) for t in trials]
    assert sorted(r.arm for r in confirmed) == ["fixed", "uncertainty"]
    for r in confirmed:
        arm_study = load(url, f"{name}-{r.arm}")
        assert r.source_trial == arm_study.best_trial.number
        assert r.params == arm_study.best_trial.params
        assert r.seed == 1  # a fresh split: never the search's seed 0
        assert len(r.scores) == 2
        # Every confirmation fold validates on held-out subjects only, and all of them are used.
        holdout = set(records.read_arm_study(arm_study).holdout_subjects)
        assert all(set(f.val_subjects) <= holdout for f in r.folds)
        assert set().union(*(f.val_subjects for f in r.folds)) == holdout
    # The confirm trials carry their seed as a parameter (optuna-dashboard groups by it) and their arm
    # as an attribute: a categorical over today's arms would refuse the study once an arm is added.
    pairs = sorted((records.read_trial(t).arm, t.params["seed"]) for t in trials)
    assert pairs == [("fixed", 1), ("uncertainty", 1)] and not any("arm" in t.params for t in trials)
    capsys.readouterr()
    assert main(["confirm", "--storage", url, "--study-name", name, "--seeds", "1"]) == 0
    again = capsys.readouterr()
    assert "nothing to do: 2 of 2 confirmation pairs finished" in again.out
    assert "confirm:" not in again.err  # no progress bar for nothing
    assert len(load(url, f"{name}-confirm").trials) == 2
    ratio = records.read_confirm_study(confirm).test_train_ratio
    assert 0 < ratio < 1 / (2 - 1)  # one held-out slice against the pool plus the other slice
    assert len(trials) == len(confirm.trials) == 2
    out = tmp_path / "report.html"
    assert main(["report", "--storage", url, "--study-name", name, "--out", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html") or "<html" in html[:500]
    assert f"{name}-confirm" in html and "uncertainty" in html
    assert str(out.resolve()) in capsys.readouterr().out


def test_dashboard_lists_both_arm_studies(tiny_run):
    import optuna_dashboard

    url, name, _ = tiny_run
    app = optuna_dashboard.wsgi(url)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):  # no access log in the test output
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as r:
            assert r.status == 200
            body = json.load(r)
        studies = {s["study_name"]: s for s in body["study_summaries"]}
        assert {f"{name}-fixed", f"{name}-uncertainty"} <= set(studies)
        fixed = studies[f"{name}-fixed"]
        assert fixed["directions"] == ["maximize"]
        assert {a["key"]: a["value"] for a in fixed["user_attrs"]}["arm"] == "fixed"
        with urllib.request.urlopen(f"{base}/api/studies/{fixed['study_id']}", timeout=30) as r:
            detail = json.load(r)
        assert len(detail["trials"]) == 2 and detail["has_intermediate_values"]
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- a diverging trial


def test_nan_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    real = cmi_model.module.loss_terms
    poisoned = {"left": 1}

    def first_trial_diverges(*args, **kwargs):
        terms = real(*args, **kwargs)
        if poisoned["left"]:  # the very first training batch of the study: trial 0
            poisoned["left"] -= 1
            terms = dict(terms, multiclass=terms["multiclass"] * float("nan"))
        return terms

    monkeypatch.setattr(cmi_model.module, "loss_terms", first_trial_diverges)
    url = sqlite_url(tmp_path / "nan.db")
    argv = ["run", "--preset", "tiny", "--storage", url, "--study-name", "n", "--arms", "fixed"]
    handler = signal.getsignal(signal.SIGINT)
    assert main([*argv, "--n-trials", "2"]) == 0
    assert signal.getsignal(signal.SIGINT) is handler  # main's Ctrl-C handler is put back
    assert poisoned["left"] == 0
    study = load(url, "n-fixed")
    first, *rest = study.trials
    assert first.state == TrialState.FAIL
    # The NaN check of CMISqueezeformer.training_step fired, and its message was kept.
    reason = records.read_trial(first).fail_reason
    assert reason.startswith("TrainingDiverged: loss became nan")
    assert "multiclass=nan" in reason
    assert [t.state for t in rest] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert "trial 0 failed: TrainingDiverged" in capsys.readouterr().out


# ----------------------------------------------------------------------------- parallel workers


@pytest.mark.slow
def test_three_worker_processes_share_one_budget(tmp_path):
    url = sqlite_url(tmp_path / "par.db")
    argv = worker_argv(url, "p")
    procs = [start_worker(argv, tmp_path, "--n-trials", "3") for _ in range(3)]
    results = [finish(p) for p in procs]
    for code, _out, err in results:
        assert code == 0, err
        assert "database is locked" not in err
        assert "Traceback" not in err
    check_exact_totals(url, "p", 3)


@pytest.mark.slow
def test_workers_option_runs_helpers_on_one_budget(tmp_path):
    url = sqlite_url(tmp_path / "par.db")
    proc = start_worker(worker_argv(url, "w"), tmp_path, "--n-trials", "3", "--workers", "3")
    code, out, err = finish(proc)
    assert code == 0, err
    assert "3 worker(s)" in out
    assert "database is locked" not in err and "Traceback" not in err
    check_exact_totals(url, "w", 3)


# ----------------------------------------------------------------------------- a killed worker


@pytest.mark.slow
def test_killed_worker_trial_is_failed_and_retried(tmp_path):
    url = sqlite_url(tmp_path / "kill.db")
    proc, victim, extra = start_long_worker(tmp_path, url, "k")
    time.sleep(0.5)  # inside the first fold's training
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    study = load(url, "k-fixed")
    assert study.trials[victim.number].state == TrialState.RUNNING  # nobody marked it: it died

    rerun = ["run", "--preset", "tiny", "--storage", url, "--study-name", "k", *extra]
    assert main(rerun) == 0
    study = load(url, "k-fixed")
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert records.read_trial(killed).fail_reason == "worker lost: no heartbeat for 3 s"
    assert Dashboard(url).notes("k-fixed")[victim.number] == "**Failed:** worker lost: no heartbeat for 3 s"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.number > victim.number and retry.state == TrialState.COMPLETE
    assert retry.params == killed.params
    assert len(records.read_trial(retry).scores) == 2  # its own results, not the dead trial's
    assert states(study)["COMPLETE"] == 2


# ----------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_and_storage_stays_usable(tmp_path):
    url = sqlite_url(tmp_path / "int.db")
    proc, victim, extra = start_long_worker(tmp_path, url, "c")
    time.sleep(1.0)  # inside Lightning's fit, which turns KeyboardInterrupt into sys.exit(1)
    proc.send_signal(signal.SIGINT)
    code, _out, err = finish(proc, timeout=120)
    assert code == 130, err
    assert err.strip().splitlines() == [
        "cmi-study run: interrupted; finished trials are kept in the storage"
    ], err
    # The interrupted trial is failed at once (not left RUNNING for the heartbeat to find).
    interrupted = load(url, "c-fixed").trials[victim.number]
    assert interrupted.state == TrialState.FAIL
    assert records.read_trial(interrupted).fail_reason.startswith("KeyboardInterrupt")

    # ... and queued again with the same parameters, like a lost worker's trial.
    queued = [t for t in load(url, "c-fixed").trials if t.system_attrs.get("failed_trial") == victim.number]
    assert [t.state for t in queued] == [TrialState.WAITING]
    assert queued[0].params == interrupted.params

    assert main(["run", "--preset", "tiny", "--storage", url, "--study-name", "c", *extra]) == 0
    study = load(url, "c-fixed")
    assert states(study)["COMPLETE"] == 2
    assert states(study)["RUNNING"] == 0
    assert study.trials[queued[0].number].state == TrialState.COMPLETE  # the rerun did it


@pytest.mark.slow
def test_ctrl_c_on_two_workers_exits_130_with_one_line(tmp_path):
    """Ctrl-C reaches the driver and its helper (one process group): one line, exit 130, and a
    rerun finishes both arms."""
    url = sqlite_url(tmp_path / "int2.db")
    extra = [*long_trial_options(tmp_path), "--workers", "2"]
    proc = start_worker(worker_argv(url, "c2"), tmp_path, *extra, new_session=True)
    for arm in ("fixed", "uncertainty"):  # the driver's arm and the helper's: both workers at work
        wait_for_running(url, f"c2-{arm}", proc)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    code, _out, err = finish(proc, timeout=120)
    assert code == 130, err
    assert err.strip().splitlines() == [
        "cmi-study run: interrupted; finished trials are kept in the storage"
    ], err
    assert main(["run", "--preset", "tiny", "--storage", url, "--study-name", "c2", *extra]) == 0
    for arm in ("fixed", "uncertainty"):
        study = load(url, f"c2-{arm}")
        assert states(study)["COMPLETE"] == 2 and states(study)["RUNNING"] == 0


# ----------------------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo_prints_report_database_and_dashboard_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--preset", "tiny", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}
    report = Path(lines["report"])
    assert report.is_file() and report.suffix == ".html"
    assert "sqlite:///" in lines["database"]
    db = Path(lines["database"].removeprefix("sqlite:///"))
    assert db.is_file()
    program, url, flag, artifact_dir = shlex.split(lines["dashboard"])
    assert (program, flag) == ("optuna-dashboard", "--artifact-dir")
    names = set(optuna.get_all_study_names(url))
    assert {"cmi-fixed", "cmi-uncertainty", "cmi-confirm"} <= names
    # The command shows the report: the confirmation study's artifact, in that folder.
    (artifact,) = Dashboard(url, Path(artifact_dir)).study("cmi-confirm")["artifacts"]
    assert (Path(artifact_dir) / artifact["artifact_id"]).read_bytes() == report.read_bytes()


@pytest.mark.slow
def test_one_helper_takes_the_search_then_the_confirmation(tmp_path):
    """A helper worker starts once (the demo's start-up overlaps its own) and runs each command
    it is sent in turn; a failed command is reported, and a helper never used is stopped."""
    from study.workers.helper import Helpers

    url = sqlite_url(tmp_path / "h.db")
    common = ["--storage", url, "--study-name", "h"]
    helpers = Helpers(1)
    try:
        helper = helpers.procs[0]
        helpers.send(["run", *common], [["--preset", "tiny", "--n-trials", "2"]])
        assert helpers.wait() == [0]
        for arm in ("fixed", "uncertainty"):
            assert states(load(url, f"h-{arm}"))["COMPLETE"] == 2
        helpers.send(["confirm", *common], [["--seeds", "1"]])
        assert helpers.wait() == [0]
        assert states(load(url, "h-confirm"))["COMPLETE"] == 2  # (fixed, uncertainty) × 1 seed
        helpers.send(["run", *common], [["--data", str(tmp_path / "none")]])
        # This process's share succeeded: the helper's failure is the error.
        with (
            pytest.raises(RuntimeError, match=r"1 helper worker\(s\) failed \(exit codes \[2\]\)"),
            helpers.waited(),
        ):
            pass
        helpers.send(["run", *common], [["--data", str(tmp_path / "none")]])
        # This process failed first (as on Ctrl-C, which reaches every worker): its error stands.
        with pytest.raises(KeyError, match="own"), helpers.waited():
            raise KeyError("own")
        assert helpers.procs == [helper] and helper.poll() is None  # the same process throughout
    finally:
        helpers.close()
    assert helper.returncode == 0
    unused = Helpers(1)
    unused.close()
    assert unused.procs[0].returncode == -signal.SIGKILL


def _trials_of(url: str, name: str) -> dict:
    out = {}
    for part in ("fixed", "uncertainty", "confirm"):
        study = load(url, f"{name}-{part}")
        # A worker that found the queue emptied under it steps aside (a FAIL marked BudgetTaken): when
        # that happens is timing, not a result, so it is left out of what must repeat.
        kept = [t for t in study.trials if not records.is_budget_skip(t)]
        out[part] = [(t.state.name, t.params, t.value, records.read_trial(t).scores) for t in kept]
    out["verdicts"] = [
        (c.a, c.b, c.comparison.verdict, c.comparison.mean_diff, c.comparison.p_value)
        for c in analyse.analyse(read.read(url, name)).comparisons
    ]
    return out


@pytest.mark.slow
def test_two_workers_owning_one_arm_each_give_the_same_study_twice(tmp_path):
    """With no more workers than arms each worker owns whole arms and runs their trials in order
    with the arm's seeded sampler: the same command gives the same trials, scores and verdict."""
    runs = []
    for i in range(2):
        url = sqlite_url(tmp_path / f"rep{i}.db")
        common = ["--storage", url, "--study-name", "r", "--workers", "2"]
        assert main(["run", "--preset", "tiny", "--n-trials", "3", *common]) == 0
        assert main(["confirm", "--seeds", "2", *common]) == 0  # 2 seeds × 2 folds: enough for a verdict
        runs.append(_trials_of(url, "r"))
    assert runs[0] == runs[1]
    # Sampled trials, not only the enqueued baselines, are compared.
    assert len({str(p) for _, p, _, _ in runs[0]["fixed"]}) == 3


def test_workers_creating_a_new_database_together_all_open_it(tmp_path):
    """Workers started together race to create the schema of a new database; none may fail."""
    for round_ in range(3):
        url = sqlite_url(tmp_path / f"new-{round_}.db")
        assert race(lambda url=url: open_storage(url)) == []
        assert optuna.get_all_study_names(url) == []


def test_database_a_worker_is_still_creating_is_not_refused_as_foreign(tmp_path):
    """A worker that looks while another is halfway through creating the tables sees only some
    of Optuna's tables: that is a storage being made (CI once refused it as foreign)."""
    from optuna.storages._rdb import models

    db = tmp_path / "half.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    models.BaseModel.metadata.tables["studies"].create(engine)
    models.BaseModel.metadata.tables["version_info"].create(engine)
    engine.dispose()
    open_storage(sqlite_url(db))
    assert optuna.get_all_study_names(sqlite_url(db)) == []


def test_workers_joining_a_new_study_together_queue_one_baseline(tmp_path):
    """Only the worker that creates an arm's study writes its attrs and queues the baseline;
    the others wait for the attrs before checking them."""
    settings = build_settings("tiny", overrides={"train": {"precision": "32-true"}})  # as run_arms settles it
    info = records.DataInfo(source="synthetic", fingerprint="f" * 16)
    url = sqlite_url(tmp_path / "join.db")
    open_storage(url)  # the schema exists: this test is about the study, not the tables
    split = SubjectSplit(("a", "b"), ("c",))
    join = lambda: open_arm_study(open_storage(url), "j", "fixed", settings, info, split, "cmi-study run")  # noqa: E731
    assert race(join) == []
    study = load(url, "j-fixed")
    assert [t.state for t in study.trials] == [TrialState.WAITING]  # one baseline, not one per worker
    assert study.trials[0].system_attrs["fixed_params"]["alpha"] == 0.5
    recorded = records.read_arm_study(study)
    assert recorded.seed == 0 and recorded.data == info


# ----------------------------------------------------------------------------- confirmation pairs


def _check_subject_scores(url: str, study_name: str) -> int:
    """Every fold's per-subject scores equal score_indices on that subject's out-of-fold
    predictions, recomputed here; returns how many subjects were checked."""
    from cmi_model.metric import score_indices
    from study.runner import load_study_data
    from study.settings import Settings

    arm_study = next(s for s in optuna.get_all_study_names(url) if not s.endswith("-confirm"))
    data, _ = load_study_data(Settings(**records.read_arm_study(load(url, arm_study)).settings), None)
    checked = 0
    for t in load(url, study_name).get_trials(states=(TrialState.COMPLETE,)):
        r = records.read_trial(t)
        start = 0
        for f in r.folds:
            idx = np.flatnonzero(np.isin(data.subject, f.val_subjects))  # the fold's sorted indices
            y_true = np.asarray(r.oof.y_true[start : start + len(idx)])
            y_pred = np.asarray(r.oof.y_pred[start : start + len(idx)])
            start += len(idx)
            assert np.array_equal(y_true, data.gesture[idx])
            assert sorted(f.subject_scores) == f.val_subjects
            for subject, got in f.subject_scores.items():
                mine = data.subject[idx] == subject
                want = score_indices(y_true[mine], y_pred[mine])
                assert (got.score, got.binary_f1, got.macro_f1) == (want.score, want.binary_f1, want.macro_f1)
                assert got.n == mine.sum() > 0
                checked += 1
        assert start == len(r.oof.y_pred)
    return checked


def test_confirmation_pairs_do_not_depend_on_the_worker_or_its_order(tiny_run, tmp_path):
    """The same pairs, once in this process (which already trained the search and more) in queue
    order, once in a fresh worker process in the reverse order: every fold score, every
    out-of-fold prediction and every per-subject score is the same."""
    _, name, folder = tiny_run
    urls = []
    for tag in ("here", "fresh"):
        shutil.copy(folder / "study.db", tmp_path / f"{tag}.db")
        urls.append(sqlite_url(tmp_path / f"{tag}.db"))
    here, fresh = urls
    assert main(["confirm", "--storage", here, "--study-name", name, "--seeds", "1"]) == 0
    queue = [(records.read_trial(t).arm, t.params["seed"]) for t in load(here, f"{name}-confirm").trials]
    assert queue == [("fixed", 1), ("uncertainty", 1)]
    # The other database: the same pairs queued in the reverse order, as prepare_confirm queues them.
    confirm = optuna.create_study(storage=fresh, study_name=f"{name}-confirm", direction="maximize")
    for arm, seed in reversed(queue):
        best = records.best_trial(load(fresh, f"{name}-{arm}").trials)
        attrs = records.trial_attrs(arm=arm, source_trial=best.number, params=best.params, forced=False)
        confirm.enqueue_trial({"seed": seed}, user_attrs=attrs)
    proc = start_worker(
        [sys.executable, "-m", "study", "confirm"],
        tmp_path,
        "--storage",
        fresh,
        "--study-name",
        name,
        "--seeds",
        "1",
    )
    code, _, err = finish(proc)
    assert code == 0, err
    ran = [(records.read_trial(t).arm, t.params["seed"]) for t in load(fresh, f"{name}-confirm").trials]
    assert ran == list(reversed(queue)) and len(ran) == 2  # nothing queued twice
    a, b = confirm_pairs(here, name), confirm_pairs(fresh, name)
    assert sorted(a) == sorted(b) and len(a) == 2
    for key in a:
        assert a[key] == b[key], key  # exact: floats compared bit for bit
    assert _check_subject_scores(here, f"{name}-confirm") == 2 * 2  # 2 pairs × 2 held-out subjects


def test_search_trials_record_per_subject_scores(tiny_run):
    url, name, _ = tiny_run
    assert _check_subject_scores(url, f"{name}-fixed") > 0

"""The live view: what optuna-dashboard shows of a real tiny study made by the tool (run with one
diverging trial → confirm → report twice), read back through optuna-dashboard's own WSGI app:
each study's metric name, the report as the confirmation study's artifact (replaced, not piled
up, by a second report), a failed trial's note with its reason and a confirmation pair's note
with its per-fold scores."""

from __future__ import annotations

import contextlib
import io

import optuna
import pytest
from helpers import sqlite_url
from helpers.dashboard import Dashboard
from helpers.fake_study import add_arm_study
from helpers.workers import load
from optuna.trial import TrialState

import cmi_model.module
from study import records
from study.cli import main
from study.report import read
from study.report.artifact import REPORT_ARTIFACT_ATTR
from study.workers import trial_notes

NAME = "live"
ARMS = ("fixed", "uncertainty")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The tool's own storage: a search whose very first trial diverges, a confirmation, and two
    reports into one artifact folder (the first report's artifact is overwritten with other bytes
    in between, so that the second report's replacement can be seen). About a minute here: its
    tests are marked slow."""
    folder = tmp_path_factory.mktemp("live")
    url = sqlite_url(folder / "live.db")
    common = ["--storage", url, "--study-name", NAME]
    real, poisoned = cmi_model.module.loss_terms, {"left": 1}

    def first_trial_diverges(*args, **kwargs):
        terms = real(*args, **kwargs)
        if poisoned["left"]:  # the study's first training batch: trial 0 of the first arm
            poisoned["left"] -= 1
            terms = dict(terms, multiclass=terms["multiclass"] * float("nan"))
        return terms

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cmi_model.module, "loss_terms", first_trial_diverges)
        run = ["run", "--preset", "tiny", "--arms", ",".join(ARMS), "--n-trials", "2", *common]
        assert main(run) == 0
    assert main(["confirm", "--seeds", "1", *common]) == 0
    out, artifacts = folder / "live.html", folder / "artifacts"
    report = ["report", *common, "--out", str(out), "--artifact-dir", str(artifacts)]
    first = _stdout_of(report)
    first_html = out.read_bytes()
    (first_file,) = artifacts.iterdir()
    first_artifact = first_file.read_bytes()
    first_file.write_bytes(b"an earlier report")  # whatever it held, the next report replaces it
    second = _stdout_of(report)
    return {
        "url": url,
        "out": out,
        "artifacts": artifacts,
        "first": first,
        "first_html": first_html,
        "first_artifact": first_artifact,
        "first_file": first_file.name,
        "second": second,
        "dashboard": Dashboard(url, artifacts),
    }


def _stdout_of(argv: list[str]) -> str:
    """What the command printed (a module fixture has no capsys)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


def _printed(out: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(f"{key}:"))


@pytest.mark.slow
def test_every_study_names_what_its_value_is(live):
    dash = live["dashboard"]
    for arm in ARMS:
        assert dash.study(f"{NAME}-{arm}")["objective_names"] == [records.SEARCH_METRIC]
    assert dash.study(f"{NAME}-confirm")["objective_names"] == [records.CONFIRM_METRIC]
    assert "CV score" in records.SEARCH_METRIC and "held-out score" in records.CONFIRM_METRIC
    assert records.SEARCH_METRIC != records.CONFIRM_METRIC


@pytest.mark.slow
def test_the_report_is_the_confirmation_studys_one_artifact(live):
    dash, out = live["dashboard"], live["out"]
    confirm = dash.study(f"{NAME}-confirm")
    (artifact,) = confirm["artifacts"]
    assert artifact["filename"] == out.name and artifact["mimetype"] == "text/html"
    status, headers, body = dash.get(f"/artifacts/{confirm['study_id']}/{artifact['artifact_id']}")
    assert status == 200 and headers["Content-Type"] == "text/html"
    assert body == out.read_bytes()  # the HTML file the last report wrote, byte for byte
    for arm in ARMS:  # the report belongs to the confirmation, not to the searches
        assert dash.study(f"{NAME}-{arm}")["artifacts"] == []


@pytest.mark.slow
def test_a_second_report_replaces_the_artifact_instead_of_adding_one(live):
    dash, folder = live["dashboard"], live["artifacts"]
    (artifact,) = dash.study(f"{NAME}-confirm")["artifacts"]
    assert live["first_artifact"] == live["first_html"]  # the first report stored its own HTML
    # The same artifact, its bytes the second report's (the file held other bytes in between).
    assert artifact["artifact_id"] == live["first_file"]
    assert [p.name for p in folder.iterdir()] == [artifact["artifact_id"]]  # one file, no partial left
    assert (folder / artifact["artifact_id"]).read_bytes() == live["out"].read_bytes()
    assert _printed(live["first"], "artifact").startswith(f"stored as {folder / artifact['artifact_id']}")
    assert _printed(live["second"], "artifact").startswith(f"replaced as {folder / artifact['artifact_id']}")
    storage = optuna.storages.get_storage(live["url"])
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(f"{NAME}-confirm"))
    assert attrs[REPORT_ARTIFACT_ATTR] == artifact["artifact_id"]


@pytest.mark.slow
def test_report_prints_the_matching_dashboard_command(live):
    command = _printed(live["second"], "dashboard")
    assert command == f"optuna-dashboard {live['url']} --artifact-dir {live['artifacts']}"


@pytest.mark.slow
def test_a_failed_trial_notes_its_reason(live):
    study = live["dashboard"].study(f"{NAME}-fixed")
    notes = {t["number"]: t["note"]["body"] for t in study["trials"]}
    failed = [t for t in study["trials"] if t["state"] == "Fail"]
    assert [t["number"] for t in failed] == [0]
    reason = {a["key"]: a["value"] for a in failed[0]["user_attrs"]}["fail_reason"]
    assert reason.startswith("TrainingDiverged: loss became nan")
    assert notes[0] == trial_notes.fail_note(reason) and reason in notes[0]
    # Complete search trials carry no note of ours: their record says it all.
    assert {n: body for n, body in notes.items() if n != 0} == {1: "", 2: ""}


@pytest.mark.slow
def test_a_confirmation_pair_notes_its_per_fold_scores(live):
    notes = live["dashboard"].notes(f"{NAME}-confirm")
    confirm = load(live["url"], f"{NAME}-confirm")
    pairs = confirm.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(records.read_trial(t).arm for t in pairs) == sorted(ARMS)
    for t in pairs:
        r = records.read_trial(t)
        note = notes[t.number]
        assert f"`{r.arm}`" in note and f"search trial #{r.source_trial}" in note and f"seed {r.seed}" in note
        rows = [
            [c.strip() for c in line.strip("|").split("|")]
            for line in note.splitlines()
            if line.startswith("|")
        ]
        header, _rule, *folds, mean = rows
        assert header == ["fold", "validation subjects", "score", "binary F1", "macro F1"]
        assert len(folds) == len(r.folds) == 2
        for k, (row, f) in enumerate(zip(folds, r.folds, strict=True)):
            assert row == [
                str(k),
                ", ".join(f.val_subjects),
                f"{f.score:.4f}",
                f"{f.binary_f1:.4f}",
                f"{f.macro_f1:.4f}",
            ]
        assert mean[0] == "mean" and float(mean[2].strip("*")) == pytest.approx(t.value, abs=5e-5)


@pytest.mark.slow
def test_notes_leave_the_tools_own_records_readable(live):
    url = live["url"]
    for part in (*ARMS, "confirm"):
        for t in load(url, f"{NAME}-{part}").trials:
            records.read_trial(t)  # raises RecordError on anything not in the storage format
            assert not any(k.startswith("dashboard") for k in t.user_attrs)
    studies = read.read(url, NAME)
    assert studies.read_warnings == ()
    assert studies.confirm is not None and set(studies.arms) == set(ARMS)


# ----------------------------------------------------------------------------- refused, nothing written


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_report_refuses_an_artifact_dir_it_does_not_own(tmp_path, capsys, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    out = tmp_path / "r.html"
    argv = ["report", "--storage", sqlite_url(tmp_path / "none.db"), "--out", str(out)]
    capsys.readouterr()
    assert main([*argv, "--artifact-dir", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--artifact-dir {target}" in err[0]
    assert ("is not a folder" if kind == "file" else "not Optuna artifacts (notes.txt)") in err[0]
    assert not out.exists()
    assert (target.read_text() if kind == "file" else (target / "notes.txt").read_text()) == "mine"
    if kind != "file":
        assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_report_without_a_confirmation_stores_no_artifact(tmp_path, capsys):
    url = sqlite_url(tmp_path / "s.db")
    for arm in ARMS:
        add_arm_study(url, "nc", arm)
    folder = tmp_path / "artifacts"
    capsys.readouterr()
    argv = ["report", "--storage", url, "--study-name", "nc", "--out", str(tmp_path / "r.html")]
    assert main([*argv, "--artifact-dir", str(folder)]) == 0
    assert "artifact: none yet (no confirmation study" in capsys.readouterr().out
    assert not folder.exists()


def test_report_help_names_the_artifact_folder_and_the_dashboard(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse would break "optuna-dashboard" at its hyphen
    text = " ".join(_stdout_of(["report", "--help"]).split())
    assert "--artifact-dir ARTIFACT_DIR" in text and "reports/NAME-artifacts" in text
    assert "optuna-dashboard STORAGE --artifact-dir FOLDER" in text

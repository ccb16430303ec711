"""The storage URL from the environment (CMI_STORAGE): used when --storage is not given, named in
error lines, and named by its variable in the printed dashboard command."""

import optuna
import pytest
from helpers import sqlite_url
from helpers.fake_study import full_storage

from study.cli import main
from study.workers.storage import open_storage
from study.workers.urls import STORAGE_ENV


def test_run_without_storage_option_uses_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    url = sqlite_url(tmp_path / "from-env.db")
    monkeypatch.setenv(STORAGE_ENV, url)
    argv = ["run", "--preset", "tiny", "--arms", "fixed", "--n-trials", "1", "--study-name", "e"]
    assert main(argv) == 0
    assert f"storage {url}" in capsys.readouterr().out
    assert optuna.get_all_study_names(url) == ["e-fixed"]
    assert not (tmp_path / "reports" / "e.db").exists()  # not the default file as well


def test_the_storage_option_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = tmp_path / "given.db"
    monkeypatch.setenv(STORAGE_ENV, sqlite_url(tmp_path / "env.db"))
    full_storage(open_storage(sqlite_url(given)), "o", arms=("fixed", "uncertainty"))
    out = tmp_path / "o.html"
    assert main(["report", "--storage", sqlite_url(given), "--study-name", "o", "--out", str(out)]) == 0
    assert out.is_file() and not (tmp_path / "env.db").exists()


@pytest.mark.parametrize("where", ["env", "option"])
def test_a_bad_url_is_blamed_on_where_it_came_from(tmp_path, monkeypatch, capsys, where):
    missing = sqlite_url(tmp_path / "missing.db")
    argv = ["report", "--study-name", "m", "--out", str(tmp_path / "m.html")]
    if where == "env":
        monkeypatch.setenv(STORAGE_ENV, missing)
    else:
        monkeypatch.delenv(STORAGE_ENV, raising=False)
        argv += ["--storage", missing]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    named = "CMI_STORAGE" if where == "env" else "--storage"
    assert err == f"cmi-study report: error: {named}: no SQLite database at {tmp_path / 'missing.db'}"
    assert not (tmp_path / "missing.db").exists()


def test_the_dashboard_command_names_the_variable_not_the_url(tmp_path, monkeypatch, capsys):
    """The printed command works as written and keeps the URL (and any password) out of the
    output and out of the dashboard's own command line."""
    monkeypatch.chdir(tmp_path)
    url = sqlite_url(tmp_path / "dash.db")
    full_storage(open_storage(url), "d", arms=("fixed", "uncertainty"))
    monkeypatch.setenv(STORAGE_ENV, url)
    assert main(["report", "--study-name", "d"]) == 0
    out = capsys.readouterr().out
    dashboard = next(line for line in out.splitlines() if line.startswith("dashboard:"))
    assert dashboard == 'dashboard: optuna-dashboard "$CMI_STORAGE" --artifact-dir reports/d-artifacts'
    assert url not in dashboard

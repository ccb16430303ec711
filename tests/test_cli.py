"""Bad options, configuration, data and storage: exit code 2, one line on stderr, no
traceback, and nothing half-written to the storage."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import sqlite_url

from cmi_model.errors import InputError
from study import records
from study.cli import main
from study.runner import synthetic_dir
from study.settings import build_settings
from study.workers import urls

PASSWORD = "s3cret-pw"


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit code 2 and exactly one line on stderr; return that line."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's errors exit from parse_args, as in the console script
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cmi-study")
    return lines[0]


def run_argv(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--preset",
        "tiny",
        "--storage",
        sqlite_url(tmp_path / "x.db"),
        "--study-name",
        "b",
        *extra,
    ]


# ----------------------------------------------------------------------------- options and config


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return str(path)


BAD_RUNS = {
    "unknown arm": (lambda d: ["--arms", "fixed,bogus"], "bogus"),
    "one fold": (lambda d: ["--folds", "1"], "folds"),
    "zero trials": (lambda d: ["--n-trials", "0"], "--n-trials"),
    "not a number": (lambda d: ["--epochs", "many"], "--epochs"),
    "more folds than subjects": (
        lambda d: ["--folds", "7", "--holdout", "0"],
        "7 folds need at least 7 subjects",
    ),
    "more folds than held-out subjects": (lambda d: ["--folds", "3"], "fewer than the 3 folds"),
    "holdout of 1": (lambda d: ["--holdout", "1"], "holdout"),
    "negative holdout": (lambda d: ["--holdout", "-0.1"], "holdout"),
    "unknown config key": (lambda d: ["--config", _write(d, "[study]\nbogus = 1\n")], "study.bogus"),
    "unknown config section": (lambda d: ["--config", _write(d, "[nonsense]\nx = 1\n")], "nonsense"),
    "section not a table": (lambda d: ["--config", _write(d, "study = 3\n")], "[study] table"),
    "impossible alpha": (lambda d: ["--config", _write(d, "[loss]\nalpha = 2\n")], "loss.alpha"),
    "grace not above heartbeat": (
        lambda d: ["--config", _write(d, "[study]\nheartbeat_interval = 5\ngrace_period = 5\n")],
        "grace_period",
    ),
    "invalid TOML": (lambda d: ["--config", _write(d, "[study\nn_trials = 3\n")], "not valid TOML"),
    "missing config": (lambda d: ["--config", str(d / "nope.toml")], "nope.toml"),
    "config is a folder": (lambda d: ["--config", str(d)], "cannot read"),
    "missing data folder": (lambda d: ["--data", str(d / "no-such-dir")], "no-such-dir"),
    "rope of 0": (lambda d: ["--rope", "0"], "--rope"),
    "rope of 1": (lambda d: ["--rope", "1"], "--rope"),
    "rope not a number": (lambda d: ["--rope", "wide"], "--rope"),
    "outer fold beyond the outer folds": (
        lambda d: ["--outer-folds", "2", "--outer-fold", "3"],
        "2 outer folds",
    ),
    "outer fold of a study without outer folds": (lambda d: ["--outer-fold", "1"], "one held-out set"),
    "hold-out share with outer folds": (lambda d: ["--outer-folds", "2", "--holdout", "0.3"], "--holdout"),
    "more outer folds than subjects": (lambda d: ["--outer-folds", "7"], "at least 7 subjects"),
    "too many outer folds": (lambda d: ["--outer-folds", "21"], "--outer-folds"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_options_exit_2_with_one_line_and_write_nothing(case, tmp_path, capsys):
    extra, expected = BAD_RUNS[case]
    line = one_line_error(capsys, run_argv(tmp_path, *extra(tmp_path)))
    assert expected in line
    assert not (tmp_path / "x.db").exists()  # no storage was created for a bad input


def test_unparseable_storage_url_is_one_line_and_hides_its_password(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, ["run", "--preset", "tiny", "--storage", "not a url"])
    assert "not a SQLAlchemy database URL" in line
    # Unparseable (the port is not a number) yet carrying a password: masked all the same.
    bad = f"postgresql://bob:{PASSWORD}@db:port/x"
    line = one_line_error(capsys, ["run", "--preset", "tiny", "--storage", bad])
    assert PASSWORD not in line and "bob:***@db" in line
    assert list(tmp_path.iterdir()) == []  # neither reports/ nor a database file


@pytest.fixture(scope="module")
def bad_gesture_dir(tmp_path_factory):
    """A few sequences of the embedded data, one of them with a gesture that does not exist."""
    source = synthetic_dir(build_settings("tiny"))
    train = pd.read_csv(source / "train.csv", nrows=600)
    train.loc[train["sequence_id"] == train["sequence_id"].iloc[0], "gesture"] = "Wave goodbye"
    folder = tmp_path_factory.mktemp("bad-gesture")
    train.to_csv(folder / "train.csv", index=False)
    pd.read_csv(source / "train_demographics.csv").to_csv(folder / "train_demographics.csv", index=False)
    return folder


def test_bad_csv_is_one_line_naming_file_column_and_value(bad_gesture_dir, tmp_path, capsys):
    line = one_line_error(capsys, run_argv(tmp_path, "--data", str(bad_gesture_dir)))
    assert "train.csv" in line and "'gesture'" in line and "Wave goodbye" in line
    assert not (tmp_path / "x.db").exists()


def test_joining_with_other_options_is_refused_before_any_trial(tmp_path, capsys):
    assert main(run_argv(tmp_path, "--arms", "fixed", "--n-trials", "1")) == 0
    capsys.readouterr()
    line = one_line_error(capsys, run_argv(tmp_path, "--arms", "fixed", "--n-trials", "1", "--epochs", "2"))
    assert "epochs" in line and "another --study-name" in line
    study = optuna.load_study(study_name="b-fixed", storage=sqlite_url(tmp_path / "x.db"))
    assert len(study.trials) == 1 and records.read_arm_study(study).epochs == 1


def test_a_study_refuses_a_worker_whose_precision_resolves_to_another(tmp_path, capsys):
    # "auto" on a CPU is 32-true: the study records what it resolved to, so an explicit 32-true
    # worker joins it and a bf16-mixed one (another score) is refused before training anything.
    assert main(run_argv(tmp_path, "--arms", "fixed", "--n-trials", "1")) == 0
    capsys.readouterr()
    line = one_line_error(
        capsys, run_argv(tmp_path, "--arms", "fixed", "--n-trials", "1", "--precision", "bf16-mixed")
    )
    assert "train.precision='32-true'" in line and "'bf16-mixed'" in line and "another --study-name" in line
    assert main(run_argv(tmp_path, "--arms", "fixed", "--n-trials", "2", "--precision", "32-true")) == 0
    study = optuna.load_study(study_name="b-fixed", storage=sqlite_url(tmp_path / "x.db"))
    assert [records.read_trial(t).precision for t in study.trials] == ["32-true", "32-true"]


# ----------------------------------------------------------------------------- report and confirm


def test_report_and_confirm_on_a_missing_database_create_nothing(tmp_path, capsys):
    url = sqlite_url(tmp_path / "none.db")
    line = one_line_error(capsys, ["report", "--storage", url, "--out", str(tmp_path / "r.html")])
    assert "none.db" in line
    line = one_line_error(capsys, ["confirm", "--storage", url])
    assert "none.db" in line
    assert "none.db" in one_line_error(capsys, ["confirm", "--storage", url, "--seeds", "1"])
    assert list(tmp_path.iterdir()) == []


def test_report_and_confirm_before_any_run_write_nothing(tmp_path, capsys):
    url = sqlite_url(tmp_path / "other.db")
    optuna.create_study(study_name="someone-else", storage=url)
    line = one_line_error(
        capsys, ["report", "--storage", url, "--study-name", "cmi", "--out", str(tmp_path / "r.html")]
    )
    assert "cmi" in line and "someone-else" in line
    line = one_line_error(capsys, ["confirm", "--storage", url, "--study-name", "cmi"])
    assert "cmi-<arm>" in line and "cmi-study run" in line
    one_line_error(capsys, ["confirm", "--storage", url, "--study-name", "cmi", "--seeds", "1"])
    assert optuna.get_all_study_names(url) == ["someone-else"]
    assert not (tmp_path / "r.html").exists()


# ----------------------------------------------------------------------------- masking, settings


def test_one_masking_function_for_urls_and_command_lines():
    url = f"postgresql+psycopg2://bob:{PASSWORD}@db.example:5432/optuna"
    assert urls.safe_url(url) == "postgresql+psycopg2://bob:***@db.example:5432/optuna"
    assert urls.safe_url("sqlite:///reports/cmi.db") == "sqlite:///reports/cmi.db"
    cmd = f"cmi-study run --storage 'postgresql://bob:{PASSWORD}@db/x' --n-trials 3"
    assert urls.redact(cmd) == "cmi-study run --storage 'postgresql://bob:***@db/x' --n-trials 3"
    # The report uses the driver's functions, not copies of them.
    from study.report import read, reproducibility

    assert reproducibility.redact is urls.redact and read.redact_url is urls.safe_url


def test_the_helper_module_imports_nothing_from_the_cli():
    """The CLI starts helpers through study.workers.helper, so that module must not import the CLI back:
    a helper process gets the CLI's `main` from its entry point, `python -m study --serve-helper`."""
    import ast

    import study.workers.helper

    tree = ast.parse(Path(study.workers.helper.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m == "study.cli" or m.startswith("study.cli.") for m in imported), imported
    assert study.workers.helper.SERVE == "--serve-helper"


SECRET_URL = (
    "postgresql://bob:pa ss@db:5432/x?sslpassword=s3cr3t-q&passfile=/home/bob/.pgpass&sslmode=require"
)


def test_query_secrets_and_passwords_with_spaces_are_masked_by_parsing():
    masked = urls.safe_url(SECRET_URL)
    for secret in ("pa ss", "s3cr3t-q", "/home/bob/.pgpass"):
        assert secret not in masked
    assert "sslmode=require" in masked and "bob:***@db" in masked
    assert "s3cr3t-q" not in urls.redact(f"--storage {SECRET_URL.replace(' ', '')}")


@pytest.mark.parametrize("style", ["separate", "equals"])
def test_stored_command_masks_the_storage_url_whatever_it_holds(style):
    from study.cli import _command_line
    from study.options import build_parser

    argv = (
        ["report", "--storage", SECRET_URL] if style == "separate" else ["report", f"--storage={SECRET_URL}"]
    )
    args = build_parser().parse_args(argv)
    args.argv = argv
    line = _command_line(args)
    assert "pa ss" not in line and "s3cr3t-q" not in line and ".pgpass" not in line
    assert "***" in line and line.startswith("cmi-study report ") and "--storage" in line


def test_heartbeat_settings_come_from_the_config_file(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text("[study]\nheartbeat_interval = 1\ngrace_period = 3\n")
    st = build_settings("tiny", cfg).study
    assert (st.heartbeat_interval, st.grace_period) == (1, 3)


def test_a_full_disk_while_writing_the_report_is_one_line_and_keeps_the_old_report(
    tmp_path, capsys, monkeypatch
):
    import errno

    from helpers.fake_study import full_storage

    url = sqlite_url(tmp_path / "r.db")
    full_storage(url, "full")
    out = tmp_path / "r.html"
    assert main(["report", "--storage", url, "--study-name", "full", "--out", str(out)]) == 0
    before = out.read_bytes()

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", no_space)
    capsys.readouterr()
    assert main(["report", "--storage", url, "--study-name", "full", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert out.read_bytes() == before  # the old report is intact, no partial file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.db", "r.html"]


def test_confirm_unfinished_reaches_the_helpers_as_a_flag_and_each_demo_stage_has_its_own_options():
    from study.cli import _forwarded
    from study.options import build_parser, stage_args

    args = build_parser().parse_args(["confirm", "--unfinished", "--workers", "2", "--study-name", "x"])
    argv = _forwarded(args, "confirm")
    assert argv[0] == "confirm" and argv.count("--unfinished") == 1
    assert argv[argv.index("--unfinished") + 1 :][:1] != ["True"]  # a switch: the flag alone
    plain = build_parser().parse_args(["confirm", "--study-name", "x"])
    assert "--unfinished" not in _forwarded(plain, "confirm")
    # The demo's --force is its report's (overwrite --out), and no other stage has one; the stages
    # share the demo's workers and study name, and take their own defaults for the rest.
    demo = build_parser().parse_args(["demo", "--force", "--workers", "3", "--study-name", "d"])
    run, confirm, report = (stage_args(demo, c) for c in ("run", "confirm", "report"))
    assert report.force is True and not hasattr(confirm, "force") and not hasattr(run, "force")
    assert confirm.unfinished is False and "--unfinished" not in _forwarded(confirm, "confirm")
    assert (run.workers, confirm.workers, run.study_name, report.study_name) == (3, 3, "d", "d")
    assert (run.command, run.threads, run.preset) == ("run", 1, "demo")
    with pytest.raises(SystemExit):  # an option means one thing: synth's data seed has its own name
        build_parser().parse_args(["synth", "--out", "x", "--seed", "3"])
    assert build_parser().parse_args(["synth", "--out", "x", "--data-seed", "3"]).data_seed == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[train]\nmax_epochs = true\n", "train.max_epochs: true is a boolean, not a number"),
        ("[study]\nn_trials = false\n", "study.n_trials: false is a boolean, not a number"),
        ('[train]\nlr = "0.001"\n', "train.lr: '0.001' is a string, not a number"),
        ("[loss]\nauto_weight_clamp = [-5, true]\n", "loss.auto_weight_clamp: true is a boolean"),
    ],
)
def test_toml_booleans_and_strings_are_not_numbers(tmp_path, text, words):
    """TOML is typed: pydantic's lax mode would read `true` as 1 and "0.001" as 0.001."""
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(InputError, match=re.escape(f"{config}: {words}")):
        build_settings("tiny", config)


def test_toml_values_of_the_right_type_still_pass(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[study]\narms = ["fixed", "uncertainty"]\nholdout = 0\nfreeze_learned = true\n'
        '[train]\nprecision = "auto"\nmax_epochs = 2\nlr = 1\n[model]\nattn_dropout = 0.1\n'
    )
    s = build_settings("tiny", config)
    assert s.study.arms == ("fixed", "uncertainty") and s.train.max_epochs == 2 and s.study.freeze_learned


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2)])
def test_a_closed_stdout_or_stderr_is_no_failure_and_takes_no_file(tmp_path, closed):
    """`cmi-study synth … >&-`: exit 0, and no file opened later inherits fd 1 or 2 with the output."""
    import os
    import subprocess
    import sys

    out = tmp_path / "x"
    proc = subprocess.run(
        [sys.executable, "-m", "study", "synth", "--out", str(out), "--subjects", "2"],
        preexec_fn=lambda: [os.close(fd) for fd in closed],  # noqa: PLW1509 — the test's own child
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0
    for name in ("train.csv", "test.csv", "train_demographics.csv", "test_demographics.csv"):
        assert (out / name).read_bytes()[:7] in (b"row_id,", b"subject"), name


@pytest.mark.parametrize(
    ("cause", "code"),
    [("database or disk is full", 1), ("attempt to write a readonly database", 2)],
)
def test_a_failed_storage_write_is_one_line_with_its_cause(tmp_path, capsys, monkeypatch, cause, code):
    """Optuna wraps a failed write in StorageInternalError, whose hint blames the data: the line says
    the cause, a full disk exits 1 as the README says, anything else 2."""
    import sqlalchemy

    def failing(*args, **kwargs):
        try:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception(cause))
        except sqlalchemy.exc.OperationalError as e:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit. This typically happens due to invalid data "
                "in the commit, e.g. exceeding max length."
            ) from e

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", failing)
    url = sqlite_url(tmp_path / "w.db")
    argv = [
        "run",
        "--preset",
        "tiny",
        "--arms",
        "fixed",
        "--n-trials",
        "1",
        "--storage",
        url,
        "--workers",
        "1",
    ]
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"cmi-study run: error: storage {url}: {cause}", err
    assert "Traceback" not in "\n".join(err) and "max length" not in "\n".join(err)


@pytest.mark.slow
def test_confirm_whose_every_pair_failed_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """`confirm && report` must stop: a confirmation with no finished pair for an arm is a failure."""
    import study.confirm

    url = sqlite_url(tmp_path / "f.db")
    argv = ["--storage", url, "--study-name", "f", "--workers", "1"]
    assert main(["run", "--preset", "tiny", "--arms", "fixed", "--n-trials", "1", *argv]) == 0

    def broken_folds(*args, **kwargs):
        raise TypeError("held-out subjects missing from the data")

    monkeypatch.setattr(study.confirm, "run_folds", broken_folds)
    capsys.readouterr()
    assert main(["confirm", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "cmi-study confirm: error: every confirmation pair of fixed failed "
        "(last: TypeError: held-out subjects missing from the data)"
    ), err


@pytest.mark.parametrize(("command", "kept"), [("synth", False), ("report", False), ("run", True)])
def test_an_interrupted_command_says_finished_trials_are_kept_only_where_there_are_trials(
    tmp_path, capsys, monkeypatch, command, kept
):
    import study.cli
    from cmi_model.errors import Interrupted

    def interrupted(args):
        raise Interrupted()

    monkeypatch.setitem(study.cli.COMMANDS, command, interrupted)
    argv = {"synth": ["synth", "--out", str(tmp_path / "x")], "report": ["report"], "run": ["run"]}[command]
    assert main(argv) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"cmi-study {command}: interrupted")
    assert ("finished trials are kept" in line) == kept


def test_a_dashboard_note_the_storage_refuses_is_a_prefixed_warning(tmp_path, capsys, monkeypatch):
    """The report is written; the warning that its note could not be stored reads like every other line."""
    from helpers.fake_study import full_storage

    import study.report

    def refused(*args, **kwargs):
        raise PermissionError("attempt to write a readonly database")

    url = sqlite_url(tmp_path / "ro.db")
    full_storage(url, "ro")
    monkeypatch.setattr(study.report, "save_to_dashboard", refused)
    assert main(["report", "--storage", url, "--study-name", "ro", "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert (
        "cmi-study report: warning: could not save the verdict to optuna-dashboard: attempt to write" in err
    )


@pytest.mark.parametrize("url", ["postgresql://u:Zq@w#9x?k/s@host/db", "postgresql://u:pa@ss@host/db"])
def test_an_unencoded_password_is_refused_without_echoing_any_part(capsys, url):
    assert main(["report", "--storage", url, "--study-name", "x"]) == 2
    out = capsys.readouterr()
    (line,) = out.err.strip().splitlines()
    assert line.startswith("cmi-study report: error: --storage: the storage URL holds an unencoded")
    for piece in ("Zq", "w#9x", "pa@ss", "ss@host", "host"):
        assert piece not in out.err + out.out


def test_an_address_space_cap_fails_in_one_line_within_seconds(tmp_path):
    """Under `ulimit -v 900000` scipy's OpenBLAS used to retry a failing allocation forever at import."""
    import resource
    import subprocess
    import sys

    cap = 900_000 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))

    proc = subprocess.run(
        [sys.executable, "-m", "study", "synth", "--out", str(tmp_path / "x"), "--subjects", "2"],
        preexec_fn=limited,  # noqa: PLW1509 — the test's own child
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:  # it may fit on another machine: then it must simply work
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            "cmi-study: error: out of memory under the address-space limit of 878 MiB (`ulimit -v`): "
            "raise or remove the limit"
        ]
    else:
        assert (tmp_path / "x" / "train.csv").is_file()


def test_a_full_disk_at_open_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """The README gives a full disk exit 1: at open too, with the storage named (no empty file name)."""
    import sqlalchemy

    def full(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("CREATE TABLE", {}, Exception("database or disk is full"))

    monkeypatch.setattr(optuna.storages.RDBStorage, "__init__", full)
    url = sqlite_url(tmp_path / "d.db")
    assert main(["run", "--preset", "tiny", "--arms", "fixed", "--storage", url]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"cmi-study run: error: {url}: cannot open the storage: database or disk is full"


def _under_file_size_limit(argv: list[str], kib: int, cwd) -> subprocess.CompletedProcess:
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return subprocess.run(
        [sys.executable, "-m", "study", *argv],
        preexec_fn=limited,  # noqa: PLW1509 — the test's own child
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=os.environ | {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"},
    )


@pytest.mark.slow
def test_a_file_size_limit_is_named_in_one_line_with_exit_1(tmp_path):
    """`ulimit -f`: SQLite says only "disk I/O error" (at open, or when the file grows past it
    mid-run); the report's write says "File too large" without a file. The line names the limit,
    the file where there is one, and exits 1 like a full disk."""
    db = tmp_path / "f.db"
    url = sqlite_url(db)
    run = ["run", "--preset", "tiny", "--storage", url, "--study-name", "f", "--n-trials"]
    assert main([*run, "1"]) == 0  # the demo data made (in the cache) and a study to report on
    html = tmp_path / "f.html"
    report = ["report", "--storage", url, "--study-name", "f", "--out", str(html)]
    proc = _under_file_size_limit(report, 500, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"cmi-study report: error: {html}: File too large (the file-size limit, `ulimit -f`, is 500 KiB)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db"]  # no report, half or whole

    at_open = f"cmi-study run: error: {url}: cannot open the storage: disk I/O error"
    mid_run = f"cmi-study run: error: storage {url}: disk I/O error"
    for kib, said in ((100, at_open), (130, mid_run)):  # the tables alone take 128 KiB
        db.unlink()
        proc = _under_file_size_limit([*run, "4"], kib, tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"{said} (the file-size limit, `ulimit -f`, is {kib} KiB)"
        ]

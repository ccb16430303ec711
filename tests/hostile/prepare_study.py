"""Prepared storages and folders for the study-side cases of the hostile-input corpus."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import tempfile
from functools import cache
from pathlib import Path

import optuna

from study.cli import main


@cache
def _tiny_study() -> Path:
    """One finished tiny study (fixed arm, one trial), made once per test session."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-study-"))
    argv = ["run", "--preset", "tiny", "--arms", "fixed", "--n-trials", "1", "--epochs", "1"]
    assert main([*argv, "--storage", f"sqlite:///{folder / 's.db'}", "--study-name", "h"]) == 0
    return folder / "s.db"


def study(folder: Path) -> dict:
    db = folder / "s.db"
    shutil.copy(_tiny_study(), db)
    return {"db": str(db), "url": f"sqlite:///{db}"}


def study_with_config(folder: Path, text: str) -> dict:
    cfg = folder / "other.toml"
    cfg.write_text(text)
    return study(folder) | {"cfg": str(cfg)}


def study_with_bool_config(folder: Path) -> dict:
    return study_with_config(folder, "[train]\nmax_epochs = true\n")


def other_modalities(folder: Path) -> dict:
    return study_with_config(folder, '[data]\nmodalities = "imu"\n')


def other_model_preset(folder: Path) -> dict:
    return study_with_config(folder, 'model_preset = "small"\n')


def other_label_smoothing(folder: Path) -> dict:
    return study_with_config(folder, "[loss]\nlabel_smoothing = 0.1\n")


def other_class_weighting(folder: Path) -> dict:
    return study_with_config(folder, "[loss]\nclass_weighting = true\n")


def other_max_len(folder: Path) -> dict:
    return study_with_config(folder, "[data]\nmax_len = 32\n")


def nothing(folder: Path) -> dict:
    return {}


def empty_file(folder: Path) -> dict:
    db = folder / "empty.db"
    db.touch()
    return {"db": str(db), "url": f"sqlite:///{db}"}


def foreign_sqlite(folder: Path) -> dict:
    db = folder / "foreign.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO customers (name) VALUES ('Ada')")
    return {"db": str(db), "url": f"sqlite:///{db}"}


def not_sqlite(folder: Path) -> dict:
    db = folder / "notes.db"
    db.write_text("just some text, not a database\n")
    return {"db": str(db), "url": f"sqlite:///{db}"}


def damaged_study(folder: Path) -> dict:
    places = study(folder)
    db = Path(places["db"])
    data = bytearray(db.read_bytes())
    page = 4096
    data[page + 8 : 2 * page] = b"\xa5" * (page - 8)  # a b-tree page overwritten with garbage
    db.write_bytes(bytes(data))
    return places


def attribute_not_json(folder: Path) -> dict:
    """One stored trial attribute overwritten with text that is not JSON (a hand-edited database)."""
    places = study(folder)
    con = sqlite3.connect(places["db"])
    with con:
        con.execute(
            "UPDATE trial_user_attributes SET value_json = '{not json' WHERE trial_user_attribute_id = "
            "(SELECT MIN(trial_user_attribute_id) FROM trial_user_attributes)"
        )
    con.close()
    return places


def out_is_a_folder(folder: Path) -> dict:
    (folder / "some-folder").mkdir()
    return study(folder) | {"out": str(folder / "some-folder")}


def out_is_someone_elses_file(folder: Path) -> dict:
    out = folder / "notes.html"
    out.write_text("<html><body>my own notes</body></html>\n")
    return study(folder) | {"out": str(out), "db": str(out)}  # "db": the file that must not change


def study_running(folder: Path) -> dict:
    """The tiny study with one more search trial running (another worker's, say)."""
    places = study(folder)
    optuna.load_study(study_name="h-fixed", storage=places["url"]).ask()
    return places


# ----------------------------------------------------------------------------- second round


def synth_into(folder: Path) -> dict:
    """A folder holding somebody's own train.csv: synth must not replace it without --force."""
    out = folder / "mydata"
    out.mkdir()
    (out / "train.csv").write_text("my,real,data\n1,2,3\n")
    return {"out": str(out), "db": str(out / "train.csv")}  # "db": the file that must not change


def synth_onto_file(folder: Path) -> dict:
    out = folder / "notes.txt"
    out.write_text("my notes\n")
    return {"out": str(out), "db": str(out)}


def foreign_optuna_study(folder: Path) -> dict:
    """A plain Optuna study named like an arm study (h-fixed), with a trial, not made by this tool."""
    db = folder / "theirs.db"
    study = optuna.create_study(study_name="h-fixed", storage=f"sqlite:///{db}", direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    return {"db": str(db), "url": f"sqlite:///{db}"}


def out_fifo(folder: Path) -> dict:
    out = folder / "report.html"
    os.mkfifo(out)
    return study(folder) | {"out": str(out)}


def out_socket(folder: Path) -> dict:
    out = folder / "report.html"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(out))
    return study(folder) | {"out": str(out)}


def other_schema_version(folder: Path) -> dict:
    """A storage whose schema a later Optuna wrote: refused in one line, never migrated."""
    places = study(folder)
    with sqlite3.connect(places["db"]) as con:
        con.execute("UPDATE version_info SET library_version = '99.0.0'")
        con.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")  # a revision this Optuna lacks
    return places

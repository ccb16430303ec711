"""Prepared data folders and config files for the data- and config-side cases of the hostile-input corpus.

Data cases start from a small valid data set (the first five sequences of the synthetic train.csv,
~600 rows, and its demographics), generated once per test session, and change one thing. Row i of
the frame is line i + 2 of the written file (line 1 is the header), which the cases' `expect` uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from cmi_model.schema import TRAIN_COLUMNS
from cmi_model.synthetic import generate

N_SEQUENCES = 5


def _base() -> Path:
    """The small valid data set, made once per test session (the module is loaded anew per case, so
    the cache is a folder: next to the session's preprocessing cache, which conftest.py sets)."""
    cache = os.environ.get("CMI_CACHE_DIR")
    root = Path(cache).parent if cache else Path(tempfile.gettempdir())
    base = root / "hostile-data-base"
    if (base / "train_demographics.csv").is_file():
        return base
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".hostile-data-"))
    generate(tmp / "full", n_subjects=4, seed=3)
    train = pd.read_csv(tmp / "full" / "train.csv", nrows=1000)
    train = train[train["sequence_id"].isin(train["sequence_id"].unique()[:N_SEQUENCES])]
    train.to_csv(tmp / "train.csv", index=False)
    shutil.copy(tmp / "full" / "train_demographics.csv", tmp / "train_demographics.csv")
    shutil.rmtree(tmp / "full")
    try:
        os.replace(tmp, base)
    except OSError:  # made meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return base


def _data(folder: Path, train: pd.DataFrame | None = None, demo: pd.DataFrame | None = None) -> dict:
    """folder/data with the base files, or the given frames in their place."""
    data = folder / "data"
    shutil.copytree(_base(), data)
    if train is not None:
        train.to_csv(data / "train.csv", index=False)
    if demo is not None:
        demo.to_csv(data / "train_demographics.csv", index=False)
    return {"data": str(data)}


def _train() -> pd.DataFrame:
    return pd.read_csv(_base() / "train.csv")


def _demo() -> pd.DataFrame:
    return pd.read_csv(_base() / "train_demographics.csv")


def _set(row: int, column: str, value) -> pd.DataFrame:
    t = _train()
    if isinstance(value, str):
        t = t.astype({column: object})
    t.loc[row, column] = value
    return t


# ----------------------------------------------------------------------------- data: files


def _file_is_directory(folder: Path, name: str) -> dict:
    places = _data(folder)
    path = Path(places["data"]) / name
    path.unlink()
    path.mkdir()
    return places


def train_is_directory(folder: Path) -> dict:
    return _file_is_directory(folder, "train.csv")


def train_unreadable(folder: Path) -> dict:
    if os.geteuid() == 0:
        # root reads a chmod 000 file; tests/test_data.py covers the same path with a PermissionError
        pytest.skip("root ignores file permissions")
    places = _data(folder)
    (Path(places["data"]) / "train.csv").chmod(0)
    return places


def nul_bytes(folder: Path) -> dict:
    """3 MB of NUL bytes: the header read must stop after 1 MB (a 2 GB one took 40 s and 6.6 GB)."""
    places = _data(folder)
    (Path(places["data"]) / "train.csv").write_bytes(b"\0" * (3 << 20))
    return places


def long_first_line(folder: Path) -> dict:
    places = _data(folder)
    (Path(places["data"]) / "train.csv").write_text("acc_x," * (3 << 19))
    return places


def nul_rows(folder: Path) -> dict:
    """A valid header and three rows, then 3 MB of NUL bytes."""
    places = _data(folder)
    path = Path(places["data"]) / "train.csv"
    lines = path.read_bytes().split(b"\n")[:4]
    path.write_bytes(b"\n".join(lines) + b"\n" + b"\0" * (3 << 20))
    return places


def ragged_row(folder: Path) -> dict:
    """Line 4 lost its last field."""
    places = _data(folder)
    path = Path(places["data"]) / "train.csv"
    lines = path.read_text().split("\n")
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines))
    return places


def not_utf8(folder: Path) -> dict:
    """A Latin-1 byte in line 3's phase (an editor saved the file in another encoding)."""
    places = _data(folder)
    path = Path(places["data"]) / "train.csv"
    lines = path.read_bytes().split(b"\n")
    assert b",Transition," in lines[2]
    lines[2] = lines[2].replace(b",Transition,", b",Transici\xf3n,")
    path.write_bytes(b"\n".join(lines))
    return places


# ----------------------------------------------------------------------------- data: header


def header_leading_space(folder: Path) -> dict:
    return _data(folder, _train().rename(columns={"acc_x": " acc_x"}))


def duplicate_column(folder: Path) -> dict:
    """A second acc_y at the end, with other values: pyarrow would keep the first and drop it."""
    t = _train()
    extra = t["acc_y"] + 1.0
    t = pd.concat([t, extra.rename("acc_y_2")], axis=1)
    t.columns = [*TRAIN_COLUMNS, "acc_y"]
    return _data(folder, t)


# ----------------------------------------------------------------------------- data: values


def acc_overflow(folder: Path) -> dict:
    """3e38 fits float32 but overflows every sum: every trial would diverge."""
    return _data(folder, _set(2, "acc_x", 3e38))


def acc_missing(folder: Path) -> dict:
    return _data(folder, _set(3, "acc_z", float("nan")))


def rotation_not_unit(folder: Path) -> dict:
    return _data(folder, _set(4, "rot_x", 5.0))


def zero_quaternion(folder: Path) -> dict:
    t = _train()
    t.loc[5, ["rot_w", "rot_x", "rot_y", "rot_z"]] = 0.0
    return _data(folder, t)


def thm_out_of_range(folder: Path) -> dict:
    return _data(folder, _set(6, "thm_2", 400.0))


def tof_out_of_range(folder: Path) -> dict:
    return _data(folder, _set(1, "tof_1_v5", 300.0))


def tof_negative(folder: Path) -> dict:
    return _data(folder, _set(4, "tof_3_v7", -5.0))


def counter_not_integer(folder: Path) -> dict:
    return _data(folder, _set(3, "sequence_counter", "3.5"))


def empty_sequence_id(folder: Path) -> dict:
    t = _train()
    first = t["sequence_id"] == t["sequence_id"].iloc[0]
    t.loc[first, "sequence_id"] = ""  # an empty cell: pyarrow reads it as "" (strings are never null)
    return _data(folder, t)


# ----------------------------------------------------------------------------- data: demographics


def age_not_numeric(folder: Path) -> dict:
    demo = _demo().astype({"age": object})
    demo.loc[1, "age"] = "twelve"
    return _data(folder, demo=demo)


def demographics_conflict(folder: Path) -> dict:
    demo = _demo()
    again = demo.iloc[[0]].copy()
    again["age"] += 3
    return _data(folder, demo=pd.concat([demo, again], ignore_index=True))


def demographics_leading_space(folder: Path) -> dict:
    return _data(folder, demo=_demo().rename(columns={"subject": " subject"}))


def demographics_is_directory(folder: Path) -> dict:
    return _file_is_directory(folder, "train_demographics.csv")


# ----------------------------------------------------------------------------- configs


def _config(folder: Path, text: str) -> dict:
    cfg = folder / "cfg.toml"
    cfg.write_text(text)
    return {"cfg": str(cfg), "db": str(folder / "x.db")}


def no_config(folder: Path) -> dict:
    return {"db": str(folder / "x.db")}


def lr_inf(folder: Path) -> dict:
    return _config(folder, "[train]\nlr = inf\n")


def lr_nan(folder: Path) -> dict:
    return _config(folder, "[train]\nlr = nan\n")


def warmup_epochs_inf(folder: Path) -> dict:
    return _config(folder, "[train]\nwarmup_epochs = inf\n")


def kl_temperature_inf(folder: Path) -> dict:
    return _config(folder, "[loss]\nkl_temperature = inf\n")


def weight_lr_multiplier_nan(folder: Path) -> dict:
    return _config(folder, "[loss]\nweight_lr_multiplier = nan\n")


def clamp_inf(folder: Path) -> dict:
    return _config(folder, "[loss]\nauto_weight_clamp = [-inf, 10.0]\n")


def holdout_nan(folder: Path) -> dict:
    return _config(folder, "[study]\nholdout = nan\n")


def n_trials_huge(folder: Path) -> dict:
    return _config(folder, "[study]\nn_trials = 1_000_000\n")


def folds_huge(folder: Path) -> dict:
    return _config(folder, "[study]\nfolds = 1000\n")


def confirm_seeds_huge(folder: Path) -> dict:
    return _config(folder, "[study]\nconfirm_seeds = 100000\n")


def study_seed_huge(folder: Path) -> dict:
    return _config(folder, "[study]\nseed = 4294967296\n")


def train_seed_huge(folder: Path) -> dict:
    return _config(folder, "[train]\nseed = 4294967296\n")


def max_len_huge(folder: Path) -> dict:
    return _config(folder, "[data]\nmax_len = 1_000_000\n")


def batch_size_huge(folder: Path) -> dict:
    return _config(folder, "[data]\nbatch_size = 1_000_000\n")


def max_epochs_huge(folder: Path) -> dict:
    return _config(folder, "[train]\nmax_epochs = 1_000_000\n")


def d_model_huge(folder: Path) -> dict:
    return _config(folder, "[model]\nd_model = 65536\nn_heads = 4\n")


def n_layers_huge(folder: Path) -> dict:
    return _config(folder, "[model]\nn_layers = 1000\n")


def subjects_huge(folder: Path) -> dict:
    return _config(folder, "[synthetic]\nsubjects = 100000\n")


# ----------------------------------------------------------------------------- second round: files that are no files


def _special(path: Path, kind: str) -> None:
    """Replace `path` by a FIFO, a socket, or a symlink to a character device (kind: fifo, socket,
    zero, urandom): opening or reading any of them can block forever or never end."""
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
    else:
        path.symlink_to(f"/dev/{kind}")


def _special_data_file(name: str, kind: str):
    """A prepare function: the base data set with `name` replaced by a `kind` of _special."""

    def prepare(folder: Path) -> dict:
        places = _data(folder)
        _special(Path(places["data"]) / name, kind)
        return places

    return prepare


train_fifo = _special_data_file("train.csv", "fifo")
train_dev_zero = _special_data_file("train.csv", "zero")
train_socket = _special_data_file("train.csv", "socket")
demographics_fifo = _special_data_file("train_demographics.csv", "fifo")
demographics_urandom = _special_data_file("train_demographics.csv", "urandom")


def _special_config(kind: str):
    """A prepare function: --config cfg.toml is a `kind` of _special."""

    def prepare(folder: Path) -> dict:
        places = no_config(folder) | {"cfg": str(folder / "cfg.toml")}
        _special(folder / "cfg.toml", kind)
        return places

    return prepare


config_fifo = _special_config("fifo")
config_dev_zero = _special_config("zero")
config_socket = _special_config("socket")


# ----------------------------------------------------------------------------- second round: values


def demographics_age_nan(folder: Path) -> dict:
    demo = _demo().astype({"age": object})
    demo.loc[2, "age"] = "nan"
    return _data(folder, demo=demo)


def demographics_height_empty(folder: Path) -> dict:
    demo = _demo().astype({"height_cm": object})
    demo.loc[1, "height_cm"] = ""
    return _data(folder, demo=demo)


def demographics_missing_subject(folder: Path) -> dict:
    """A subject with sensor data and no demographics row: named as text, never as a numpy repr."""
    demo = _demo()
    first = _train()["subject"].iloc[0]
    return _data(folder, demo=demo[demo["subject"] != first])


def gesture_with_line_break(folder: Path) -> dict:
    """A quoted newline inside row 30's gesture (written on line 32)."""
    return _data(folder, _set(30, "gesture", "Text on\nphone"))


def subject_with_line_break(folder: Path) -> dict:
    """Row 10's subject holds a quoted newline; the error names line 12 and the row's sequence."""
    return _data(folder, _set(10, "subject", "SUBJ_\n1"))


def max_epochs_bool(folder: Path) -> dict:
    return _config(folder, "[train]\nmax_epochs = true\n")


def n_trials_bool(folder: Path) -> dict:
    return _config(folder, "[study]\nn_trials = false\n")


def dropout_bool(folder: Path) -> dict:
    return _config(folder, "[model]\ndropout = true\n")


def train_seed_bool(folder: Path) -> dict:
    return _config(folder, "[train]\nseed = true\n")


def synthetic_subjects_bool(folder: Path) -> dict:
    return _config(folder, "[synthetic]\nsubjects = true\n")


def holdout_above_half(folder: Path) -> dict:
    return _config(folder, "[study]\nholdout = 0.75\n")


def deeply_nested(folder: Path) -> dict:
    depth = 5000  # Python's tomllib parses nested inline tables recursively
    return _config(folder, "x = " + "{a = " * depth + "1" + "}" * depth + "\n")


def model_preset_list(folder: Path) -> dict:
    return _config(folder, "model_preset = []\n")


def early_stopping_inner_too_small(folder: Path) -> dict:
    """The tiny preset's 2 training subjects per fold cannot spare a fifth for early stopping."""
    return _config(folder, '[train]\nearly_stopping = "inner"\n')


def batch_size_bool(folder: Path) -> dict:
    return _config(folder, "[data]\nbatch_size = true\n")


def heartbeat_bool(folder: Path) -> dict:
    return _config(folder, "[study]\nheartbeat_interval = true\n")

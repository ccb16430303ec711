"""Nothing half-written, nothing left behind, nothing of somebody else's replaced: what an
interrupted or careless command leaves on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cmi_model import data as data_mod
from cmi_model.errors import Interrupted
from cmi_model.synthetic import write as write_mod
from study import runner
from study.cli import main
from study.settings import build_settings


def test_synth_force_replaces_its_four_files_and_keeps_the_rest(tmp_path, capsys):
    out = tmp_path / "mydata"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "train.csv").write_text("an old train.csv\n")
    assert main(["synth", "--out", str(out), "--subjects", "2"]) == 2  # not without --force
    assert (out / "train.csv").read_text() == "an old train.csv\n"
    assert main(["synth", "--out", str(out), "--subjects", "2", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "test.csv",
        "test_demographics.csv",
        "train.csv",
        "train_demographics.csv",
    ]
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "train.csv").read_text().startswith("row_id,sequence_type,sequence_id")


def test_an_interrupted_synth_keeps_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    out = tmp_path / "d"
    out.mkdir()
    (out / "train.csv").write_text("the old one\n")

    def half_then_ctrl_c(path, *args, **kwargs):
        Path(path).write_text("row_id,half")
        raise Interrupted()

    monkeypatch.setattr(write_mod, "_write_sensor_csv", half_then_ctrl_c)
    with pytest.raises(Interrupted):
        write_mod.generate(out, n_subjects=2)
    assert sorted(p.name for p in out.iterdir()) == ["train.csv"]
    assert (out / "train.csv").read_text() == "the old one\n"


def test_an_interrupted_first_generation_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CMI_CACHE_DIR", str(tmp_path / "cache"))
    settings = build_settings("tiny")

    def partial_then_ctrl_c(out, **kwargs):
        (Path(out) / "train.csv").write_text("row_id,half")
        raise Interrupted()

    monkeypatch.setattr("cmi_model.synthetic.generate", partial_then_ctrl_c)
    with pytest.raises(Interrupted):
        runner.synthetic_dir(settings)
    assert list((tmp_path / "cache").iterdir()) == []  # no .tmp-* folder with half a CSV


def test_an_interrupted_cache_write_leaves_no_folder(tmp_path, monkeypatch):
    from cmi_model.synthetic import generate

    generate(tmp_path / "d", n_subjects=2)
    real_save = data_mod.np.save
    calls = []

    def save_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        real_save(*args, **kwargs)
        raise Interrupted()

    monkeypatch.setattr(data_mod.np, "save", save_then_ctrl_c)
    with pytest.raises(Interrupted):
        data_mod.load_dir(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert calls and list((tmp_path / "cache").iterdir()) == []


def test_a_closed_pipe_is_not_bad_input(tmp_path):
    """`cmi-study inspect ... | true`: exit 141 like any writer whose reader left, and no message."""
    from cmi_model.synthetic import generate

    generate(tmp_path / "d", n_subjects=2)
    # `true` reads nothing and is gone long before Python has started: every write finds no reader.
    cmd = f"{sys.executable} -m study inspect --data {tmp_path / 'd'} | true; echo ${{PIPESTATUS[0]}} >&2"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip() == "141", done.stderr

"""Files the tool writes are written beside and renamed over: never through a file or link already
at any name (planted links at the old temporary names, too), never half-written, with open()'s mode."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from cmi_model.atomic import write_atomically
from cmi_model.synthetic.write import generate


def test_a_planted_link_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "r.html"
    planted = tmp_path / ".r.html.partial"  # the temporary name of earlier versions
    planted.symlink_to(victim)
    write_atomically(out, lambda tmp: tmp.write_text("report"))
    assert victim.read_text() == "mine" and planted.is_symlink()
    assert out.read_text() == "report" and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.html.partial", "r.html", "victim.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # as open() gives, not mkstemp's 0600


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(out, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"] and out.read_text() == "old"


def test_report_artifact_and_synth_write_through_no_planted_link(tmp_path):
    """The three writers use it: the report (through the HTML writer's path), an artifact, synth's CSVs."""
    from study.report.artifact import ReplacingStore

    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    folder = tmp_path / "artifacts"
    folder.mkdir()
    art = "0b5a3f9e-6c1d-4a8e-9f7b-2d4c6e8a0b1c"
    (folder / f".{art}.partial").symlink_to(victim)
    ReplacingStore(folder).write(art, io.BytesIO(b"html"))
    assert (folder / art).read_bytes() == b"html" and victim.read_text() == "mine"
    data = tmp_path / "data"
    data.mkdir()
    (data / ".train.csv.partial").symlink_to(victim)
    generate(data, n_subjects=2)
    assert victim.read_text() == "mine" and (data / "train.csv").stat().st_size > 1000

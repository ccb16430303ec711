"""The hostile-input corpus: one case per file under tests/hostile/*.toml.

A case names a `prepare` function ("data:NAME" in tests/hostile/prepare_data.py, "study:NAME" in
tests/hostile/prepare_study.py) that builds what the command needs in a temporary folder and
returns placeholders for `argv` ({data}, {storage}, {db}, {out}, ...). The command runs in-process
with that folder as the working directory, and must:
- exit with `exit` (2 for bad input), printing exactly one line on stderr, no traceback,
  containing every string of `expect`, and none of `absent` anywhere in its output;
- leave the storage file it was given byte-identical (or absent if there was none);
- create nothing outside the temporary folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from pathlib import Path

import pytest

from study.cli import main

CORPUS = Path(__file__).parent / "hostile"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"hostile_{name}", CORPUS / f"prepare_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _listing(folder: Path) -> set[str]:
    return {str(p) for p in folder.iterdir()}


CASES = sorted(CORPUS.glob("*.toml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_hostile_input(case, tmp_path, capsys, monkeypatch):
    spec = tomllib.loads(case.read_text())
    kind, fn = spec["prepare"].split(":")
    work = tmp_path / "work"
    work.mkdir()
    places = getattr(_module(kind), fn)(work)
    argv = [a.format(**places) for a in spec["argv"]]
    db = Path(places["db"]) if "db" in places else None
    before = _digest(db) if db else None
    outside = _listing(tmp_path) | _listing(Path("/"))
    monkeypatch.chdir(work)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert code == spec.get("exit", 2), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in spec["expect"]:
        assert text in lines[0], (text, lines[0])
    for secret in spec.get("absent", []):
        assert secret not in captured.out + err, secret
    if db is not None:
        assert _digest(db) == before, "the storage file changed"
    assert _listing(tmp_path) | _listing(Path("/")) == outside, (
        "something was written outside the working folder"
    )
    assert os.getcwd() == str(work)

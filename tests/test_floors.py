"""The floor versions CI tests (.ci/floors.txt) are the lower bounds pyproject.toml states."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _floors() -> dict[str, str]:
    lines = (ROOT / ".ci" / "floors.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name: str(next(iter(r.specifier)).version) for r in reqs}


def test_every_floor_ci_installs_is_the_stated_lower_bound():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lower = {}
    for r in map(Requirement, deps):
        bounds = [s.version for s in r.specifier if s.operator == ">="]
        if bounds:
            lower[r.name] = bounds[0]
    floors = _floors()
    tested = {
        "optuna",
        "optuna-dashboard",
        "torchjd",
        "pytorch-lightning",
        "plotly",
        "pandas",
        "scikit-learn",
        "scipy",
    }
    assert tested <= set(floors)
    for name, version in floors.items():
        assert Version(lower[name]) == Version(version), (name, lower[name], version)  # 4.9 == 4.9.0

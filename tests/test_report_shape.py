"""The shape the report and its tests promise: each weighting scheme describes itself (label, paper,
colour, what it learns) and the report names no arm of its own; its records are frozen; no test
module leans on another one."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import itertools
import math
import re
from pathlib import Path

import pytest

from cmi_model.weighting import BASELINE_ARM, NO_TUNING_ARM, SCHEMES
from study.report import analyse, studies, style

ROOT = Path(__file__).resolve().parents[1]
REPORT_MODULES = sorted((ROOT / "study" / "report").glob("*.py"))
TESTS = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- the schemes describe themselves


@pytest.mark.parametrize("arm", list(SCHEMES))
def test_every_scheme_describes_itself(arm):
    scheme = SCHEMES[arm]
    assert scheme.arm == arm
    for text in (scheme.label, scheme.paper):
        assert isinstance(text, str) and text.strip()
    assert isinstance(scheme.color, str) and re.fullmatch(r"#[0-9A-Fa-f]{6}", scheme.color), scheme.color
    for flag in ("learned", "weights_vary", "inverse_loss_optimum"):
        assert isinstance(getattr(scheme, flag), bool), flag
    if scheme.learned or scheme.inverse_loss_optimum:  # what is learned or tracks 1/L changes in training
        assert scheme.weights_vary


def test_the_schemes_have_distinct_colours_and_labels():
    colours = [s.color.upper() for s in SCHEMES.values()]
    assert len(set(colours)) == len(colours)
    # Not only different strings: no two arms near-twin shades (RGB distance: fixed's #4C78A8 and
    # a slate purple #7570B3 are 43 apart, and read as one arm in a legend).
    rgb = {s.arm: [int(s.color[i : i + 2], 16) for i in (1, 3, 5)] for s in SCHEMES.values()}
    close = [(a, b) for a, b in itertools.combinations(rgb, 2) if math.dist(rgb[a], rgb[b]) < 45]
    assert close == []
    # Nor a loss term's colour (the weights figure colours its lines by term, beside arm legends).
    terms = [*style.TERM_COLORS.values(), *style._OTHER_TERMS]
    near = [
        (a, t)
        for a in rgb
        for t in terms
        if math.dist(rgb[a], [int(t[i : i + 2], 16) for i in (1, 3, 5)]) < 30
    ]
    assert near == []
    assert len({s.label for s in SCHEMES.values()}) == len(SCHEMES)
    assert {BASELINE_ARM, NO_TUNING_ARM} <= set(SCHEMES) and BASELINE_ARM != NO_TUNING_ARM
    assert [a for a in SCHEMES if studies.learns(a)] == [a for a, s in SCHEMES.items() if s.learned]
    assert all(analyse.label(a) == s.label for a, s in SCHEMES.items())


# ----------------------------------------------------------------------------- the report names no arm


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the module's, classes' and functions' docstring nodes."""
    out = set()
    for node in ast.walk(tree):
        scopes = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        first = node.body[0] if isinstance(node, scopes) and node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            out |= {id(first.value)} if isinstance(first.value.value, str) else set()
    return out


def string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a module, the literal parts of f-strings included,
    docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def test_string_constants_are_found_in_f_strings_too(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""fixed"""\n\n\ndef f(x):\n    """equal"""\n    return f"{x} dwa", "rlw"\n')
    assert sorted(s for _, s in string_constants(src)) == [" dwa", "rlw"]


@pytest.mark.parametrize("path", REPORT_MODULES, ids=lambda p: p.name)
def test_no_report_module_names_an_arm(path):
    """Which arm is the baseline, the no-tuning reference, learned or drawn how: the schemes say."""
    named = [(line, s) for line, s in string_constants(path) if s in SCHEMES]
    assert named == [], f"{path.name} spells arm names: {named}"


# ----------------------------------------------------------------------------- frozen records


def test_the_report_and_its_records_are_frozen():
    assert REPORT_MODULES
    plain = 0
    for path in REPORT_MODULES:
        module = importlib.import_module(
            f"study.report.{path.stem}" if path.stem != "__init__" else "study.report"
        )
        for name, obj in vars(module).items():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__:
                if name.startswith("_"):  # the page's private gatherer collects figures as it goes
                    continue
                assert obj.__dataclass_params__.frozen, f"{module.__name__}.{name} is not frozen"
                plain += 1
    assert plain >= 15  # Studies, ArmData, …, Report, Verdict, ForestRow, WeightsPanel, …
    assert analyse.Report.__dataclass_params__.frozen


# ----------------------------------------------------------------------------- the tests' own shape


def _imported(path: Path) -> set[str]:
    """Top-level names of every module a file imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


def test_no_test_module_imports_another():
    """Shared code goes to helpers/ (plain functions) or conftest.py (fixtures), never in a test module."""
    files = [*TESTS.glob("test_*.py"), TESTS / "conftest.py", *(TESTS / "helpers").glob("*.py")]
    assert TESTS / "test_report_shape.py" in files
    leaning = {
        p.name: sorted(m for m in _imported(p) if m.startswith("test_") or m == "conftest") for p in files
    }
    assert {name: mods for name, mods in leaning.items() if mods} == {}

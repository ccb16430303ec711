"""Every option of `cmi-study`, in one table: the commands that take it, how it is parsed and
checked, where its value goes in the settings, and whether helper workers are handed it."""

from __future__ import annotations

import argparse
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from cmi_model.config import TrainConfig
from cmi_model.errors import InputError
from cmi_model.weighting import ARMS, SCHEMES
from study.settings import (
    MAX_CONFIRM_SEEDS,
    MAX_OUTER_FOLDS,
    MAX_SYNTHETIC_SUBJECTS,
    MAX_WORKERS,
    StudySection,
)
from study.stats import DEFAULT_ROPE, check_rope
from study.workers.gpus import parse_gpu_list as gpus_arg


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _positive(kind, most: int | None = None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:,}, got {value:,}")
        return value

    return parse


def _rope(text: str) -> float:
    try:
        return check_rope(float(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(
            f"must be a number between 0 and 1 (exclusive), got {text!r}"
        ) from None


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _study_name(text: str) -> str:
    """Study names become file names (reports/NAME.db, reports/NAME.html): no paths, no surprises."""
    if not STUDY_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:120]!r} is not a study name: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return text


def _arm_list(text: str) -> tuple[str, ...]:
    """Every comma-separated entry, empty ones kept: `--arms ""` is no arm at all and `--arms fixed,`
    names an empty arm; the settings reject both (never a silent fall-back to the default arms)."""
    return tuple(a.strip() for a in text.split(",")) if text.strip() else ()


@dataclass(frozen=True)
class Option:
    """One command-line option: the commands that take it, argparse's arguments, and where its
    value goes: `setting` is its place in study.settings.Settings ("section.field"); `forward`
    options are handed on to the helper workers of `run --workers` (the settings go as a file)."""

    flag: str
    commands: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)
    setting: str | None = None
    forward: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


PRESETS = ("tiny", "demo", "full")
OPTIONS: tuple[Option, ...] = (
    Option("--out", ("synth",), {"required": True, "type": Path}),
    Option(
        "--force",
        ("synth",),
        {
            "action": "store_true",
            "help": "write into a folder that is not empty (only its four CSVs are replaced)",
        },
    ),
    Option("--subjects", ("synth",), {"type": _positive(int, MAX_SYNTHETIC_SUBJECTS), "default": 12}),
    Option(
        "--full-size", ("synth",), {"action": "store_true", "help": "the real sizes: 81 subjects, ~575k rows"}
    ),
    Option(
        "--data-seed",
        ("synth",),
        {"type": int, "default": 0, "help": "seed of the synthetic data (default 0)"},
    ),
    Option("--data", ("inspect",), {"required": True, "type": Path}),
    Option("--json", ("inspect",), {"action": "store_true", "help": "print the summary as JSON"}),
    Option(
        "--storage",
        ("run", "confirm", "report", "demo"),
        {"help": "SQLAlchemy URL (default: $CMI_STORAGE, else sqlite:///reports/NAME.db)"},
        forward=True,
    ),
    Option(
        "--study-name",
        ("run", "confirm", "report", "demo"),
        {
            "default": "cmi",
            "type": _study_name,
            "help": "studies are NAME-ARM and NAME-confirm (default: cmi)",
        },
        forward=True,
    ),
    Option(
        "--data",
        ("run", "confirm"),
        {"help": "folder with train.csv + train_demographics.csv (default: embedded synthetic data)"},
        forward=True,
    ),
    Option(
        "--preset", ("run", "demo"), {"default": "demo", "choices": PRESETS, "help": "sizes, epochs, folds"}
    ),
    Option(
        "--config",
        ("run",),
        {
            "type": Path,
            "help": "TOML file overriding the preset ([study], [model], [loss], [data], [train], [synthetic])",
        },
    ),
    Option(
        "--arms",
        ("run",),
        {
            "type": _arm_list,
            "help": "comma-separated arms (default: fixed,uncertainty), or all (every arm but the "
            "controls): " + "; ".join(f"{arm} = {SCHEMES[arm].label} ({SCHEMES[arm].paper})" for arm in ARMS),
        },
        setting="study.arms",
    ),
    Option(
        "--n-trials",
        ("run",),
        {"type": _positive(int), "help": "total trials per arm across all workers"},
        setting="study.n_trials",
    ),
    Option(
        "--folds",
        ("run",),
        {"type": _positive(int), "help": "subject-grouped CV folds"},
        setting="study.folds",
    ),
    Option(
        "--epochs",
        ("run",),
        {"type": _positive(int), "help": "maximum epochs per fold"},
        setting="train.max_epochs",
    ),
    Option(
        "--precision",
        ("run",),
        {
            "choices": typing.get_args(TrainConfig.model_fields["precision"].annotation),
            "help": "training precision: auto (the default: bf16-mixed on a GPU with native bf16, and on a "
            "CPU with bf16 units for a wide enough model; else 32-true; a joining worker takes the study's), "
            "32-true, or bf16-mixed",
        },
        setting="train.precision",
    ),
    Option(
        "--seed",
        ("run",),
        {"type": int, "help": "fold split, sampler and initialisation seed"},
        setting="study.seed",
    ),
    Option(
        "--pruner",
        ("run",),
        {
            "choices": typing.get_args(StudySection.model_fields["pruner"].annotation),
            "help": f"per-fold pruning of the search (default: {StudySection.model_fields['pruner'].default})",
        },
        setting="study.pruner",
    ),
    Option(
        "--subjects",
        ("run",),
        {"type": _positive(int), "help": "subjects of the embedded synthetic data"},
        setting="synthetic.subjects",
    ),
    Option(
        "--workers",
        ("run", "confirm"),
        {
            "type": _positive(int, MAX_WORKERS),
            "default": 1,
            "help": f"worker processes on this machine (default 1, at most {MAX_WORKERS})",
        },
    ),
    Option(
        "--workers",
        ("demo",),
        {
            "type": _positive(int, MAX_WORKERS),
            "default": min(2, os.cpu_count() or 1),
            "help": "worker processes",
        },
    ),
    Option(
        "--gpu",
        ("run", "confirm", "demo"),
        {
            "type": gpus_arg,
            "help": "the GPUs (numbers among the visible ones, e.g. 0,2) this command's workers are "
            "spread over, one each while there are enough (default: every visible GPU)",
        },
    ),
    Option(
        "--threads",
        ("run", "confirm"),
        {"type": _positive(int), "default": 1, "help": "torch CPU threads per worker (default 1)"},
        forward=True,
    ),
    Option(
        "--seeds",
        ("confirm",),
        {"type": _positive(int, MAX_CONFIRM_SEEDS), "help": "fresh split seeds (default: the preset's)"},
        forward=True,
    ),
    Option(
        "--unfinished",
        ("confirm",),
        {
            "action": "store_true",
            "help": "confirm each arm's best trial so far even if its search is unfinished or running "
            "(its pairs record forced=True)",
        },
        forward=True,
    ),
    Option("--out", ("report", "demo"), {"type": Path, "help": "HTML file (default: reports/NAME.html)"}),
    Option(
        "--artifact-dir",
        ("report", "demo"),
        {
            "type": Path,
            "help": "folder the report is also stored in, as an Optuna artifact of NAME-confirm (default: "
            "reports/NAME-artifacts; a rerun replaces it); see it with "
            "`optuna-dashboard STORAGE --artifact-dir FOLDER`",
        },
    ),
    Option(
        "--force",
        ("report", "demo"),
        {"action": "store_true", "help": "overwrite an --out file that is not a cmi-study report"},
    ),
    Option(
        "--holdout",
        ("run",),
        {
            "type": float,
            "help": "share of subjects held out of the search for the confirmation (default 0.25)",
        },
        setting="study.holdout",
    ),
    Option(
        "--outer-folds",
        ("run",),
        {
            "type": _positive(int, MAX_OUTER_FOLDS),
            "help": "nested evaluation: split the subjects into K outer folds and hold out each in turn, "
            "with searches of its own on the others, so every subject is scored once (default 1: one "
            "held-out set, --holdout)",
        },
        setting="study.outer_folds",
    ),
    Option(
        "--outer-fold",
        ("run", "confirm"),
        {
            "type": _positive(int, MAX_OUTER_FOLDS),
            "help": "work on outer fold k alone (1..K; default: every one): run one tonight, the rest later",
        },
    ),
    Option(
        "--rope",
        ("run",),
        {
            "type": _rope,
            "help": "region of practical equivalence of the verdict, in score units (default "
            f"{DEFAULT_ROPE}; stored with the study)",
        },
        setting="study.rope",
    ),
    Option(
        "--rope",
        ("report",),
        {
            "type": _rope,
            "help": "read the scores under this rope instead of the one stored with the study "
            "(the report says so)",
        },
    ),
    # A helper worker's settings and arms, given by the process that started it (not for users).
    Option("--only-arms", ("run",), {"type": _arm_list, "help": argparse.SUPPRESS}),
    # (The settings as JSON text, sent down the helper's stdin: no temporary file to leave behind.)
    Option("--resolved-settings", ("run",), {"help": argparse.SUPPRESS}),
)
COMMAND_HELP = {
    "synth": "write the embedded synthetic data set as Kaggle-schema CSVs",
    "inspect": "validate a data folder and summarise it",
    "run": "tune every arm with the same budget (run it on many workers at once)",
    "confirm": "re-train each arm's best configuration on fresh fold splits",
    "report": "write the HTML comparison report",
    "demo": "the whole pipeline on the embedded data: run → confirm → report",
}


def build_parser() -> argparse.ArgumentParser:
    description = f"`cmi-study` (also `python -m study`): {', '.join(COMMAND_HELP)}."
    parser = _Parser(prog="cmi-study", description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, help_text in COMMAND_HELP.items():
        p = sub.add_parser(command, help=help_text)
        for opt in OPTIONS:
            if command in opt.commands:
                p.add_argument(opt.flag, **opt.kwargs)
    return parser


def stage_args(demo: argparse.Namespace, command: str) -> argparse.Namespace:
    """The options of one stage of `demo` (run, confirm or report) as that command's own command line
    would give them: its defaults, and the demo's value of every option the two commands share."""
    args = build_parser().parse_args([command])
    shared = {o.dest for o in OPTIONS if "demo" in o.commands} & {
        o.dest for o in OPTIONS if command in o.commands
    }
    for dest in shared:
        setattr(args, dest, getattr(demo, dest))
    return args

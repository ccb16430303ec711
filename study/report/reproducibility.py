"""The report's last section: how to reproduce it. Where the data came from, the devices and
precision its trials ran in, the commands and package versions each study recorded against today's,
each study's stored configuration, and (with outer folds) what the check of the stored records found.
"""

from __future__ import annotations

import json
from typing import Any

from study import records
from study.report.analyse import Report
from study.report.studies import StudyRecord
from study.workers.urls import redact

_CONFIG_KEYS = (
    "preset",
    "epochs",
    "n_folds",
    "seed",
    "seeds",
    "n_trials",
    "arms",
    "search_space",
    "settings",
)


def _versions(studies: dict[str, StudyRecord]) -> list[list[str]]:
    """Per package: the version each study recorded (one value when they agree) and the one now."""
    recorded: dict[str, dict[str, str]] = {}
    for who, rec in studies.items():
        for pkg, ver in rec.versions.items():
            recorded.setdefault(pkg, {})[who] = str(ver)
    now = records.package_versions()
    rows = []
    for pkg in sorted(set(recorded) | set(now)):
        vals = recorded.get(pkg, {})
        distinct = sorted(set(vals.values()))
        shown = distinct[0] if len(distinct) == 1 else "; ".join(f"{a}: {v}" for a, v in vals.items()) or "—"
        rows.append([pkg, shown, now.get(pkg, "—")])
    return rows


def _commands(studies: dict[str, StudyRecord], command: str | None) -> list[tuple[str, str]]:
    by_command: dict[str, list[str]] = {}  # the same command usually ran several arms
    for who, rec in studies.items():
        if rec.command:
            by_command.setdefault(redact(rec.command), []).append(who)
    out = [(", ".join(who), cmd) for cmd, who in by_command.items()]
    if command:
        out.append(("this report", redact(command)))
    return out


def _configs(studies: dict[str, StudyRecord]) -> list[tuple[str, str]]:
    """Each study's recorded configuration as JSON (passwords masked); the fields it stored, only."""
    out = []
    for who, rec in studies.items():
        stored = rec.model_dump(mode="json", exclude_unset=True)
        cfg = {k: stored[k] for k in _CONFIG_KEYS if k in stored}
        if cfg:
            out.append((who, redact(json.dumps(cfg, indent=2, default=str))))
    return out


def _crossing_fact(data) -> str:
    """What the check of the stored records (study.nesting) found, in one sentence."""
    c = data.crossing
    held = "; ".join(f"outer fold {k}: {len(h)} held out" for k, h in c.held_out.items())
    if c.problems:
        return f"information crossed outer folds ({len(c.problems)} finding(s), see the warnings); {held}"
    unrecorded = f" ({c.unrecorded} of them without recorded training subjects)" if c.unrecorded else ""
    return (
        f"no information crossed outer folds, checked on the stored records of {c.trials} trials and their "
        f"{c.folds} folds{unrecorded}: no search of an outer fold trained, chose an epoch or validated on its held-out "
        f"subjects, every confirmation scored only its outer fold's subjects with models not trained on them, and "
        f"no subject is held out twice; {held}"
    )


def section(report: Report, command: str | None) -> dict[str, Any]:
    """The values of the report's reproducibility section."""
    data = report.studies
    studies = data.studies()
    info = report.data_info
    devices = {x for d in data.arms.values() for x in d.trials["device"] if x}
    # Trials recorded before the precision was: shown as such, not guessed.
    precisions = {x or "not recorded" for d in data.arms.values() for x in d.trials["precision"]}
    facts = [  # (label, value, shown as code)
        ("storage", data.storage_url, True),
        ("study name", data.name, False),
        ("studies", ", ".join(s for s in data.existing_studies if s.startswith(f"{data.name}-")), False),
        ("data source", info.source if info and info.source else "—", False),
        ("data fingerprint", info.fingerprint if info and info.fingerprint else "—", True),
        ("devices", ", ".join(sorted(devices)) or "—", False),
        ("precision", ", ".join(sorted(precisions)) or "—", True),
        ("generated", data.generated_at, False),
    ]
    if data.crossing is not None:
        facts.insert(3, ("outer folds", _crossing_fact(data), False))
    return {
        "facts": facts,
        "commands": _commands(studies, command),
        "versions": _versions(studies),
        "configs": _configs(studies),
    }

"""Trial notes for optuna-dashboard, the live view: why a trial failed, and a confirmation pair's
per-fold scores, written when the trial ends.

optuna_dashboard.save_note keeps a trial's note in the study's system attributes (keyed by the
trial), never in the trial's user attributes, which are this tool's storage format
(:mod:`study.records`): its readers never see a note. A note somebody wrote on the trial in the
dashboard first is kept, with ours below it.
"""

from __future__ import annotations

import logging

import optuna

from study.records import TrialRecord

log = logging.getLogger(__name__)


def _inert(text: str) -> str:
    """User text (an exception message, a subject id) as plain Markdown: the dashboard renders
    Markdown, so angle brackets must not become HTML, nor a bar end a table cell."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def fail_note(reason: str) -> str:
    """The note of a failed trial: its fail_reason, as recorded."""
    return f"**Failed:** {_inert(reason)}"


def confirm_note(record: TrialRecord) -> str:
    """The note of a confirmation pair: what it re-trained and each fold's scores, with their mean."""
    head = f"**Confirmation of `{record.arm}`**: search trial #{record.source_trial} re-trained on split seed {record.seed}"
    if record.forced:
        head += " (`confirm --unfinished`: the search was unfinished)"
    rows = [
        "| fold | validation subjects | score | binary F1 | macro F1 |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for k, f in enumerate(record.folds):
        subjects = _inert(", ".join(f.val_subjects))
        rows.append(f"| {k} | {subjects} | {f.score:.4f} | {f.binary_f1:.4f} | {f.macro_f1:.4f} |")
    if record.folds:
        mean = sum(record.scores) / len(record.scores)
        rows.append(f"| mean | | **{mean:.4f}** | | |")
    return "\n".join([head, "", *rows])


def save(trial: optuna.Trial, body: str) -> None:
    """Save body as the trial's note. Never raises: a note is a view of what the record holds, and
    a trial's result must not be lost because its note could not be written."""
    try:
        import optuna_dashboard

        theirs = optuna_dashboard.get_note(trial)
        if theirs.strip():
            body = f"{theirs}\n\n---\n\n{body}"
        optuna_dashboard.save_note(trial, body)
    except ImportError:
        return
    except Exception as e:
        log.warning("could not save the note of trial #%s for optuna-dashboard: %s", trial.number, e)


def save_finished(study: optuna.Study, trial_id: int, body: str) -> None:
    """Save the note of a trial that only the storage holds (a lost worker's, a superseded pair).
    save_note takes a Trial; optuna.Trial(study, trial_id) is the handle study.optimize builds,
    here only read (its sampler's before_trial is a no-op for the samplers used here)."""
    try:
        trial = optuna.Trial(study, trial_id)
    except Exception as e:
        log.warning("could not save the note of trial id %s for optuna-dashboard: %s", trial_id, e)
        return
    save(trial, body)

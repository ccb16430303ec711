"""Storage → plain data → plotly figures → one self-contained HTML report.

The layers, each usable and testable on its own (the split of ``optuna.visualization``,
where plain ``_get_*_info`` records are computed apart from the plotly drawing):

- :mod:`.extract` reads the arm studies ``NAME-ARM`` (``fixed``, ``equal``, ``uncertainty``,
  ``direct``, ``dwa``, ``famo``, ``imtl_l``, ``rlw``) and the confirmation study ``NAME-confirm`` through
  :mod:`study.records` into the plain dataclasses and DataFrames of :mod:`.data`;
  :mod:`.compare` pairs the arms' fold scores and runs :mod:`study.stats` on them.
- :mod:`.verdict` adds what each comparison's headline states (evidence still needed,
  the subjects that scored it, how each fold's model was chosen, learned weights that
  never moved); :mod:`.checks` the warnings about the studies as a whole.
- :mod:`.figure_data` derives one plain record per figure; :mod:`.figures`,
  :mod:`.search_figures` and :mod:`.weight_figures` draw each with plotly (``None`` when
  its data is missing).
- :mod:`.html` renders the page from ``templates/`` (Jinja2, :mod:`.templating`; the page
  autoescaped, its sentences shared with the dashboard note in ``verdict.txt.j2``) as a list of
  sections, with plotly.js embedded exactly once so it opens offline.
- :mod:`.dashboard` saves the verdict as an optuna-dashboard note and the key figures
  as dashboard graphs on every study.

A missing piece of data turns into a sentence saying what is missing, never an
exception; only a study name with no study at all raises :class:`StudyNotFoundError`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import optuna

from study.report.compare import ArmComparison
from study.report.dashboard import dashboard_note, save_to_dashboard, verdict_sentence
from study.report.data import ArmData, BestTrial, ClassReport, ConfirmData, ReportData, class_report
from study.report.extract import StudyNotFoundError, extract, resolve_storage
from study.report.figure_data import (
    fixed_reference_weights,
    forest_info,
    importances_info,
    landscape_info,
    metric_parts_frame,
    search_trials,
    slice_info,
    weights_info,
)
from study.report.figures import fig_comparison, fig_confusion, fig_forest, fig_metric_parts, fig_per_class_f1
from study.report.html import GENERATOR, SECTION_TITLES, SECTIONS, render_html
from study.report.search_figures import (
    fig_best_so_far,
    fig_fixed_landscape,
    fig_importances,
    fig_slices,
    fig_trial_scores,
)
from study.report.verdict import Movement, Verdict, verdicts, weight_movement
from study.report.weight_figures import fig_weights
from study.storage import redact  # password masking: one source of truth, shared with the driver
from study.storage import safe_url as redact_url

__all__ = [
    "GENERATOR",
    "is_report",
    "SECTIONS",
    "SECTION_TITLES",
    "ArmComparison",
    "ArmData",
    "BestTrial",
    "ClassReport",
    "ConfirmData",
    "Movement",
    "Verdict",
    "ReportData",
    "StudyNotFoundError",
    "class_report",
    "dashboard_note",
    "extract",
    "fig_best_so_far",
    "fig_comparison",
    "fig_confusion",
    "fig_fixed_landscape",
    "fig_forest",
    "fig_importances",
    "fig_metric_parts",
    "fig_per_class_f1",
    "fig_slices",
    "fig_trial_scores",
    "fig_weights",
    "fixed_reference_weights",
    "forest_info",
    "importances_info",
    "landscape_info",
    "metric_parts_frame",
    "redact",
    "redact_url",
    "render_html",
    "save_to_dashboard",
    "search_trials",
    "slice_info",
    "verdict_sentence",
    "verdicts",
    "weight_movement",
    "weights_info",
    "write_report",
]

log = logging.getLogger(__name__)


def is_report(path: Path) -> bool:
    """Whether a file is a report this project wrote (its head carries the generator tag)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f'<meta name="generator" content="{GENERATOR}">' in f.read(4096)
    except OSError:
        return False


def write_report(
    storage: str | optuna.storages.BaseStorage,
    study_name: str,
    out_path: str | Path,
    *,
    command: str | None = None,
    dashboard: bool = True,
    rope: float = 0.005,
) -> Path:
    """Write the HTML report of ``study_name`` to ``out_path`` and return its path.

    With ``dashboard=True`` and optuna_dashboard installed, also saves the verdict as a
    note and the key figures as graphs on each study (failures there are logged, not raised).
    """
    backend = resolve_storage(storage)  # one connection pool for reading and for the dashboard notes
    data = extract(backend, study_name, rope=rope)
    doc, figures = render_html(data, command=command)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: a full disk or a kill leaves the old report, never half a new one.
    partial = out.with_name(f".{out.name}.partial")
    try:
        partial.write_text(doc, encoding="utf-8")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    if dashboard:
        try:
            save_to_dashboard(backend, data, figures, str(out.resolve()))
        except Exception as e:  # the report is written; a read-only storage must not lose it
            log.warning("could not save the verdict to optuna-dashboard: %s", e)
    return out

"""The HTML report of a study name, in three stages, each usable and testable on its own:

- **read** (:mod:`.read` → :mod:`.studies`): the arm studies ``NAME-<arm>`` and the confirmation
  ``NAME-confirm``, through :mod:`study.records`, into plain dataclasses and DataFrames, with
  the warnings they carry;
- **analyse** (:mod:`.analyse`): the arms paired and compared (:mod:`study.stats`, :mod:`study.subject_level`), what each
  verdict states, how far learned weights moved: one immutable :class:`~.analyse.Report`;
- **draw**: one module per family of figures, each figure's plain record beside the function
  that draws it (as ``optuna/visualization/_slice.py``): :mod:`.comparison_figures`,
  :mod:`.metric_figures`, :mod:`.tradeoff_figures` (binary against macro F1: the fixed-weight
  front and each confirmed arm), :mod:`.search_figures`, :mod:`.parameter_figures`,
  :mod:`.weight_figures`, sharing :mod:`.style`; :mod:`.page` lays them out as numbered
  sections of one Jinja2 page (plotly.js embedded once, so it opens offline), and
  :mod:`.dashboard` saves the same verdict and figures for optuna-dashboard (:mod:`.artifact`,
  used by the ``report`` command, stores the written page as the confirmation study's artifact).

Follow one figure from storage to HTML through five files, e.g. the learned weights: :mod:`.read`
(the trials' records into :mod:`.studies`' dataclasses, which also say how far learned weights moved),
:mod:`.weight_figures` (its plain record, then the plotly figure), :mod:`.page` (the section that
places it) and ``templates/sections.html.j2`` (its markup). Beside the path, shared by every figure:
:mod:`.style` (colours, layout) and the page's sentences, in ``templates/verdict.txt.j2``
(through :mod:`.sentences`): the verdicts, and what a section says where it cannot show a figure.
Warnings about the stored data are worded where they are found (:mod:`.read`, :mod:`.studies`,
:mod:`.analyse`), figure titles in their figure's module.

What each arm is (its label, paper, colour, family, whether it learns) comes from its class in
:mod:`cmi_model.weighting`, the families' order from its ``FAMILIES``: nothing here names an arm. A missing piece of data turns into a
sentence saying what is missing, never an exception; only a study name with no study at all
raises :class:`~.read.StudyNotFoundError`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from cmi_model.atomic import write_atomically
from study.report import analyse, read
from study.report.dashboard import save_to_dashboard
from study.report.page import GENERATOR, render_html
from study.report.read import StudyNotFoundError, resolve_storage

__all__ = ["StudyNotFoundError", "is_report", "write_report"]

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
    rope: float | None = None,
) -> Path:
    """Write the HTML report of ``study_name`` to ``out_path`` and return its path.

    With ``dashboard=True`` and optuna_dashboard installed, also saves the verdict as a
    note and the key figures as graphs on each study (failures there are logged, not raised).
    ``rope`` reads the scores under another rope than the one stored with the study.
    """
    backend = resolve_storage(storage)  # one connection pool for reading and for the dashboard notes
    report = analyse.analyse(read.read(backend, study_name), rope=rope)
    doc, figures = render_html(report, command=command)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: a full disk or a kill leaves the old report, never half a new one.
    write_atomically(out, lambda tmp: tmp.write_text(doc, encoding="utf-8"))
    if dashboard:
        try:
            save_to_dashboard(backend, report, figures, str(out.resolve()))
        except Exception as e:  # the report is written; a read-only storage must not lose it
            log.warning("could not save the verdict to optuna-dashboard: %s", e)
    return out

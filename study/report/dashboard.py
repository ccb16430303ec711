"""The verdict as an optuna-dashboard note, and the key figures as dashboard graphs, on every study.

Both come from the report's one :class:`~study.report.analyse.Report` and the figures the page
drew: nothing is computed again, and the storage is the one the report was read from.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import plotly.graph_objects as go

from cmi_model.weighting import SCHEMES
from study import records
from study.records import CONFIRM
from study.report.analyse import Report
from study.report.budget_figures import budget_curves, searches_of
from study.report.sentences import ENV, frozen_text, holm_text, tuning_text, verdict_text
from study.report.style import html_id

DASHBOARD_GRAPH_PREFIX = "cmi-report-"


def dashboard_note(report: Report, report_path: str | None = None) -> str:
    """Markdown note with the verdict(s) for optuna-dashboard."""
    text = ENV.get_template("note.md.j2").render(
        generated_at=report.studies.generated_at,
        arm_names=report.studies.arm_names(),
        holm=holm_text(report.holm),
        verdict_text=verdict_text,
        verdicts=report.verdicts,
        tuning=tuning_text(budget_curves(searches_of(report.studies)), report.verdicts) + frozen_text(report),
        no_confirm=report.studies.confirm is None,
        report_path=report_path,
    )
    # The dashboard renders Markdown; keep angle brackets from user strings inert.
    return text.strip().replace("<", "&lt;").replace(">", "&gt;")


def _graph_keys(keys: Sequence[str], part: str) -> list[str]:
    """The figures saved on study ``NAME-part``: the forest plot, comparisons and search plots on all,
    weights on the arms whose weights vary (those that have a panel)."""
    shown = [k for k in keys if k.startswith("compare-") or k in ("forest", "best-so-far", "trial-scores")]
    varies = part in SCHEMES and SCHEMES[part].weights_vary
    return shown + [k for k in keys if k == "weights" and varies]


def save_to_dashboard(
    storage: optuna.storages.BaseStorage,
    report: Report,
    figures: Sequence[tuple[str, go.Figure]],
    report_path: str | None = None,
) -> bool:
    """Save the verdict note and key figures on every study of the report; False if optuna_dashboard is missing."""
    try:
        import optuna_dashboard
    except ImportError:
        return False
    note = dashboard_note(report, report_path)
    by_key = dict(figures)
    data = report.studies
    each = [(s.name, s) for _, s in data.outer] or [(data.name, data)]  # a nested run: every outer fold's
    parts = [
        (name, part) for name, s in each for part in [*s.arms, *([CONFIRM] if s.confirm is not None else [])]
    ]
    shown = data.outer[0][1].name if data.outer else data.name  # whose searches the figures draw
    for name, part in parts:
        study = optuna.load_study(study_name=records.study_name(name, part), storage=storage)
        optuna_dashboard.save_note(study, note)
        keys = _graph_keys(list(by_key), part)
        if name != shown:  # another outer fold: the comparisons are every fold's, the search figures are not
            keys = [k for k in keys if k.startswith("compare-") or k == "forest"]
        for key in keys:
            optuna_dashboard.save_plotly_graph_object(
                study, _lean(by_key[key]), graph_object_id=DASHBOARD_GRAPH_PREFIX + html_id(key)
            )
    return True


def _lean(fig: go.Figure) -> go.Figure:
    """A copy without plotly's full template (~6 kB of JSON per figure, stored in 2 kB system attrs)."""
    lean = go.Figure(fig)
    grid = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8")
    lean.layout.template = go.layout.Template(
        layout=dict(paper_bgcolor="white", plot_bgcolor="white", xaxis=grid, yaxis=grid)
    )
    return lean

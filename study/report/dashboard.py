"""The verdict as an optuna-dashboard note, and the key figures as dashboard graphs, on every study."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import plotly.graph_objects as go

from study import records
from study.records import CONFIRM
from study.report.data import ReportData
from study.report.extract import resolve_storage
from study.report.templating import ENV, holm_text, verdict_text
from study.report.verdict import Verdict, holm_family, verdicts

DASHBOARD_GRAPH_PREFIX = "cmi-report-"


def verdict_sentence(v: Verdict) -> str:
    """One plain-text line: the headline's sentences and the numbers behind them."""
    return str(ENV.get_template("note.md.j2").module.line(v, verdict_text(v))).strip()


def dashboard_note(data: ReportData, report_path: str | None = None) -> str:
    """Markdown note with the verdict(s) for optuna-dashboard."""
    text = ENV.get_template("note.md.j2").render(
        generated_at=data.generated_at,
        arm_names=data.arm_names(),
        holm=holm_text(holm_family(data.comparisons)),
        verdict_text=verdict_text,
        verdicts=verdicts(data),
        no_confirm=data.confirm is None,
        report_path=report_path,
    )
    # The dashboard renders Markdown; keep angle brackets from user strings inert.
    return text.strip().replace("<", "&lt;").replace(">", "&gt;")


def _graph_keys(keys: Sequence[str], part: str) -> list[str]:
    """The figures saved on study ``NAME-part``: the forest plot, comparisons and search plots on all,
    weights on the arms that have a panel."""
    shown = [k for k in keys if k.startswith("compare-") or k in ("forest", "best-so-far", "trial-scores")]
    return shown + [k for k in keys if k == "weights" and part not in ("fixed", "equal", CONFIRM)]


def save_to_dashboard(
    storage: str | optuna.storages.BaseStorage,
    data: ReportData,
    figures: Sequence[tuple[str, go.Figure]],
    report_path: str | None = None,
) -> bool:
    """Save the verdict note and key figures on every study of the report; False if optuna_dashboard is missing."""
    try:
        import optuna_dashboard
    except ImportError:
        return False
    backend = resolve_storage(storage)
    note = dashboard_note(data, report_path)
    by_key = dict(figures)
    parts = [*data.arms, *([CONFIRM] if data.confirm is not None else [])]
    for part in parts:
        study = optuna.load_study(study_name=records.study_name(data.name, part), storage=backend)
        optuna_dashboard.save_note(study, note)
        for key in _graph_keys(list(by_key), part):
            optuna_dashboard.save_plotly_graph_object(
                study, _lean(by_key[key]), graph_object_id=DASHBOARD_GRAPH_PREFIX + key
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
